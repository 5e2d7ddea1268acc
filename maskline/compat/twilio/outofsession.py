"""The out-of-session callback: a call or text to a Service's number that no
session routes.

When the router refuses a call or text to a relay number (``no_binding``:
no session there at all; ``stranger``: the caller is no participant;
``expired``: the session has ended) and the number is one of a Service's
PhoneNumbers with an ``out_of_session_callback_url``, Proxy's out-of-session
callback is queued for that Service: a form-encoded ``POST`` signed with
``X-Twilio-Signature`` as the other callbacks are. As Proxy, it is asked
while the call waits (bounded by :data:`TIMEOUT`, when one Service holds the
number): an auto-create answer makes the session, and the call or text is
decided again, so it is connected. Not answered then (a timeout, an error,
another status), or a number in several Services: it is queued, and sent and
retried by ``maskline worker`` through ``twilio_callbacks``. If the refused call belongs
to an ended session of one of those Services, only that Service is told;
otherwise every Service holding the number with such a URL is.

The form: ``AccountSid``, ``CallSid`` or ``MessageSid``, ``From`` (the
caller's number **masked**, as participants' identifiers are), ``To`` (the
relay number, public), ``Direction``, ``interactionServiceSid``,
``inboundResourceSid``, ``inboundResourceType``, ``outOfSessionReason``
(``no-session``, ``not-a-participant``, ``session-closed``) and, for an
ended session, ``interactionSessionSid``. Never a message body (maskline
stores none), never a party number.

Unlike Twilio, maskline does not run TwiML returned by the customer: that
would let whoever controls that server dial any number with the relay number
as caller id. Short of an auto-create answer, the caller gets maskline's
refusal whatever the answer.

On the webhook path: registered with the webhook service's rejections. A
refused call costs a set lookup of its reason and a dictionary lookup of its
number; the numbers of Services with an out-of-session URL are read every
:data:`REFRESH` seconds (one query). Only for a number found there is
anything written or sent: one indexed query for the ended session, the
callback (at most :data:`TIMEOUT`), and an INSERT per Service not answered.
A failure is logged by the webhook service and changes nothing for the caller.
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
from maskline.compat.twilio.callbacks import AnswerSender, CallbackWorker, enqueue, guarded_answer_sender
from maskline.compat.twilio.models import ProxyPhoneNumber, ProxyService, ProxySession
from maskline.compat.twilio.services import mask_identifier
from maskline.webhooks.interfaces import StepDecision

log = logging.getLogger(__name__)

# Seconds between reads of which numbers have an out-of-session URL.
REFRESH = 30.0
# Seconds the caller may wait on the callback (as on the intercept callback).
TIMEOUT = 3.0
# The router's refusals that mean "no live session routes it", as Proxy names them.
REASONS = {"no_binding": "no-session", "stranger": "not-a-participant", "expired": "session-closed"}


@dataclass(frozen=True)
class _Target:
    service_sid: str
    account_sid: str
    url: str


class OutOfSession:
    """``(kind, sid, relay, caller, decision)`` for :attr:`WebhookService.rejections`."""

    def __init__(
        self,
        *,
        services: Any,
        monotonic: Callable[[], float] = time.monotonic,
        send: AnswerSender | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        self.services = services
        self._monotonic = monotonic
        self._send = send if send is not None else guarded_answer_sender(services.settings)
        self.timeout = timeout
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

    def answer_now(self, target: _Target, form: dict[str, str]) -> bool:
        """Proxy asks the out-of-session callback while the call waits: sent now,
        bounded by :data:`TIMEOUT`; an auto-create answer makes the session
        (see autocreate). True if delivered (the call is then decided again:
        connected if the answer made its session); False to queue it for the
        worker, which retries (and a later auto-create no longer connects it)."""
        worker = CallbackWorker(services=self.services, timeout=self.timeout, send=self._send)
        error = worker.attempt(
            target.account_sid, target.url, {**form, "interactionServiceSid": target.service_sid}, {}
        )
        if error is not None:
            log.info(
                "out-of-session callback for %s not answered now (%s): queued", target.service_sid, error
            )
        return error is None

    def __call__(self, kind: str, sid: str, relay: str, caller: str, decision: StepDecision) -> bool:
        reason = REASONS.get(decision.reason or "")
        if reason is None:
            return False
        targets = self._targets(relay)
        if not targets:
            return False
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
        if len(targets) == 1 and self.answer_now(targets[0], form):
            return True  # answered now: the worker has nothing to send
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
        return False
