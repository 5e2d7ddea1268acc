"""PoolKeys and their numbers as Dyplsapi's number actions see them (no Flask here).

* A PoolKey exists for an owner when it is a two-letter region code (the
  whole deployment pool, read in that region) or when the owner's PoolKey
  has numbers (``maskline aliyun pool add``, BuySecretNo). Any other answers
  ``isv.POOLKEY_NOT_EXISTS``, as Alibaba answers a PoolKey it does not know.
* QuerySecretNoRemain: how many numbers BuySecretNo could take now: relay
  numbers of the pool, active with voice, in no owner's PoolKey.
* BuySecretNo moves one such number into the owner's PoolKey (in ``City``,
  starting with ``SecretNo``, when given); ReleaseSecretNo takes one out.
  Both audited, as ``maskline aliyun pool add|remove``. Relay numbers are
  public: they may appear in answers and audit data.
* QuerySubsId: the owner's live subscriptions on a relay number.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import phonenumbers
from sqlalchemy import and_, exists, select
from sqlalchemy.orm import Session

from maskline.api.keys import Principal
from maskline.audit.interfaces import AuditEntry
from maskline.compat.aliyun.forms import MAINLAND, national
from maskline.compat.aliyun.interfaces import (
    BusinessError,
    ServiceUnavailable,
    invalid_number,
    invalid_parameter,
)
from maskline.compat.aliyun.models import AliyunPoolNumber
from maskline.compat.aliyun.pools import Cities, city_key
from maskline.numbers.interfaces import InvalidRequest, RoutingUnavailable
from maskline.numbers.models import Binding, RelayNumber
from maskline.numbers.pool import parse_relay_number

MAX_PREFIX = 20
# Alibaba's SpecId: 1 virtual operator, 2 carrier, 3 (95 numbers); maskline's
# pool has one kind, so every SpecId reads the same numbers.
SPEC_IDS = ("1", "2", "3")


def pool_key_exists(session: Session, *, owner: str, pool_key: str) -> bool:
    """Whether ``pool_key`` is one of ``owner``'s PoolKeys (a region code always is)."""
    upper = pool_key.upper()
    if len(upper) == 2 and upper in phonenumbers.SUPPORTED_REGIONS:
        return True
    return bool(
        session.scalar(
            select(exists().where(AliyunPoolNumber.owner == owner, AliyunPoolNumber.pool_key == pool_key))
        )
    )


def no_such_pool_key() -> BusinessError:
    return BusinessError(
        "isv.POOLKEY_NOT_EXISTS",
        "PoolKey: no such pool key for this account (poolKey not exist); "
        "give it numbers with `maskline aliyun pool add`, or use a region code such as CN",
    )


def _spec(params: dict[str, str]) -> None:
    spec = params.get("SpecId")
    if not spec:
        raise invalid_parameter("SpecId", "is required: 1, 2 or 3")
    if spec not in SPEC_IDS:
        raise invalid_parameter("SpecId", "must be 1, 2 or 3")


def _prefix(params: dict[str, str]) -> str:
    """SecretNo of a query or purchase: the leading digits the number starts with."""
    raw = (params.get("SecretNo") or "").strip()
    if not raw:
        return ""
    if len(raw) > MAX_PREFIX or not raw.isascii() or not raw.isdigit():
        raise invalid_parameter("SecretNo", f"the number's leading digits: at most {MAX_PREFIX} digits")
    return raw


def _starts_with(e164: str, prefix: str) -> bool:
    if not prefix:
        return True
    parsed = phonenumbers.parse(e164, None)
    national = phonenumbers.national_significant_number(parsed)
    return national.startswith(prefix.lstrip("0")) or e164.lstrip("+").startswith(prefix)


