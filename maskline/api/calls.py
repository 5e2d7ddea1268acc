"""Click-to-call: Twilio calls the initiating party, then bridges to the other.

Both legs show the relay number. The order of work:

1. the binding (the owner's, else 404), live (else 409);
2. the two parties (422 unless ``from_role`` names one of exactly two);
3. the binding's call quota, counted as an inbound call is (429 past it);
4. the bridge decision, stored in Redis under a random reference, naming
   the other party by vault token (``maskline.webhooks.bridge``);
5. an audit record (``call.requested``, by the API key), in a transaction
   of its own: no call without one;
6. Twilio's ``Calls.json``: To the initiator, From the relay number, Url the
   signed bridge webhook (502, scrubbed, if Twilio refuses);
7. the decision under the new CallSid, so the status callback stores the
   interaction (from_role -> to_role) even if the initiator never answers.

axe bindings: an axb binding that fell back to axe, and an axe binding with
exactly one allowed caller, have exactly two participants (the bound party
and that caller, whose role is ``caller`` unless it was a party of the
original request): click-to-call works between them as in axb. With an open
extension or several allowed callers, "the other party" is not one person,
so the request is refused (422) rather than guessed.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, selectinload

from maskline import errors
from maskline.api.interfaces import BindingEnded, Conflict, FieldError, Unprocessable
from maskline.audit.interfaces import AuditEntry
from maskline.numbers.interfaces import BindingNotFound
from maskline.numbers.models import Binding
from maskline.numbers.routes import epoch
from maskline.twilio_rest import TwilioError, calling, make_client
from maskline.webhooks.bridge import BRIDGE_PATH, Bridge, BridgeStore
from maskline.webhooks.interfaces import StepDecision
from maskline.webhooks.services import DecisionStore, Quotas

log = logging.getLogger(__name__)
STATUS_PATH = "/webhooks/twilio/voice/status"


class CallQuotaExceeded(errors.Conflict):
    """The binding's calls per hour or per day are used up."""


class ClickToCallUnavailable(errors.Unavailable):
    """Click-to-call is not configured, or Redis / the vault cannot serve it; the message says which."""


@dataclass(frozen=True, kw_only=True)
class PlacedCall:
    sid: str
    binding_id: str
    from_role: str
    to_role: str
    status: str

    def to_json(self) -> dict[str, str]:
        return {
            "sid": self.sid,
            "binding_id": self.binding_id,
            "from_role": self.from_role,
            "to_role": self.to_role,
            "status": self.status,
        }


@dataclass(frozen=True)
class _Participant:
    role: str
    token: str


def participants(binding: Binding) -> list[_Participant]:
    """The people a click-to-call may join: an axb's two parties, or an axe's
    bound party and its one allowed caller (see the module docstring)."""
    people = [_Participant(m.role, m.token) for m in binding.parties]
    if binding.mode == "axe":
        if binding.allow_any or len(binding.callers) != 1:
            return []
        people += [_Participant(m.role, m.token) for m in binding.callers]
    roles = {p.role for p in people}
    return people if len(people) == 2 and len(roles) == 2 else []


