"""UpdateSubscription's updateNoA, updateNoB, updateOutId and
updateIsRecordingEnabled, done in place (no Flask here).

The subscription keeps its SubsId and relay number. updateNoA / updateNoB
replace a party of an AXB subscription through
:class:`maskline.numbers.replace.PartyReplacer`: the routes on X move in one
atomic step, the replaced party reaches no one through X from then on, and a
new party already bound on X (or cooling down there) gets
``isv.BIND_CONFLICT``. updateOutId changes the order id (which call receipts
carry as ``out_id``); updateIsRecordingEnabled the recording of later calls.
Each is audited; no number is in an answer, an error or the audit chain.
"""

from __future__ import annotations

from typing import Any

from maskline.api.keys import Principal
from maskline.audit.interfaces import AuditEntry
from maskline.compat.aliyun.interfaces import BusinessError, invalid_number, invalid_parameter
from maskline.numbers.interfaces import BindingNotFound, BindingNotLive, BindingView, InvalidRequest
from maskline.numbers.models import Binding
from maskline.numbers.replace import PartyConflict, PartyReplacer
from maskline.vault.interfaces import InvalidPhoneNumber

MAX_ORDER_ID = 128
# The role each updateNo* replaces (BindAxb's and BindAxn-with-B's roles).
ROLES = {"updateNoA": ("a", "PhoneNoA"), "updateNoB": ("b", "PhoneNoB")}


class Updates:
    """The in-place operations of UpdateSubscription."""

    def __init__(self, *, services: Any) -> None:
        self.services = services
        self._replacer: PartyReplacer | None = None

    @property
    def replacer(self) -> PartyReplacer:
        if self._replacer is None:  # built on first use: it registers a script with Redis
            bindings = self.services.numbers.bindings
            self._replacer = PartyReplacer(
                db=self.services.db,
                vault=self.services.vault,
                routes=bindings.routes,
                audit=self.services.audit,
                clock=self.services.clock,
                cooldown=bindings.policy.cooldown,
            )
        return self._replacer

    def replace_party(
        self, view: BindingView, operation: str, params: dict[str, str], principal: Principal, region: str
    ) -> dict[str, Any]:
        role, field = ROLES[operation]
        number = params.get(field)
        if not number or not number.strip():
            raise invalid_parameter(field, f"is required with {operation}")
        try:
            self.replacer.replace(
                view.id,
                owner=principal.owner,
                role=role,
                number=number,
                field=field,
                region=region,
                actor=f"apikey:{principal.key_id}",
            )
        except InvalidPhoneNumber as exc:
            raise invalid_number(field, exc.reason) from None
        except InvalidRequest as exc:
            raise invalid_parameter(exc.field, exc.reason) from None
        except PartyConflict:
            raise BusinessError(
                "isv.BIND_CONFLICT",
                f"{field}: the number is already bound on this subscription's PhoneNoX "
                f"{view.relay_number}, or was until recently (cooling down)",
            ) from None
        except (BindingNotFound, BindingNotLive):
            raise BusinessError("isv.NO_NOT_EXIST", "the subscription has ended") from None
        return {}

    def _change(self, view: BindingView, principal: Principal, action: str, data: dict[str, Any]) -> None:
        with self.services.db.session() as session:
            binding = session.get(Binding, view.id, with_for_update=True)
            if binding is None or binding.owner != principal.owner:
                raise BusinessError("isv.NO_NOT_EXIST", "no such subscription")
            if not binding.is_live(self.services.clock()):
                raise BusinessError("isv.NO_NOT_EXIST", "the subscription has ended")
            for name, value in data.items():
                setattr(binding, name, value)
            self.services.audit.append(
                session,
                AuditEntry(actor=f"apikey:{principal.key_id}", action=action, subject=view.id, data=data),
            )

    def out_id(self, view: BindingView, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        value = params.get("OutId")
        if not value or not value.strip():
            raise invalid_parameter("OutId", "is required with updateOutId")
        if len(value) > MAX_ORDER_ID or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise invalid_parameter("OutId", f"at most {MAX_ORDER_ID} characters, no control characters")
        self._change(view, principal, "aliyun.subscription.out_id", {"order_id": value})
        return {}

    def recording(self, view: BindingView, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        value = (params.get("IsRecordingEnabled") or "").lower()
        if value not in ("true", "false"):
            raise invalid_parameter(
                "IsRecordingEnabled", "is required with updateIsRecordingEnabled: true or false"
            )
        self._change(view, principal, "aliyun.subscription.recording", {"record": value == "true"})
        return {}
