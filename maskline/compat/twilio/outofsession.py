"""The out-of-session callback: a call or text to a Service's number that no
session routes.

When the router refuses a call or text to a relay number (``no_binding``:
no session there at all; ``stranger``: the caller is no participant;
``expired``: the session has ended) and the number is one of a Service's
PhoneNumbers with an ``out_of_session_callback_url``, Proxy's out-of-session
callback is queued for that Service: a form-encoded ``POST`` signed with
``X-Twilio-Signature`` as the other callbacks are, sent and retried by
``maskline worker`` through ``twilio_callbacks``. If the refused call belongs
to an ended session of one of those Services, only that Service is told;
otherwise every Service holding the number with such a URL is.

The form: ``AccountSid``, ``CallSid`` or ``MessageSid``, ``From`` (the
caller's number **masked**, as participants' identifiers are), ``To`` (the
relay number, public), ``Direction``, ``interactionServiceSid``,
``inboundResourceSid``, ``inboundResourceType``, ``outOfSessionReason``
(``no-session``, ``not-a-participant``, ``session-closed``) and, for an
ended session, ``interactionSessionSid``. Never a message body (maskline
stores none), never a party number.

Unlike Twilio, maskline does not run TwiML (or create a session from JSON)
returned by the customer: that would let whoever controls that server dial
any number with the relay number as caller id. The caller gets maskline's
refusal whatever the answer.

On the webhook path: registered with the webhook service's rejections. A
refused call costs a set lookup of its reason and a dictionary lookup of its
number; the numbers of Services with an out-of-session URL are read every
:data:`REFRESH` seconds (one query). Only for a number found there is
anything written: one indexed query for the ended session and one INSERT per
Service. Nothing here waits on HTTP, and a failure is logged by the webhook
service and changes nothing for the caller.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from maskline.compat.twilio.autocreate import CALLER_TOKEN
from maskline.compat.twilio.callbacks import enqueue
from maskline.compat.twilio.models import ProxyPhoneNumber, ProxyService, ProxySession
from maskline.compat.twilio.services import mask_identifier
from maskline.webhooks.interfaces import StepDecision

log = logging.getLogger(__name__)

# Seconds between reads of which numbers have an out-of-session URL.
REFRESH = 30.0
# The router's refusals that mean "no live session routes it", as Proxy names them.
REASONS = {"no_binding": "no-session", "stranger": "not-a-participant", "expired": "session-closed"}


@dataclass(frozen=True)
class _Target:
    service_sid: str
    account_sid: str
    url: str


class OutOfSession:
    """``(kind, sid, relay, caller, decision)`` for :attr:`WebhookService.rejections`."""

    def __init__(self, *, services: Any, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.services = services
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._until = 0.0
        self._by_relay: dict[str, tuple[_Target, ...]] = {}

    def _db(self) -> Any:
        # The webhook path's database client: its statements time out fast.
        return self.services.webhook_backends.db

    def _targets(self, relay: str) -> tuple[_Target, ...]:
        now = self._monotonic()
        with self._lock:
            if now < self._until:
                return self._by_relay.get(relay, ())
        found: dict[str, list[_Target]] = {}
        with self._db().session() as session:
            rows = session.execute(
                select(
                    ProxyPhoneNumber.e164,
                    ProxyService.sid,
                    ProxyService.account_sid,
                    ProxyService.out_of_session_callback_url,
                )
                .join(ProxyService, ProxyService.sid == ProxyPhoneNumber.service_sid)
                .where(ProxyService.out_of_session_callback_url.is_not(None))
            ).all()
        for e164, service_sid, account_sid, url in rows:
            found.setdefault(e164, []).append(_Target(service_sid, account_sid, url))
        with self._lock:
            self._by_relay = {e164: tuple(targets) for e164, targets in found.items()}
            self._until = now + REFRESH
            return self._by_relay.get(relay, ())

    def __call__(self, kind: str, sid: str, relay: str, caller: str, decision: StepDecision) -> None:
        reason = REASONS.get(decision.reason or "")
        if reason is None:
            return
        targets = self._targets(relay)
        if not targets:
            return
        session_sid = None
        if decision.binding_id:
            with self._db().session() as session:
                ended = session.execute(
                    select(ProxySession.sid, ProxySession.service_sid).where(
                        ProxySession.binding_id == decision.binding_id
                    )
                ).first()
            if ended is not None and any(t.service_sid == ended[1] for t in targets):
                session_sid = ended[0]
                targets = tuple(t for t in targets if t.service_sid == ended[1])
        call = kind == "call"
        form = {
            "CallSid" if call else "MessageSid": sid,
            "From": mask_identifier(caller),
            "To": relay,
            "Direction": "inbound",
            "inboundResourceSid": sid,
            "inboundResourceType": "Call" if call else "Message",
            "outOfSessionReason": reason,
        }
        if session_sid is not None:
            form["interactionSessionSid"] = session_sid
        now = self.services.clock()
        # The caller, sealed, for an auto-create answer (the worker reads it;
        # it is never sent). Only refused calls to numbers with a URL get here.
        with self._db().session() as session:
            form[CALLER_TOKEN] = self.services.vault.put_normalized(session, caller).token
        for target in targets:
            queued = enqueue(
                self._db(),
                key=f"oos:{sid}:{target.service_sid}",
                service_sid=target.service_sid,
                account_sid=target.account_sid,
                url=target.url,
                form={**form, "interactionServiceSid": target.service_sid},
                now=now,
            )
            if not queued:
                continue  # a retried request: queued once
            log.info("out-of-session callback queued for %s (%s)", target.service_sid, reason)