class ClickToCall:
    """Places click-to-calls for ``POST /v1/bindings/{id}/calls``."""

    def __init__(self, *, services: Any) -> None:
        self.services = services
        self.settings = services.settings
        self._parts: tuple[BridgeStore, DecisionStore, Quotas] | None = None
        self._client: Any = None

    def _redis_parts(self) -> tuple[BridgeStore, DecisionStore, Quotas]:
        if self._parts is None:
            client, s = self.services.redis, self.settings
            self._parts = (
                BridgeStore(client),
                DecisionStore.from_settings(client, s),
                Quotas(client, limits={"call": (s.calls_per_hour, s.calls_per_day)}),
            )
        return self._parts

    def place(
        self,
        binding_id: str,
        *,
        owner: str,
        from_role: str,
        actor: str,
        before_dial: Callable[[Session], None] | None = None,
    ) -> PlacedCall:
        """Raises BindingNotFound, Conflict, Unprocessable, CallQuotaExceeded,
        ClickToCallUnavailable or TwilioError (scrubbed).

        ``before_dial(session)`` runs in the transaction of the audit record
        written just before Twilio is asked for the call (the Idempotency-Key
        is marked there); what it raises stops the call.
        """
        now = self.services.clock()
        relay, initiator, other = self._parties(binding_id, owner, from_role, now)
        if not self.settings.public_url:
            raise ClickToCallUnavailable("click-to-call needs MASKLINE_PUBLIC_URL (the URLs Twilio calls)")
        if self._client is None:  # one client (and connection pool) per process
            self._client = make_client(self.settings)  # TwilioNotConfigured names the missing setting
        client = self._client
        bridges, decisions, quotas = self._guarded(self._redis_parts)
        if not self._guarded(lambda: quotas.take(relay, binding_id, "call", now=epoch(now))):
            raise CallQuotaExceeded(
                f"this binding's call quota ({self.settings.calls_per_hour} per hour, "
                f"{self.settings.calls_per_day} per day) is used up"
            )
        number = self._guarded(lambda: self._open(initiator.token))
        bridge = Bridge(
            binding_id=binding_id,
            from_role=initiator.role,
            to_role=other.role,
            target_token=other.token,
            relay=relay,
        )
        ref = self._guarded(lambda: bridges.put(bridge))
        try:
            self._audit(actor, owner, bridge, before_dial)
        except Conflict:
            self._quietly(lambda: bridges.drop(ref))
            raise
        except Exception as exc:
            self._quietly(lambda: bridges.drop(ref))
            raise ClickToCallUnavailable(f"a backend failed ({type(exc).__name__}); retry later") from None
        public = self.settings.public_url
        try:
            call = calling(
                lambda: client.calls.create(
                    to=number,
                    from_=relay,
                    url=f"{public}{BRIDGE_PATH}?ref={ref}",
                    method="POST",
                    status_callback=f"{public}{STATUS_PATH}",
                    status_callback_method="POST",
                ),
                region=self.settings.default_region,
            )
        except TwilioError as exc:
            if not exc.maybe_done:
                self._quietly(lambda: bridges.drop(ref))
            log.warning("click-to-call on binding %s: Twilio: %s", binding_id, exc.summary())
            raise
        sid = str(call.sid)
        decision = StepDecision(
            action="connect",
            binding_id=binding_id,
            from_role=initiator.role,
            target_role=other.role,
            target_token=other.token,
        )
        # The call is placed: a Redis hiccup now must not turn it into an error.
        self._quietly(lambda: decisions.record(sid, "api:1", decision, now=epoch(now), relay=relay))
        log.info("click-to-call %s on binding %s: %s -> %s", sid, binding_id, initiator.role, other.role)
        return PlacedCall(
            sid=sid,
            binding_id=binding_id,
            from_role=initiator.role,
            to_role=other.role,
            status=str(call.status or "queued"),
        )

    def _parties(
        self, binding_id: str, owner: str, from_role: str, now: dt.datetime
    ) -> tuple[str, _Participant, _Participant]:
        with self.services.db.session() as session:
            binding = session.get(Binding, binding_id, options=[selectinload(Binding.members)])
            if binding is None or binding.owner != owner:
                raise BindingNotFound(f"no binding {binding_id}")
            if not binding.is_live(now):
                raise BindingEnded(f"binding {binding_id} has ended")
            people = participants(binding)
            relay = binding.relay_number
        if not people:
            raise Unprocessable(
                "click-to-call needs a binding with exactly two parties",
                fields=[
                    FieldError(
                        "binding_id",
                        "is an axe binding with an open extension or several allowed callers: "
                        "there is no one other party to call",
                    )
                ],
            )
        roles = [p.role for p in people]
        if from_role not in roles:
            raise Unprocessable(
                "invalid field", fields=[FieldError("from_role", f"must be one of {', '.join(roles)}")]
            )
        initiator = next(p for p in people if p.role == from_role)
        other = next(p for p in people if p.role != from_role)
        return relay, initiator, other

    def _audit(
        self, actor: str, owner: str, bridge: Bridge, before_dial: Callable[[Session], None] | None
    ) -> None:
        """The chain records who had whom rung, by role (the call is not a SQL
        change, so the record has a transaction of its own, shared with
        ``before_dial``)."""
        with self.services.db.session() as session:
            if before_dial is not None:
                before_dial(session)
            self.services.audit.append(
                session,
                AuditEntry(
                    actor=actor,
                    action="call.requested",
                    subject=bridge.binding_id,
                    data={
                        "owner": owner,
                        "from_role": bridge.from_role,
                        "to_role": bridge.to_role,
                        "relay_number": bridge.relay,
                    },
                ),
            )

    def _open(self, token: str) -> str:
        vault = self.services.vault
        return str(self.services.db.read(lambda connection: vault.open_readonly(connection, token)))

    @staticmethod
    def _guarded(action: Any) -> Any:
        try:
            return action()
        except Exception as exc:
            raise ClickToCallUnavailable(f"a backend failed ({type(exc).__name__}); retry later") from None

    @staticmethod
    def _quietly(action: Any) -> None:
        try:
            action()
        except Exception as exc:
            log.warning("click-to-call bookkeeping failed: %s", type(exc).__name__)
