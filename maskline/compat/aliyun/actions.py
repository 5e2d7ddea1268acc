"""The Dyplsapi operations over maskline's bindings (no Flask here).

Mapping:

* SubsId is the binding id; SecretNo / PhoneNoX the relay number (E.164).
* BindAxb: an ``axb`` binding with roles ``a`` and ``b``.
* BindAxnExtension: an ``axe`` binding of A; with PhoneNoB, B is its only
  allowed caller (and A calling X reaches B); without, any caller who keys
  the extension (Alibaba's AXN), as the caller asked for explicitly.
* PoolKey: the owner's PoolKey may have relay numbers of its own
  (``maskline aliyun pool add``); a bind under it draws only from them. A
  PoolKey with none draws from the whole deployment pool. A two-letter
  region code (``CN``, ``US``) also says in which region national numbers
  are read; any other key reads them in the deployment's default region.
* PhoneNoX: the bind takes that relay number or fails (never another).
* ExpectCity: relay numbers geocoded in that city are tried first.
* CallRestrict: stored with the subscription, enforced on the webhook path
  (see :mod:`maskline.compat.aliyun.restrict`).
* Expiration: ``yyyy-MM-dd HH:mm:ss`` in Beijing time (UTC+8).
* OutOrderId (else OutId) is the order id, which every binding needs.
* BindAxg: an ``axe`` binding of A whose allow-list is group G's numbers at
  the time of the bind (B, if given, is allowed as a party). A group's
  numbers are vault tokens; CreateAxgGroup / OperateAxgGroup change them,
  and UpdateSubscription ``updateAxgGroup`` gives a binding another group's.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any, Literal

import phonenumbers
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from maskline.api.keys import Principal
from maskline.audit.interfaces import AuditEntry
from maskline.compat.aliyun import restrict
from maskline.compat.aliyun.callstatus import latest_call
from maskline.compat.aliyun.forms import MAINLAND, mask, national
from maskline.compat.aliyun.interfaces import (
    BusinessError,
    ServiceUnavailable,
    invalid_number,
    invalid_parameter,
)
from maskline.compat.aliyun.inventory import Inventory, no_such_pool_key, pool_key_exists
from maskline.compat.aliyun.models import AliyunAxgGroup, AliyunAxgMember, AliyunSubscription
from maskline.compat.aliyun.pools import Cities, pool_numbers, usable_numbers
from maskline.compat.aliyun.receipts import Receipts, binding_for, regrouping
from maskline.compat.aliyun.tracking import Tracking
from maskline.compat.aliyun.updates import Updates
from maskline.numbers.interfaces import (
    BindingNotFound,
    BindingNotLive,
    BindingView,
    BindRequest,
    InvalidRequest,
    OwnerLimitReached,
    PoolExhausted,
    RoutingUnavailable,
)
from maskline.numbers.models import Binding, RelayNumber
from maskline.numbers.pool import parse_relay_number
from maskline.numbers.services import MAX_ALLOWED_CALLERS
from maskline.vault.interfaces import InvalidPhoneNumber, VaultEntryErased, VaultError
from maskline.webhooks.models import Recording

BEIJING = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
EXPIRATION_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_ORDER_ID = 128
# Alibaba's limit of a group G; a binding still takes at most 20 allowed callers.
MAX_GROUP_NUMBERS = 200
GROUP_OPERATIONS = ("addNumbers", "deleteNumbers", "overwriteNumbers")
MAX_CITY = 64
# UpdateSubscription's OperateTypes (Alibaba's list); updateAsr is refused (no ASR here).
UPDATE_OPERATIONS = (
    "updateNoA",
    "updateNoB",
    "updateExpire",
    "updateAxgGroup",
    "updateCallRestrict",
    "updateCallDisplayType",
    "updateOutId",
    "updateIsRecordingEnabled",
)
REFUSED_UPDATES = {"updateAsr": "maskline has no speech recognition"}
# maskline's field names back to the parameters they came from.
_FIELDS = {
    "parties.a": "PhoneNoA",
    "parties.b": "PhoneNoB",
    "parties.buyer": "PhoneNoA",
    "expires_at": "Expiration",
    "ttl_seconds": "Expiration",
    "order_id": "OutOrderId",
}


def _param(field: str) -> str:
    if field.startswith("allow"):
        return "PhoneNoB"
    return _FIELDS.get(field, field)


def beijing(when: dt.datetime) -> str:
    return when.astimezone(BEIJING).strftime(EXPIRATION_FORMAT)


def parse_expiration(value: str | None) -> dt.datetime:
    if not value:
        raise invalid_parameter("Expiration", "is required: yyyy-MM-dd HH:mm:ss, Beijing time")
    try:
        return dt.datetime.strptime(value, EXPIRATION_FORMAT).replace(tzinfo=BEIJING)
    except ValueError:
        raise invalid_parameter("Expiration", "must be yyyy-MM-dd HH:mm:ss, Beijing time") from None


def _required(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if value is None or not value.strip():
        raise invalid_parameter(name, "is required")
    return value


def _region(params: dict[str, str]) -> str:
    """The region national numbers are read in: mainland China (Alibaba's
    numbers are mainland numbers, whatever the deployment's default region),
    unless the PoolKey is a two-letter region code (``US``)."""
    pool_key = _required(params, "PoolKey")
    if len(pool_key) > 64:
        raise invalid_parameter("PoolKey", "is longer than 64 characters")
    upper = pool_key.upper()
    return upper if len(upper) == 2 and upper in phonenumbers.SUPPORTED_REGIONS else MAINLAND


def _order_id(params: dict[str, str]) -> str:
    for name in ("OutOrderId", "OutId"):
        value = params.get(name)
        if value:
            if len(value) > MAX_ORDER_ID or any(ord(c) < 32 or ord(c) == 127 for c in value):
                raise invalid_parameter(name, f"at most {MAX_ORDER_ID} characters, no control characters")
            return value
    raise invalid_parameter(
        "OutOrderId", "is required (or OutId): every maskline binding belongs to an order"
    )


def _flag(params: dict[str, str], name: str) -> bool:
    value = params.get(name, "false").lower()
    if value not in ("true", "false"):
        raise invalid_parameter(name, "must be true or false")
    return value == "true"


def _unsupported(params: dict[str, str], *names: str) -> None:
    for name in names:
        if params.get(name):
            raise invalid_parameter(name, "is not supported by maskline")


def _text(params: dict[str, str], name: str, limit: int) -> str | None:
    """An optional free-text parameter: at most ``limit`` characters, no control characters."""
    value = params.get(name)
    if not value or not value.strip():
        return None
    if len(value) > limit or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise invalid_parameter(name, f"at most {limit} characters, no control characters")
    return value


def _call_restrict(params: dict[str, str], *, b_given: bool, allowed: tuple[str, ...]) -> str | None:
    """CallRestrict, if given: one of ``allowed``; CONTROL_BX_DISABLE needs a B."""
    value = params.get("CallRestrict")
    if not value:
        return None
    if value not in allowed:
        raise invalid_parameter("CallRestrict", f"must be one of {', '.join(allowed)}")
    if value == restrict.BX_DISABLE and not b_given:
        raise invalid_parameter("CallRestrict", "CONTROL_BX_DISABLE needs a B (PhoneNoB); there is none")
    return value


def _translate(exc: Exception) -> BusinessError | ServiceUnavailable:
    """The numbers and vault packages' errors in Alibaba's codes (no numbers in them)."""
    if isinstance(exc, InvalidPhoneNumber):
        return invalid_number(_param(exc.field), exc.reason)
    if isinstance(exc, InvalidRequest):
        return invalid_parameter(_param(exc.field), exc.reason)
    if isinstance(exc, PoolExhausted):
        return BusinessError("isv.NO_AVAILABLE_NUMBER", "no relay number of the pool can take this binding")
    if isinstance(exc, OwnerLimitReached):
        # Alibaba's per-account control ("业务流控"): the account is past its
        # allowance, not the pool. The message names maskline's limit.
        return BusinessError("isv.FLOW_LIMIT", f"owner_limit_reached: {exc}")
    if isinstance(exc, BindingNotFound):
        return BusinessError("isv.NO_NOT_EXIST", "no such subscription")
    if isinstance(exc, BindingNotLive):
        # Alibaba has no code of its own for an ended subscription: to its
        # clients it no longer exists.
        return BusinessError("isv.NO_NOT_EXIST", "the subscription has ended")
    if isinstance(exc, RoutingUnavailable):
        return ServiceUnavailable("the routing store cannot be reached; retry later")
    raise exc


_NUMBERS_ERRORS = (
    InvalidRequest,
    InvalidPhoneNumber,
    PoolExhausted,
    OwnerLimitReached,
    BindingNotFound,
    BindingNotLive,
    RoutingUnavailable,
)


def _relay_form(raw: str, field: str, region: str) -> str:
    """A relay number as given (national or E.164) in E.164."""
    try:
        return parse_relay_number(raw, field=field, region=region)
    except InvalidRequest as exc:
        raise invalid_number(field, exc.reason) from None


def _bind_dto(view: BindingView) -> dict[str, Any]:
    secret_no = national(view.relay_number)
    return {"SecretBindDTO": {"SubsId": view.id, "SecretNo": secret_no, "Extension": view.extension}}


class Actions:
    """One method per Dyplsapi action: (parameters, principal) -> the answer's fields."""

    def __init__(
        self, *, services: Any, receipts: Receipts, restrictions: restrict.CallRestrictions | None = None
    ) -> None:
        self.services = services
        self.receipts = receipts
        # The webhook path's interceptor: told when a restriction changes here.
        self.restrictions = restrictions
        self.cities = Cities()
        self.inventory = Inventory(services=services, cities=self.cities)
        self.updates = Updates(services=services)
        self.tracking = Tracking(services=services)
        self._listening = False
        self._lock = threading.Lock()

    @property
    def bindings(self) -> Any:
        bindings = self.services.numbers.bindings
        if not self._listening:
            # Registered on first use, not at start-up: the binding service
            # needs Redis, and the face binds only through this property.
            with self._lock:
                if not self._listening:
                    bindings.on_event(self.receipts.on_binding_event)
                    self._listening = True
        return bindings

    def _bind(
        self,
        req: BindRequest,
        params: dict[str, str],
        *,
        allow_param: str | None = None,
        group_id: int | None = None,
    ) -> dict[str, Any]:
        """Bind; ``allow_param`` names the parameter the allow-list came from, if not PhoneNoB."""
        bindings = self.bindings
        call_restrict = _call_restrict(
            params, b_given=bool(params.get("PhoneNoB")), allowed=restrict.RESTRICTIONS
        )
        try:
            # The binding is marked as this face's (with its PoolKey, CallRestrict
            # and group) in its own transaction.
            with binding_for(
                actor=req.actor or "",
                pool_key=params["PoolKey"],
                call_restrict=call_restrict,
                group_id=group_id,
            ):
                view = bindings.bind(req)
        except PoolExhausted as exc:
            if req.relay_numbers is not None and len(req.relay_numbers) == 1 and params.get("PhoneNoX"):
                # The caller named X: say that X cannot take it (relay numbers are public).
                [x] = req.relay_numbers
                if exc.role is not None:
                    # A party is on X already, or cooling down there: Alibaba's conflict.
                    raise BusinessError(
                        "isv.BIND_CONFLICT",
                        f"PhoneNoX {x}: a number of this binding is already bound on it, or was "
                        "until recently (it is cooling down); choose another PhoneNoX or none",
                    ) from None
                raise BusinessError(
                    "isv.NO_AVAILABLE_NUMBER", f"PhoneNoX {x} cannot take this binding: {exc}"
                ) from None
            raise _translate(exc) from None
        except _NUMBERS_ERRORS as exc:
            if allow_param and isinstance(exc, InvalidRequest) and exc.field.startswith("allow"):
                raise invalid_parameter(allow_param, exc.reason) from None
            raise _translate(exc) from None
        if call_restrict is not None and self.restrictions is not None:
            self.restrictions.forget(view.id)  # this process checks for restrictions again at once
        return _bind_dto(view)

    def _common(self, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        _unsupported(params, "RingConfig", "ASRStatus", "ASRModelId", "DtmfConfig")
        region = self._pool_key(params, principal)
        common = {
            "order_id": _order_id(params),
            "owner": principal.owner,
            "region": region,
            "expires_at": parse_expiration(params.get("Expiration")),
            "record": _flag(params, "IsRecordingEnabled"),
            "actor": f"apikey:{principal.key_id}",
        }
        return {**common, **self._relays(params, principal, region)}

    def _relays(self, params: dict[str, str], principal: Principal, region: str | None) -> dict[str, Any]:
        """Which relay numbers the bind may take (``relay_numbers``) and tries
        first (``prefer_relays``): PoolKey's own numbers, PhoneNoX, ExpectCity."""
        city = _text(params, "ExpectCity", MAX_CITY)
        x_raw = params.get("PhoneNoX")
        pool_key = params["PoolKey"]
        with self.services.db.session() as session:
            own = pool_numbers(session, owner=principal.owner, pool_key=pool_key)
            if x_raw:
                return {"relay_numbers": frozenset({self._phone_no_x(session, x_raw, region, own)})}
            if city is None:
                return {"relay_numbers": own or None}
            candidates = own or frozenset(usable_numbers(session))
        return {"relay_numbers": own or None, "prefer_relays": self.cities.in_city(city, candidates)}

    def _phone_no_x(self, session: Session, raw: str, region: str | None, own: frozenset[str]) -> str:
        """PhoneNoX in E.164, if the bind may use it: a number of the pool (of
        the PoolKey's numbers, when it has any). A value that is not a relay
        number is never echoed: it could be someone's own number."""
        try:
            # A relay number's rules, not a party's (the vault refuses some kinds).
            x = parse_relay_number(raw, field="PhoneNoX", region=region)
        except InvalidRequest as exc:
            raise invalid_number("PhoneNoX", exc.reason) from None
        relay = session.get(RelayNumber, x)
        if relay is None or relay.status == "retired":
            raise invalid_parameter("PhoneNoX", "is not a relay number of this pool")
        if own and x not in own:
            raise invalid_parameter("PhoneNoX", f"{x} is not one of this PoolKey's numbers")
        return x

    def bind_axb(self, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        common = self._common(params, principal)
        parties = {"a": _required(params, "PhoneNoA"), "b": _required(params, "PhoneNoB")}
        return self._bind(BindRequest(mode="axb", parties=parties, **common), params)

    def bind_axn_extension(self, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        _unsupported(params, "Extension", "Extend")
        common = self._common(params, principal)
        parties = {"buyer": _required(params, "PhoneNoA")}
        b = params.get("PhoneNoB")
        allow: list[str] | Literal["any"] = [b] if b else "any"
        return self._bind(BindRequest(mode="axe", parties=parties, allow=allow, **common), params)

    def _pool_key(self, params: dict[str, str], principal: Principal) -> str:
        """Check that PoolKey is one of the owner's (``isv.POOLKEY_NOT_EXISTS``);
        the region national numbers are read in."""
        region = _region(params)
        with self.services.db.session() as session:
            if not pool_key_exists(session, owner=principal.owner, pool_key=params["PoolKey"]):
                raise no_such_pool_key()
        return region

    def bind_axn(self, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        """AXN: with PhoneNoB, an ``axb`` binding (A calling X reaches B, B calling
        X reaches A); without, an ``axe`` binding of A that any caller reaches
        with its extension (maskline gives no relay number to one party alone)."""
        _unsupported(params, "Extend", "NoType")
        common = self._common(params, principal)
        a, b = _required(params, "PhoneNoA"), params.get("PhoneNoB")
        if b:
            return self._bind(BindRequest(mode="axb", parties={"a": a, "b": b}, **common), params)
        request = BindRequest(mode="axe", parties={"buyer": a}, allow="any", **common)
        return self._bind(request, params)

    def query_subs_id(self, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        self._pool_key(params, principal)
        return self.inventory.query_subs_id(params, principal)

    def query_secret_no_remain(self, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        return self.inventory.query_secret_no_remain(params, principal)

    def buy_secret_no(self, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        _region(params)  # PoolKey given; buying into a new PoolKey of the owner makes it
        return self.inventory.buy_secret_no(params, principal)

    def release_secret_no(self, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        self._pool_key(params, principal)
        return self.inventory.release_secret_no(params, principal)

    def add_axn_track_no(self, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        view = self._subscription(params, principal, "PhoneNoX")
        return self.tracking.add(view, params, principal)

    def query_phone_no_a_by_track_no(self, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        # No PoolKey in this action; PhoneNoX, if given, narrows the search.
        x = params.get("PhoneNoX")
        relay = _relay_form(x, "PhoneNoX", MAINLAND) if x else None
        return self.tracking.query(params, principal, relay)

    def query_record_file_download_url(self, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        """``CallId`` (the CallSid that receipts carry as ``call_id``) -> the
        recording's ``DownloadUrl``: Twilio's URL of the recording (fetched with
        the deployment's Twilio credentials; maskline keeps no audio)."""
        self._pool_key(params, principal)
        call_id = _text(params, "CallId", 64)
        if call_id is None:
            raise invalid_parameter("CallId", "is required: the call_id of the call's receipt")
        _required(params, "CallTime")  # Alibaba requires it; the CallId alone finds the call here
        with self.services.db.session() as session:
            url = session.scalar(
                select(Recording.url)
                .where(Recording.call_sid == call_id, Recording.owner == principal.owner)
                .order_by(Recording.created_at.desc())
                .limit(1)
            )
        if url is None:
            raise BusinessError("isv.NO_NOT_EXIST", "no recording of this call")
        return {"DownloadUrl": url}

    def _subscription(self, params: dict[str, str], principal: Principal, number_param: str) -> BindingView:
        region = self._pool_key(params, principal)
        subs_id = _required(params, "SubsId")
        number = params.get(number_param)
        try:
            view: BindingView = self.bindings.get(subs_id, owner=principal.owner)
        except BindingNotFound as exc:
            raise _translate(exc) from None
        if number and _relay_form(number, number_param, region) != view.relay_number:
            raise BusinessError("isv.NO_NOT_EXIST", f"no such subscription on this {number_param}")
        return view

    def update_subscription(self, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        view = self._subscription(params, principal, "PhoneNoX")
        operation = _required(params, "OperateType")
        if operation in ("updateNoA", "updateNoB"):
            return self.updates.replace_party(view, operation, params, principal, _region(params))
        if operation == "updateOutId":
            return self.updates.out_id(view, params, principal)
        if operation == "updateIsRecordingEnabled":
            return self.updates.recording(view, params, principal)
        if operation in REFUSED_UPDATES:
            reason = REFUSED_UPDATES[operation]
            raise invalid_parameter("OperateType", f"{operation} is not supported: {reason}")
        if operation not in UPDATE_OPERATIONS:
            raise invalid_parameter("OperateType", f"must be one of {', '.join(UPDATE_OPERATIONS)}")
        if operation == "updateCallRestrict":
            return self._update_call_restrict(view, params, principal)
        if operation == "updateAxgGroup":
            return self._update_axg_group(view, params, principal)
        if operation == "updateCallDisplayType":
            # Alibaba's only value: X is shown to both sides, which maskline always does.
            if params.get("CallDisplayType") != "1":
                raise invalid_parameter("CallDisplayType", "must be 1 (X shown on both sides)")
            if view.status != "active":
                raise _translate(BindingNotLive("ended"))
            return {}
        expires_at = parse_expiration(params.get("Expiration"))
        try:
            self.bindings.extend(
                view.id, owner=principal.owner, expires_at=expires_at, actor=f"apikey:{principal.key_id}"
            )
        except _NUMBERS_ERRORS as exc:
            raise _translate(exc) from None
        return {}

    def _own_subscription(self, session: Session, view: BindingView, operation: str) -> AliyunSubscription:
        """The face's row of a live subscription it made (for operations only it records)."""
        if view.status != "active":
            raise _translate(BindingNotLive("ended"))
        subscription = session.get(AliyunSubscription, view.id, with_for_update=True)
        if subscription is None:
            raise invalid_parameter(
                "OperateType", f"{operation} applies to subscriptions bound through this interface only"
            )
        return subscription

    def _update_call_restrict(
        self, view: BindingView, params: dict[str, str], principal: Principal
    ) -> dict[str, Any]:
        if not params.get("CallRestrict"):
            raise invalid_parameter("CallRestrict", "is required with updateCallRestrict")
        with self.services.db.session() as session:
            subscription = self._own_subscription(session, view, "updateCallRestrict")
            binding = session.get(Binding, view.id)
            assert binding is not None
            # Has a B: an axb binding, an AXG one with a party b, an AXN one with its allowed caller.
            roles = {m.role for m in binding.members}
            b_role = "b" if view.mode == "axb" or subscription.group_id is not None else "caller"
            b_given = b_role in roles
            value = _call_restrict(params, b_given=b_given, allowed=(*restrict.RESTRICTIONS, restrict.CLEAR))
            subscription.call_restrict = None if value == restrict.CLEAR else value
            self.services.audit.append(
                session,
                AuditEntry(
                    actor=f"apikey:{principal.key_id}",
                    action="aliyun.subscription.call_restrict",
                    subject=view.id,
                    data={"call_restrict": subscription.call_restrict},
                ),
            )
        if self.restrictions is not None:
            self.restrictions.forget(view.id)
        return {}

    def _update_axg_group(
        self, view: BindingView, params: dict[str, str], principal: Principal
    ) -> dict[str, Any]:
        with self.services.db.session() as session:
            subscription = self._own_subscription(session, view, "updateAxgGroup")
            if subscription.group_id is None:
                raise invalid_parameter("OperateType", "updateAxgGroup applies to AXG subscriptions only")
            group = self._group(session, params, principal)
            binding = session.get(Binding, view.id)
            assert binding is not None
            # A and B stay; only G's numbers (role "caller") are replaced.
            parties = {m.token for m in binding.members if m.role != "caller"}
            has_b = any(m.role == "b" for m in binding.members)
            allow = [n for t, n in self._group_numbers(session, group) if t not in parties]
        if not allow and not has_b:
            raise invalid_parameter("GroupId", "the group has no numbers to allow")
        if len(allow) > MAX_ALLOWED_CALLERS:
            raise invalid_parameter(
                "GroupId", f"maskline allows at most {MAX_ALLOWED_CALLERS} callers per binding"
            )
        actor = f"apikey:{principal.key_id}"
        try:
            with regrouping(actor=actor, binding_id=view.id, group_id=group.id):
                self.bindings.update(
                    view.id, owner=principal.owner, allow=allow, actor=actor, reason="updateAxgGroup"
                )
        except _NUMBERS_ERRORS as exc:
            if isinstance(exc, InvalidRequest) and exc.field.startswith("allow"):
                raise invalid_parameter("GroupId", exc.reason) from None
            raise _translate(exc) from None
        return {}

    def unbind_subscription(self, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        view = self._subscription(params, principal, "SecretNo")
        try:
            self.bindings.unbind(view.id, owner=principal.owner, actor=f"apikey:{principal.key_id}")
        except _NUMBERS_ERRORS as exc:
            raise _translate(exc) from None
        return {}

    def query_subscription_detail(self, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        view = self._subscription(params, principal, "PhoneNoX")
        masked = self._masked_parties(view.id)
        with self.services.db.session() as session:
            subscription = session.get(AliyunSubscription, view.id)
            call_restrict = subscription.call_restrict if subscription else None
            group_id = subscription.group_id if subscription else None
        return {
            "SecretBindDetailDTO": {
                "SubsId": view.id,
                "PhoneNoX": national(view.relay_number),
                "Extension": view.extension,
                "PhoneNoA": masked[0] if masked else None,
                "PhoneNoB": masked[1] if len(masked) > 1 else None,
                "ExpireDate": beijing(view.expires_at),
                "GmtCreate": beijing(view.created_at),
                "Status": 1 if view.status == "active" else 0,
                "NeedRecord": view.record,
                "CallRestrict": call_restrict,
                "GroupId": group_id,
            }
        }

    def query_call_status(self, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        """The subscription's latest call, live or ended: its status word
        (``in-progress``, ``completed``, ``busy``, ``no-answer``, ...) and the
        called party, masked."""
        view = self._subscription(params, principal, "PhoneNoX")
        found = latest_call(self.services, view, owner=principal.owner)
        return {"SecretCallStatusDTO": {"Status": found.status, "CalledNo": found.called}}

    def _masked_parties(self, binding_id: str) -> list[str]:
        """The binding's parties (then an axe binding's allowed caller), masked."""
        services = self.services
        try:
            with services.db.session() as session:
                binding = session.get(Binding, binding_id)
                assert binding is not None
                members = list(binding.parties) + [m for m in binding.callers if m.role == "caller"]
                return [mask(services.vault.open(session, m.token)) for m in members]
        except VaultError:
            return ["****"]

    # -- AXG: number groups and bindings over them ---------------------------------

    def _numbers(self, params: dict[str, str], region: str | None, *, required: bool) -> list[str]:
        """Group G's ``Numbers`` (comma-separated), normalized; each error names its position."""
        raw = params.get("Numbers", "")
        items = [item.strip() for item in raw.split(",") if item.strip()]
        if required and not items:
            raise invalid_parameter("Numbers", "is required: phone numbers separated by commas")
        if len(items) > MAX_GROUP_NUMBERS:
            raise invalid_parameter("Numbers", f"at most {MAX_GROUP_NUMBERS} numbers at a time")
        vault = self.services.vault
        try:
            normalized = [
                vault.normalize(item, field=f"Numbers[{i}]", region=region) for i, item in enumerate(items)
            ]
        except InvalidPhoneNumber as exc:
            raise invalid_number(exc.field, exc.reason) from None
        return list(dict.fromkeys(normalized))

    def _group(self, session: Session, params: dict[str, str], principal: Principal) -> AliyunAxgGroup:
        raw = _required(params, "GroupId")
        group = (
            session.get(AliyunAxgGroup, int(raw))
            if raw.isascii() and raw.isdigit() and len(raw) < 18
            else None
        )
        if group is None or group.owner != principal.owner:
            raise invalid_parameter("GroupId", "no such group")
        return group

    def _add_members(self, session: Session, group: AliyunAxgGroup, numbers: list[str]) -> None:
        stored = self.services.vault.put_many_normalized(session, numbers)
        members = set(
            session.scalars(select(AliyunAxgMember.token).where(AliyunAxgMember.group_id == group.id))
        )
        for put in stored:
            if put.token not in members:
                session.add(
                    AliyunAxgMember(group_id=group.id, token=put.token, added_at=self.services.clock())
                )
                members.add(put.token)
        if len(members) > MAX_GROUP_NUMBERS:
            raise invalid_parameter("Numbers", f"a group holds at most {MAX_GROUP_NUMBERS} numbers")

    def create_axg_group(self, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        region = self._pool_key(params, principal)
        name, remark = params.get("Name", ""), params.get("Remark", "")
        if len(name) > 128:
            raise invalid_parameter("Name", "at most 128 characters")
        if len(remark) > 256:
            raise invalid_parameter("Remark", "at most 256 characters")
        numbers = self._numbers(params, region, required=False)
        with self.services.db.session() as session:
            group = AliyunAxgGroup(
                owner=principal.owner,
                pool_key=params["PoolKey"],
                name=name,
                remark=remark,
                created_at=self.services.clock(),
            )
            session.add(group)
            session.flush()
            group.name = group.name or str(group.id)
            self._add_members(session, group, numbers)
            return {"GroupId": group.id}

    def operate_axg_group(self, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        region = self._pool_key(params, principal)
        operation = _required(params, "OperateType")
        if operation not in GROUP_OPERATIONS:
            raise invalid_parameter("OperateType", f"must be one of {', '.join(GROUP_OPERATIONS)}")
        numbers = self._numbers(params, region, required=True)
        vault = self.services.vault
        with self.services.db.session() as session:
            group = self._group(session, params, principal)
            if operation == "addNumbers":
                self._add_members(session, group, numbers)
                return {}
            if operation == "overwriteNumbers":
                session.execute(delete(AliyunAxgMember).where(AliyunAxgMember.group_id == group.id))
                self._add_members(session, group, numbers)
                return {}
            tokens = [t for t in (vault.lookup(session, n) for n in numbers) if t is not None]
            session.execute(
                delete(AliyunAxgMember).where(
                    AliyunAxgMember.group_id == group.id, AliyunAxgMember.token.in_(tokens)
                )
            )
            return {}

    def bind_axg(self, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        common = self._common(params, principal)
        a, b = _required(params, "PhoneNoA"), params.get("PhoneNoB")
        vault = self.services.vault
        try:
            parties_e164 = {vault.normalize(a, field="PhoneNoA", region=common["region"])}
            if b:
                parties_e164.add(vault.normalize(b, field="PhoneNoB", region=common["region"]))
        except InvalidPhoneNumber as exc:
            raise invalid_number(exc.field, exc.reason) from None
        with self.services.db.session() as session:
            group = self._group(session, params, principal)
            group_id = group.id
            numbers = [n for _token, n in self._group_numbers(session, group)]
        allow = [n for n in numbers if n not in parties_e164]
        if not allow and not b:
            raise invalid_parameter("GroupId", "the group has no numbers to allow")
        if len(allow) > MAX_ALLOWED_CALLERS:
            raise invalid_parameter(
                "GroupId", f"maskline allows at most {MAX_ALLOWED_CALLERS} callers per binding"
            )
        parties = {"buyer": a, **({"b": b} if b else {})}
        request = BindRequest(mode="axe", parties=parties, allow=allow or None, **common)
        return self._bind(request, params, allow_param="GroupId", group_id=group_id)

    def _group_numbers(self, session: Session, group: AliyunAxgGroup) -> list[tuple[str, str]]:
        """(vault token, number) of group G's members, oldest first; erased ones left out."""
        tokens = session.scalars(
            select(AliyunAxgMember.token)
            .where(AliyunAxgMember.group_id == group.id)
            .order_by(AliyunAxgMember.added_at, AliyunAxgMember.token)
        ).all()
        numbers = []
        for token in tokens:
            try:
                numbers.append((token, self.services.vault.open(session, token)))
            except VaultEntryErased:
                continue  # erased (PIPL / GDPR) since it joined the group: gone from it too
        return numbers


Handler = Callable[[Actions, dict[str, str], Principal], dict[str, Any]]
HANDLERS: dict[str, tuple[str, Handler]] = {
    "BindAxb": ("bindings:write", Actions.bind_axb),
    "BindAxn": ("bindings:write", Actions.bind_axn),
    "BindAxnExtension": ("bindings:write", Actions.bind_axn_extension),
    "QuerySubsId": ("bindings:read", Actions.query_subs_id),
    "QuerySecretNoRemain": ("bindings:read", Actions.query_secret_no_remain),
    "BuySecretNo": ("bindings:write", Actions.buy_secret_no),
    "ReleaseSecretNo": ("bindings:write", Actions.release_secret_no),
    "AddAxnTrackNo": ("bindings:write", Actions.add_axn_track_no),
    "QueryRecordFileDownloadUrl": ("bindings:read", Actions.query_record_file_download_url),
    "QueryPhoneNoAByTrackNo": ("bindings:read", Actions.query_phone_no_a_by_track_no),
    "UpdateSubscription": ("bindings:write", Actions.update_subscription),
    "UnbindSubscription": ("bindings:write", Actions.unbind_subscription),
    "QuerySubscriptionDetail": ("bindings:read", Actions.query_subscription_detail),
    "QueryCallStatus": ("bindings:read", Actions.query_call_status),
    "CreateAxgGroup": ("bindings:write", Actions.create_axg_group),
    "OperateAxgGroup": ("bindings:write", Actions.operate_axg_group),
    "BindAxg": ("bindings:write", Actions.bind_axg),
}

__all__ = ["HANDLERS", "Actions", "beijing", "mask", "parse_expiration"]
