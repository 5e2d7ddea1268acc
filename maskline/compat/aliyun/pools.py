"""PoolKeys with numbers of their own, and ExpectCity (no Flask here).

A PoolKey is the owner's: :class:`~maskline.compat.aliyun.models.AliyunPoolNumber`
rows, managed with ``maskline aliyun pool``, give it relay numbers. A bind
under a PoolKey with numbers draws only from them; a PoolKey with none
draws from the whole deployment pool (and a two-letter region code still
says in which region national numbers are read, see ``actions._region``).

ExpectCity prefers relay numbers located in that city (Alibaba falls back
to any number of the pool, and so does maskline). Where a number is comes
from phonenumbers' geocoder, in Chinese (``北京市``, ``广东省广州市``) and in
English (``Beijing``, ``Guangzhou, Guangdong``); a city matches either,
without a trailing 市, a leading province, the state after a comma, or
case. Geocoding costs (its data loads lazily, then a prefix search per
number), so each relay number's names are computed once per process: relay
numbers do not move.
"""

from __future__ import annotations

import random
import re
import threading

import phonenumbers
from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from maskline.compat.aliyun.models import AliyunPoolNumber
from maskline.numbers.models import RelayNumber

# A leading province or autonomous region of a Chinese place name: 广东省广州市 -> 广州市.
_PROVINCE = re.compile(r"^.+?(?:省|自治区)")
# A relay number's place names are kept; this bounds the memory they take.
MAX_CACHED = 100_000
# Orders the numbers of an expected city differently on every bind, so binds
# spread over them (relay numbers are public: no secret randomness needed).
_spread = random.Random()  # noqa: S311


def city_key(name: str) -> str:
    """A city name as compared: trimmed, case-folded, without a trailing 市."""
    folded = name.strip().casefold()
    return folded.removesuffix("市").strip()


def _names(description: str) -> set[str]:
    """The keys a geocoded description answers to (itself, its city alone)."""
    if not description:
        return set()
    names = {city_key(description)}
    names.add(city_key(description.split(",", 1)[0]))  # "Guangzhou, Guangdong" -> Guangzhou
    names.add(city_key(_PROVINCE.sub("", description)))  # 广东省广州市 -> 广州
    names.discard("")
    return names


def pool_numbers(session: Session, *, owner: str, pool_key: str) -> frozenset[str]:
    """The relay numbers of ``owner``'s ``pool_key`` (empty: the whole pool)."""
    rows = session.scalars(
        select(AliyunPoolNumber.e164).where(
            AliyunPoolNumber.owner == owner, AliyunPoolNumber.pool_key == pool_key
        )
    )
    return frozenset(rows)


def usable_numbers(session: Session) -> list[str]:
    """The deployment pool's numbers that can take a binding (active, voice)."""
    return list(
        session.scalars(
            select(RelayNumber.e164).where(and_(RelayNumber.status == "active", RelayNumber.voice.is_(True)))
        )
    )


class Cities:
    """Which relay numbers are in a city; each number geocoded once."""

    def __init__(self) -> None:
        self._names: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()

    def names_of(self, e164: str) -> frozenset[str]:
        """The city keys ``e164`` answers to (empty when the geocoder knows no place)."""
        with self._lock:
            cached = self._names.get(e164)
        if cached is not None:
            return cached
        # Imported here: the geocoding data loads on first use, and only
        # binds with ExpectCity need it.
        from phonenumbers import geocoder

        try:
            parsed = phonenumbers.parse(e164, None)
        except phonenumbers.NumberParseException:
            names: frozenset[str] = frozenset()
        else:
            found: set[str] = set()
            for language in ("zh", "en"):
                found |= _names(geocoder.description_for_number(parsed, language))
            names = frozenset(found)
        with self._lock:
            if len(self._names) >= MAX_CACHED:
                self._names.clear()
            self._names[e164] = names
        return names

    def in_city(self, city: str, numbers: list[str] | frozenset[str]) -> tuple[str, ...]:
        """Those of ``numbers`` located in ``city``, in a random order."""
        key = city_key(city)
        if not key:
            return ()
        found = [n for n in sorted(numbers) if key in self.names_of(n)]
        _spread.shuffle(found)
        return tuple(found)
