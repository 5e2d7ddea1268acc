"""The Dyplsapi operations over maskline's bindings (no Flask here).

Mapping:

* SubsId is the binding id; SecretNo / PhoneNoX the relay number (E.164).
* BindAxb: an ``axb`` binding with roles ``a`` and ``b``.
* BindAxnExtension: an ``axe`` binding of A; with PhoneNoB, B is its only
  allowed caller (and A calling X reaches B); without, any caller who keys
  the extension (Alibaba's AXN), as the caller asked for explicitly.
* PoolKey: maskline has one pool per deployment. A two-letter region code
  (``CN``, ``US``) also says in which region national numbers are read;
  any other key reads them in the deployment's default region.
* Expiration: ``yyyy-MM-dd HH:mm:ss`` in Beijing time (UTC+8).
* OutOrderId (else OutId) is the order id, which every binding needs.
* BindAxg: an ``axe`` binding of A whose allow-list is group G's numbers at
  the time of the bind (B, if given, is allowed as a party). A group's
  numbers are vault tokens; CreateAxgGroup / OperateAxgGroup change them.
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
from maskline.compat.aliyun.interfaces import BusinessError, ServiceUnavailable, invalid_parameter
from maskline.compat.aliyun.models import AliyunAxgGroup, AliyunAxgMember
from maskline.compat.aliyun.receipts import Receipts, binding_for
from maskline.numbers.interfaces import (
    BindingNotFound,
    BindingNotLive,
    BindingView,
    BindRequest,
    InvalidRequest,
    PoolExhausted,
    RoutingUnavailable,
)
from maskline.numbers.models import Binding
from maskline.numbers.services import MAX_ALLOWED_CALLERS
from maskline.vault.interfaces import InvalidPhoneNumber, VaultEntryErased, VaultError
from maskline.webhooks.models import Interaction

BEIJING = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
EXPIRATION_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_ORDER_ID = 128
# Alibaba's limit of a group G; a binding still takes at most 20 allowed callers.
MAX_GROUP_NUMBERS = 200
GROUP_OPERATIONS = ("addNumbers", "deleteNumbers", "overwriteNumbers")
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


def _region(params: dict[str, str]) -> str | None:
    pool_key = _required(params, "PoolKey")
    if len(pool_key) > 64:
        raise invalid_parameter("PoolKey", "is longer than 64 characters")
    upper = pool_key.upper()
    return upper if len(upper) == 2 and upper in phonenumbers.SUPPORTED_REGIONS else None


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


def _translate(exc: Exception) -> BusinessError | ServiceUnavailable:
    """The numbers and vault packages' errors in Alibaba's codes (no numbers in them)."""
    if isinstance(exc, InvalidRequest | InvalidPhoneNumber):
        return invalid_parameter(_param(exc.field), exc.reason)
    if isinstance(exc, PoolExhausted):
        return BusinessError("isv.NO_AVAILABLE_NUMBER", "no relay number of the pool can take this binding")
    if isinstance(exc, BindingNotFound):
        return BusinessError("isv.NO_NOT_EXIST", "no such subscription")
    if isinstance(exc, BindingNotLive):
        return BusinessError("isv.SUBS_EXPIRED", "the subscription has ended")
    if isinstance(exc, RoutingUnavailable):
        return ServiceUnavailable("the routing store cannot be reached; retry later")
    raise exc


_NUMBERS_ERRORS = (
    InvalidRequest,
    InvalidPhoneNumber,
    PoolExhausted,
    BindingNotFound,
    BindingNotLive,
    RoutingUnavailable,
)


def _bind_dto(view: BindingView) -> dict[str, Any]:
    return {"SecretBindDTO": {"SubsId": view.id, "SecretNo": view.relay_number, "Extension": view.extension}}


def mask(e164: str) -> str:
    """A party number as QuerySubscriptionDetail shows it: the country code,
    every other digit masked (``+86***********``)."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return "****"
    national = phonenumbers.national_significant_number(parsed)
    return f"+{parsed.country_code}{'*' * len(national)}"


