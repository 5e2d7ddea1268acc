"""Click-to-call's second step: the initiator answered, now dial the other party.

``POST /v1/bindings/{id}/calls`` stores a :class:`Bridge` under a random
reference, then asks Twilio to call the initiator from the relay number with
``/webhooks/twilio/voice/bridge?ref=<ref>`` as the call's URL. When the
initiator answers, Twilio fetches that URL (signed, like every webhook) and
gets the same ``<Dial callerId=relay>`` as an inbound call.

Redis key (no party number: ids, roles, a vault token, the public relay number):

* ``ml:br:{REF}``: hash with ``b`` (binding), ``fr``/``tr`` (roles), ``tok``
  (the other party's vault token), ``x`` (relay number) and ``sid`` (the
  call that first used it: a reference serves one call only).

Fails closed: an unknown or expired reference, a reference another call
used, a binding that has ended or no longer has that party, or any backend
failure answers with a spoken goodbye or apology, HTTP 200, dialing no one.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

from flask import current_app, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from maskline.numbers.models import Binding, BindingMember
from maskline.webhooks.interfaces import BackendUnavailable, StepDecision
from maskline.webhooks.services import WebhookService
from maskline.webhooks.views import _CALL_SID, _RELAY, _field, _hooks, _xml, bp

BRIDGE_PATH = "/webhooks/twilio/voice/bridge"
# How long a placed call may take to be answered: Twilio may queue calls
# (per-second limits) before ringing, and a phone rings up to a minute.
BRIDGE_TTL_SECONDS = 3600
_REF = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
EXTENSION_KEY = "maskline.webhooks.bridge"


@dataclass(frozen=True, kw_only=True)
class Bridge:
    """Whom a click-to-call connects, by role and vault token (never a number)."""

    binding_id: str
    from_role: str
    to_role: str
    target_token: str
    relay: str

    def decision(self) -> StepDecision:
        return StepDecision(
            action="connect",
            binding_id=self.binding_id,
            from_role=self.from_role,
            target_role=self.to_role,
            target_token=self.target_token,
        )


class BridgeStore:
    """``ml:br:{REF}``: click-to-call references, each good for one call."""

    def __init__(self, client: Any, *, ttl_seconds: int = BRIDGE_TTL_SECONDS) -> None:
        self.client = client
        self.ttl = ttl_seconds

    @staticmethod
    def key(ref: str) -> str:
        return f"ml:br:{{{ref}}}"

    def put(self, bridge: Bridge) -> str:
        """Store ``bridge`` under a new random reference; return the reference."""
        ref = secrets.token_urlsafe(18)
        fields = {
            "b": bridge.binding_id,
            "fr": bridge.from_role,
            "tr": bridge.to_role,
            "tok": bridge.target_token,
            "x": bridge.relay,
        }
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.key(ref), mapping=fields)
        pipe.expire(self.key(ref), self.ttl)
        pipe.execute()
        return ref

    def drop(self, ref: str) -> None:
        self.client.delete(self.key(ref))

    def claim(self, ref: str, call_sid: str) -> Bridge | None:
        """The bridge of ``ref`` for call ``call_sid``; None if unknown, expired, or another call's."""
        pipe = self.client.pipeline(transaction=True)
        pipe.exists(self.key(ref))
        pipe.hsetnx(self.key(ref), "sid", call_sid)
        pipe.hgetall(self.key(ref))
        exists, _, raw = pipe.execute()
        if not exists:
            self.client.delete(self.key(ref))  # HSETNX just made a husk of it
            return None
        stored = {_text(k): _text(v) for k, v in raw.items()}
        if stored.get("sid") != call_sid or not all(stored.get(k) for k in ("b", "fr", "tr", "tok", "x")):
            return None
        return Bridge(
            binding_id=stored["b"],
            from_role=stored["fr"],
            to_role=stored["tr"],
            target_token=stored["tok"],
            relay=stored["x"],
        )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class BridgeService:
    """The decision behind ``/webhooks/twilio/voice/bridge``, over the webhook service's
    de-duplication, rendering and status callbacks (the same as an inbound call's)."""

    def __init__(self, *, webhooks: WebhookService) -> None:
        self.webhooks = webhooks

    def bridge(self, *, call_sid: str, relay: str, ref: str) -> str:
        hooks = self.webhooks
        try:
            # Same order as an inbound call: de-duplicate on (sid, step), then
            # decide once; a Twilio retry gets the stored answer, a replay none.
            return hooks.answer_step(call_sid, "bridge:1", relay, lambda: self._decide(call_sid, relay, ref))
        except Exception as exc:  # never a 500 to Twilio, never a wrong party
            return hooks.apology("bridge", exc)

    def _decide(self, call_sid: str, relay: str, ref: str) -> StepDecision:
        hooks = self.webhooks
        bridge = BridgeStore(hooks.backends.redis).claim(ref, call_sid)
        if bridge is None or bridge.relay != relay:
            return hooks.reject("expired")
        if not self._still_bound(bridge):
            return hooks.reject("expired", binding_id=bridge.binding_id)
        return bridge.decision()

    def _still_bound(self, bridge: Bridge) -> bool:
        """The binding is live, and the other party is still one of its own."""
        now = self.webhooks.services.clock()

        def read(connection: Any) -> bool:
            binding = connection.execute(
                select(Binding.status, Binding.expires_at, Binding.relay_number).where(
                    Binding.id == bridge.binding_id
                )
            ).one_or_none()
            if binding is None or binding.status != "active" or binding.expires_at <= now:
                return False
            if binding.relay_number != bridge.relay:
                return False
            member = connection.execute(
                select(BindingMember.position).where(
                    BindingMember.binding_id == bridge.binding_id,
                    BindingMember.role == bridge.to_role,
                    BindingMember.token == bridge.target_token,
                )
            ).first()
            return member is not None

        try:
            return bool(self.webhooks.db.read(read))
        except Exception as exc:
            raise BackendUnavailable(f"bridge: {type(exc).__name__}") from None


def _bridges() -> BridgeService:
    service: BridgeService | None = current_app.extensions.get(EXTENSION_KEY)
    if service is None:
        service = BridgeService(webhooks=_hooks().service)
        current_app.extensions[EXTENSION_KEY] = service
    return service


@bp.post("/voice/bridge")
def voice_bridge() -> ResponseReturnValue:
    # Signed like every webhook (the blueprint checks first). For a call
    # maskline placed, From is the relay number and To the initiator.
    call_sid = _field("CallSid", _CALL_SID)
    relay = _field("From", _RELAY)
    ref = _field("ref", _REF, request.args)
    return _xml(_bridges().bridge(call_sid=call_sid, relay=relay, ref=ref))
