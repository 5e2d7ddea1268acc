"""Choosing a relay number without reading the pool: load-ordered sets in Redis.

Each active, voice-capable relay number is a member of a few sorted sets,
one per place it is in, scored by its live bindings:

    mls:{CC}:a:<area code>   mls:{CC}:c:<city>   mls:{CC}:p:<province>
    mls:{CC}                 (the whole country)  mls:{global}  (every country)

A bind reads one page (a few numbers) of the sets of its anchor's place in
one call, whatever the pool's size, and tries them least loaded first. The
sets are a heuristic: the claim on the number's own slot (``ml:{X}``,
``claim.lua``) stays the authority on cap, busy parties and cool-downs, so a
stale score costs at most a claim that answers "full" or "busy".

Every key of a country carries the country's hash tag, so one call reads
them all on Redis Cluster too. Scores move with claims and releases: on one
Redis node the route scripts move them in the same call; on a cluster (where
those keys live on other slots) a second call does.

The sets are built from SQL per country, lazily: a country's marker
(``mls:{CC}:m``) is dropped whenever a number of it is added or changes
status, or by ``routes rebuild``, and the next bind that finds it missing
builds the country's sets again (one SQL query of that country's numbers).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import phonenumbers
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from maskline.numbers.interfaces import RoutingUnavailable
from maskline.numbers.models import Binding, RelayNumber
from maskline.numbers.regions import Place, place
from maskline.redis_backend import REDIS_ERRORS, is_cluster

GLOBAL = "mls:{global}"
PAGE = 8

# Equal scores come back in member order; shuffling a page spreads concurrent
# binds over equally loaded numbers. Relay numbers are public: not a secret.
_spread = random.Random()  # noqa: S311


def country_key(country: str) -> str:
    return f"mls:{{{country}}}"


def marker_key(country: str) -> str:
    return f"mls:{{{country}}}:m"


def _registry_key(country: str) -> str:
    # Every set key of the country, so a rebuild can drop sets that emptied.
    return f"mls:{{{country}}}:k"


def relay_place(e164: str) -> Place:
    """A relay number's place (relay numbers are public: safe to remember).

    Looked up once per block of numbers (all but the last four digits, the
    subscriber's): geocoding data goes by prefix, and a pool's numbers come
    in blocks, so building the sets of 40,000 numbers geocodes a handful.
    """
    block = e164[:-4]
    found = _places.get(block)
    if found is None:
        found = place(e164)
        if len(_places) < _MAX_BLOCKS:
            _places[block] = found
    return found


_MAX_BLOCKS = 100_000
_places: dict[str, Place] = {}


def tiers(where: Place) -> list[list[str]]:
    """The anchor's sets from nearest to farthest: area (by code or city), province, country."""
    country = country_key(where.country)
    near = [f"{country}:a:{where.area}"] if where.area else []
    if where.city:
        near.append(f"{country}:c:{where.city}")
    out = [near] if near else []
    if where.province:
        out.append([f"{country}:p:{where.province}"])
    out.append([country])
    return out


def keys_of(e164: str) -> list[str]:
    """Every set the relay number belongs to, the global set last."""
    try:
        where = relay_place(e164)
    except phonenumbers.NumberParseException:
        return []
    return [key for tier in tiers(where) for key in tier] + [GLOBAL]


def bump_scores(client: Any, e164: str, delta: int) -> None:
    """Move a number's score in a second call (on a cluster, whose route
    scripts cannot reach these keys); a heuristic, so failures are ignored
    and the next build corrects them."""
    try:
        pipe = client.pipeline(transaction=False)
        for key in keys_of(e164):
            pipe.zadd(key, {e164: delta}, xx=True, incr=True)
        pipe.execute()
    except REDIS_ERRORS:
        pass


@dataclass(frozen=True)
class _Source:
    """One set read page by page."""

    key: str
    offset: int = 0
    done: bool = False


def drop_markers(client: Any, e164: str) -> None:
    """A number was added or changed status: its country's (and the global)
    sets are built again from SQL by the next bind that reads them."""
    try:
        country = relay_place(e164).country
    except phonenumbers.NumberParseException:
        return
    client.delete(marker_key(country))
    client.delete(marker_key("global"))


def drop_all_markers(client: Any) -> None:
    """Every set is built again from SQL by the next bind that reads it."""
    for key in client.scan_iter(match="mls:{*}:m", count=1000):
        client.delete(key)


class RelaySelection:
    """The selection sets over one Redis client."""

    def __init__(self, client: Any, *, counts: Callable[[Session, dt.datetime], dict[str, int]]) -> None:
        self.client = client
        self.cluster = is_cluster(client)
        self._counts = counts
        text = (resources.files("maskline.numbers") / "lua" / "pick.lua").read_text()
        self._pick = client.register_script(text)

    # -- keeping the sets -------------------------------------------------------

    def build(self, session: Session, country: str, now: dt.datetime) -> None:
        """Write ``country``'s sets (or, for ``"global"``, the every-country
        set) from SQL, then its marker, in one transaction on its slot."""
        usable = select(RelayNumber.e164).where(RelayNumber.status == "active", RelayNumber.voice.is_(True))
        if country != "global":
            usable = usable.where(RelayNumber.country == country)
        numbers = list(session.scalars(usable))
        live = self._live(session, now, country)
        sets: dict[str, dict[str, int]] = {}
        for e164 in numbers:
            keys = [GLOBAL] if country == "global" else keys_of(e164)[:-1]
            for key in keys:
                sets.setdefault(key, {})[e164] = live.get(e164, 0)
        try:
            if country == "global":
                pipe = self.client.pipeline(transaction=True)
                pipe.delete(GLOBAL)
                if GLOBAL in sets:
                    pipe.zadd(GLOBAL, sets[GLOBAL])
                pipe.set(marker_key("global"), "1")
                pipe.execute()
                return
            registry = _registry_key(country)
            old = {k.decode() if isinstance(k, bytes) else k for k in self.client.smembers(registry)}
            pipe = self.client.pipeline(transaction=True)
            for key in old | set(sets):
                pipe.delete(key)
            pipe.delete(registry)
            for key, members in sets.items():
                pipe.zadd(key, members)
                pipe.sadd(registry, key)
            pipe.set(marker_key(country), "1")
            pipe.execute()
        except REDIS_ERRORS as exc:
            raise RoutingUnavailable(f"routing store unavailable: {type(exc).__name__}") from None

    def _live(self, session: Session, now: dt.datetime, country: str) -> dict[str, int]:
        if country == "global":
            return self._counts(session, now)
        rows = session.execute(
            select(Binding.relay_number, func.count())
            .join(RelayNumber, RelayNumber.e164 == Binding.relay_number)
            .where(RelayNumber.country == country, Binding.status == "active", Binding.expires_at > now)
            .group_by(Binding.relay_number)
        ).all()
        return {number: int(count) for number, count in rows}

    def mark_full(self, e164: str, cap: int) -> None:
        """A claim found the number at its cap: rank it out until a release."""
        try:
            pipe = self.client.pipeline(transaction=False)
            for key in keys_of(e164):
                pipe.zadd(key, {e164: cap}, xx=True, gt=True)
            pipe.execute()
        except REDIS_ERRORS:
            pass

    # -- choosing ----------------------------------------------------------------

    def candidates(
        self,
        where: Place,
        *,
        cap: int,
        build: Callable[[str], None],
        anywhere: bool = False,
        near_only: bool = False,
    ) -> Iterator[str]:
        """Relay numbers for an anchor at ``where``, nearest tier first and
        least loaded first within a tier, read a page at a time.

        ``near_only``: the anchor's area alone (strict); ``anywhere``: after
        the anchor's country, every other country (global). ``build(country)``
        is called when a country's sets must be built from SQL first.
        """
        levels = tiers(where)
        if near_only:
            levels = levels[:1] if len(levels) > 1 else []
        seen: set[str] = set()
        yield from self._walk(where.country, levels, cap, build, seen)
        if anywhere:
            yield from self._walk("global", [[GLOBAL]], cap, build, seen)

    def _walk(
        self,
        country: str,
        levels: list[list[str]],
        cap: int,
        build: Callable[[str], None],
        seen: set[str],
    ) -> Iterator[str]:
        if not levels:
            return
        sources = {key: _Source(key) for level in levels for key in level}
        pages = self._read(country, list(sources.values()), cap, build)
        for level in levels:
            while True:
                found: list[tuple[float, str]] = []
                for key in level:
                    page = pages.pop(key, [])
                    found += page
                    source = sources[key]
                    sources[key] = _Source(key, source.offset + len(page), done=len(page) < PAGE)
                _spread.shuffle(found)
                found.sort(key=lambda pair: pair[0])
                for _score, e164 in found:
                    if e164 not in seen:
                        seen.add(e164)
                        yield e164
                more = [sources[key] for key in level if not sources[key].done]
                if not more:
                    break
                pages = self._read(country, more, cap, build)

    def _read(
        self, country: str, sources: Sequence[_Source], cap: int, build: Callable[[str], None]
    ) -> dict[str, list[tuple[float, str]]]:
        keys = [marker_key(country), *(s.key for s in sources)]
        args: list[Any] = [PAGE, cap, *(s.offset for s in sources)]
        try:
            result = self._pick(keys=keys, args=args)
            if _text(result[0]) == "stale":
                build(country)
                result = self._pick(keys=keys, args=args)
                if _text(result[0]) == "stale":  # lost again at once: read nothing rather than loop
                    return {}
        except REDIS_ERRORS as exc:
            raise RoutingUnavailable(f"routing store unavailable: {type(exc).__name__}") from None
        pages: dict[str, list[tuple[float, str]]] = {}
        for source, flat in zip(sources, result[1:], strict=True):
            pages[source.key] = [(float(flat[i + 1]), _text(flat[i])) for i in range(0, len(flat), 2)]
        return pages


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