class Actions:
    """One method per Dyplsapi action: (parameters, principal) -> the answer's fields."""

    def __init__(self, *, services: Any, receipts: Receipts) -> None:
        self.services = services
        self.receipts = receipts
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
        self, req: BindRequest, params: dict[str, str], *, allow_param: str | None = None
    ) -> dict[str, Any]:
        """Bind; ``allow_param`` names the parameter the allow-list came from, if not PhoneNoB."""
        bindings = self.bindings
        try:
            # The binding is marked as this face's (with its PoolKey) in its own transaction.
            with binding_for(actor=req.actor or "", pool_key=params["PoolKey"]):
                view = bindings.bind(req)
        except _NUMBERS_ERRORS as exc:
            if allow_param and isinstance(exc, InvalidRequest) and exc.field.startswith("allow"):
                raise invalid_parameter(allow_param, exc.reason) from None
            raise _translate(exc) from None
        return _bind_dto(view)

    def _common(self, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        _unsupported(
            params, "PhoneNoX", "CallRestrict", "RingConfig", "ASRStatus", "ASRModelId", "DtmfConfig"
        )
        return {
            "order_id": _order_id(params),
            "owner": principal.owner,
            "region": _region(params),
            "expires_at": parse_expiration(params.get("Expiration")),
            "record": _flag(params, "IsRecordingEnabled"),
            "actor": f"apikey:{principal.key_id}",
        }

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

    def _subscription(self, params: dict[str, str], principal: Principal, number_param: str) -> BindingView:
        _region(params)
        subs_id = _required(params, "SubsId")
        number = params.get(number_param)
        try:
            view: BindingView = self.bindings.get(subs_id, owner=principal.owner)
        except BindingNotFound as exc:
            raise _translate(exc) from None
        if number and number != view.relay_number:
            raise BusinessError("isv.NO_NOT_EXIST", f"no such subscription on this {number_param}")
        return view

    def update_subscription(self, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        view = self._subscription(params, principal, "PhoneNoX")
        operation = _required(params, "OperateType")
        if operation != "updateExpire":
            raise invalid_parameter("OperateType", "maskline supports updateExpire only")
        expires_at = parse_expiration(params.get("Expiration"))
        try:
            self.bindings.extend(
                view.id, owner=principal.owner, expires_at=expires_at, actor=f"apikey:{principal.key_id}"
            )
        except _NUMBERS_ERRORS as exc:
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
        return {
            "SecretBindDetailDTO": {
                "SubsId": view.id,
                "PhoneNoX": view.relay_number,
                "Extension": view.extension,
                "PhoneNoA": masked[0] if masked else None,
                "PhoneNoB": masked[1] if len(masked) > 1 else None,
                "ExpireDate": beijing(view.expires_at),
                "GmtCreate": beijing(view.created_at),
                "Status": 1 if view.status == "active" else 0,
                "NeedRecord": view.record,
                "CallRestrict": None,
                "GroupId": None,
            }
        }

    def query_call_status(self, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        """The subscription's latest finished call: maskline's status word
        (``completed``, ``busy``, ``no-answer``, ...) and the called party, masked."""
        view = self._subscription(params, principal, "PhoneNoX")
        services = self.services
        with services.db.session() as session:
            call = session.scalars(
                select(Interaction)
                .where(Interaction.binding_id == view.id, Interaction.owner == principal.owner)
                .where(Interaction.type == "call")
                .order_by(Interaction.started_at.desc(), Interaction.sid.desc())
                .limit(1)
            ).first()
            if call is None:
                return {"SecretCallStatusDTO": {"Status": None, "CalledNo": None}}
            binding = session.get(Binding, view.id)
            assert binding is not None
            member = next((m for m in binding.members if m.role == call.to_role), None)
            try:
                called = mask(services.vault.open(session, member.token)) if member else None
            except VaultError:
                called = "****"
            return {"SecretCallStatusDTO": {"Status": call.status, "CalledNo": called}}

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
            raise invalid_parameter(exc.field, exc.reason) from None
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
        region = _region(params)
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
        region = _region(params)
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
            raise invalid_parameter(exc.field, exc.reason) from None
        with self.services.db.session() as session:
            group = self._group(session, params, principal)
            tokens = session.scalars(
                select(AliyunAxgMember.token)
                .where(AliyunAxgMember.group_id == group.id)
                .order_by(AliyunAxgMember.added_at, AliyunAxgMember.token)
            ).all()
            numbers = []
            for token in tokens:
                try:
                    numbers.append(vault.open(session, token))
                except VaultEntryErased:
                    continue  # erased (PIPL / GDPR) since it joined the group: gone from it too
        allow = [n for n in numbers if n not in parties_e164]
        if not allow and not b:
            raise invalid_parameter("GroupId", "the group has no numbers to allow")
        if len(allow) > MAX_ALLOWED_CALLERS:
            raise invalid_parameter(
                "GroupId", f"maskline allows at most {MAX_ALLOWED_CALLERS} callers per binding"
            )
        parties = {"buyer": a, **({"b": b} if b else {})}
        request = BindRequest(mode="axe", parties=parties, allow=allow or None, **common)
        return self._bind(request, params, allow_param="GroupId")


Handler = Callable[[Actions, dict[str, str], Principal], dict[str, Any]]
HANDLERS: dict[str, tuple[str, Handler]] = {
    "BindAxb": ("bindings:write", Actions.bind_axb),
    "BindAxnExtension": ("bindings:write", Actions.bind_axn_extension),
    "UpdateSubscription": ("bindings:write", Actions.update_subscription),
    "UnbindSubscription": ("bindings:write", Actions.unbind_subscription),
    "QuerySubscriptionDetail": ("bindings:read", Actions.query_subscription_detail),
    "QueryCallStatus": ("bindings:read", Actions.query_call_status),
    "CreateAxgGroup": ("bindings:write", Actions.create_axg_group),
    "OperateAxgGroup": ("bindings:write", Actions.operate_axg_group),
    "BindAxg": ("bindings:write", Actions.bind_axg),
}

__all__ = ["HANDLERS", "Actions", "beijing", "mask", "parse_expiration"]