class Inventory:
    """The number actions, over ``services`` (maskline's Services)."""

    def __init__(self, *, services: Any, cities: Cities) -> None:
        self.services = services
        self.cities = cities

    def _free(self, session: Session, prefix: str) -> list[str]:
        """Relay numbers no owner's PoolKey holds, active with voice, oldest first."""
        held = exists().where(AliyunPoolNumber.e164 == RelayNumber.e164)
        numbers = session.scalars(
            select(RelayNumber.e164)
            .where(and_(RelayNumber.status == "active", RelayNumber.voice.is_(True), ~held))
            .order_by(RelayNumber.e164)
        )
        return [n for n in numbers if _starts_with(n, prefix)]

    def _in_city(self, numbers: list[str], city: str | None) -> list[str]:
        if not city:
            return numbers
        found = set(self.cities.in_city(city, numbers))
        return [n for n in numbers if n in found]

    def query_secret_no_remain(self, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        _spec(params)
        city = (params.get("City") or "").strip() or None
        if city is not None and len(city) > 64:
            raise invalid_parameter("City", "at most 64 characters")
        with self.services.db.session() as session:
            free = self._free(session, _prefix(params))
        amount = len(self._in_city(free, city))
        name = city or "全国"
        return {
            "SecretRemainDTO": {
                "City": name,
                "Amount": amount,
                "RemainDTOList": {"remainDTO": [{"City": name, "Amount": amount}]},
            }
        }

    def buy_secret_no(self, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        _spec(params)
        pool_key = params["PoolKey"]
        city = (params.get("City") or "").strip()
        if not city:
            raise invalid_parameter("City", "is required: the city the number should be in")
        if len(city) > 64 or not city_key(city):
            raise invalid_parameter("City", "at most 64 characters, not blank")
        now: dt.datetime = self.services.clock()
        with self.services.db.session() as session:
            candidates = self._in_city(self._free(session, _prefix(params)), city)
            if not candidates:
                raise BusinessError(
                    "isv.NO_AVAILABLE_NUMBER",
                    "no relay number of the pool in this City (and starting with SecretNo) is free "
                    "to buy; add numbers with `maskline pool add`",
                )
            # Row-locked by its primary key: two purchases cannot take one number.
            e164 = candidates[0]
            # A bought number counts against the owner's cap of live bindings
            # (docs/owner-limits.md): a place is taken atomically, and given
            # back if the purchase does not commit.
            self._take_place(principal.owner)
            try:
                session.add(
                    AliyunPoolNumber(owner=principal.owner, pool_key=pool_key, e164=e164, added_at=now)
                )
                self.services.audit.append(
                    session,
                    AuditEntry(
                        actor=f"apikey:{principal.key_id}",
                        action="aliyun.pool.added",
                        subject=pool_key,
                        data={"owner": principal.owner, "numbers": [e164], "via": "BuySecretNo"},
                    ),
                )
                session.flush()
            except Exception:
                self._give_place_back(principal.owner)
                raise
        return {"SecretBuyInfoDTO": {"SecretNo": national(e164)}}

    def _take_place(self, owner: str) -> None:
        counts = self.services.numbers.routes.owners
        try:
            limit = counts.take(owner, default_cap=self.services.settings.owner_max_live_bindings)
        except RoutingUnavailable:
            raise ServiceUnavailable("the routing store cannot be reached; retry later") from None
        if limit is not None:
            raise BusinessError(
                "isv.FLOW_LIMIT",
                f"owner_limit_reached: owner {owner} has reached its cap of {limit} live bindings "
                "and bought numbers; release numbers or unbind ended orders",
            )

    def _give_place_back(self, owner: str) -> None:
        with contextlib.suppress(RoutingUnavailable):  # else the worker's reconcile recounts it
            self.services.numbers.routes.owners.give_back(owner)

    def release_secret_no(self, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        pool_key = params["PoolKey"]
        e164 = _relay(params, "SecretNo")
        with self.services.db.session() as session:
            row = session.get(AliyunPoolNumber, (principal.owner, pool_key, e164))
            if row is None:
                raise BusinessError("isv.NO_NOT_EXIST", f"SecretNo {e164} is not a number of this PoolKey")
            session.delete(row)
            self.services.audit.append(
                session,
                AuditEntry(
                    actor=f"apikey:{principal.key_id}",
                    action="aliyun.pool.removed",
                    subject=pool_key,
                    data={"owner": principal.owner, "numbers": [e164], "via": "ReleaseSecretNo"},
                ),
            )
        self._give_place_back(principal.owner)
        return {}

    def query_subs_id(self, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        e164 = _relay(params, "PhoneNoX")
        now = self.services.clock()
        with self.services.db.session() as session:
            ids = session.scalars(
                select(Binding.id)
                .where(
                    Binding.relay_number == e164,
                    Binding.owner == principal.owner,
                    Binding.status == "active",
                    Binding.expires_at > now,
                )
                .order_by(Binding.created_at, Binding.id)
            ).all()
        # Alibaba: several ids joined by commas; an empty string when none.
        return {"SubsId": ",".join(ids)}


def _relay(params: dict[str, str], field: str) -> str:
    raw = params.get(field)
    if not raw or not raw.strip():
        raise invalid_parameter(field, "is required")
    try:
        return parse_relay_number(raw, field=field, region=MAINLAND)
    except InvalidRequest as exc:
        raise invalid_number(field, exc.reason) from None
