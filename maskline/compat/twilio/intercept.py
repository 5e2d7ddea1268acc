"""The intercept callback: asked before a session's call or text is connected.

As Proxy does it: a form-encoded ``POST`` to the Service's
``intercept_callback_url``, signed with ``X-Twilio-Signature`` under the auth
token of the credentials that created the Service, with the interaction's
fields (``interactionSessionSid``, ``inboundParticipantSid``,
``outboundParticipantSid``, ``inboundResourceSid``, ``interactionType``, ...).
An answer of 403 blocks the interaction: the caller hears the refusal, the
texter gets nothing. Any 2xx lets it through.

The wait is bounded (:data:`TIMEOUT`). A timeout, a refused connection or
any other status lets the interaction through, as Twilio does, unless the
Service has ``intercept_fail_closed`` (maskline's option): then it is blocked.

On the webhook path: registered with the webhook service's interceptors. A
call to a binding of no intercepting Service costs a dictionary lookup while
no Service has an intercept URL (checked every :data:`REFRESH` seconds), and
otherwise an indexed query per binding every :data:`REFRESH` seconds (so a
changed intercept URL takes effect within that). The form carries sids and
roles only.

Before that, the session's ``mode``: a ``voice-only`` session's binding
refuses texts and a ``message-only`` one refuses calls (rejected as an
intercept is, so counted with the webhook rejections). While no session of
the deployment has another mode than ``voice-and-message`` (asked every
:data:`REFRESH` seconds, at once in the process that creates one), this costs
nothing. Once one has, it stays so for the process: a session's mode never
changes and its binding id is set in the binding's own transaction, so the
answer per binding is looked up once (an indexed query) and kept; only while
the binding's row is not yet visible (the instant between routing it and
committing it) is nothing kept.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from twilio.request_validator import RequestValidator

from maskline.compat.twilio.callbacks import Sender, guarded_sender
from maskline.compat.twilio.credentials import open_token
from maskline.compat.twilio.interfaces import derived_sid
from maskline.compat.twilio.models import ProxyParticipant, ProxyService, ProxySession
from maskline.events.interfaces import InvalidEventsUrl
from maskline.events.services import check_events_url
from maskline.numbers.models import Binding
from maskline.outbound import RefusedUrl
from maskline.webhooks.interfaces import StepDecision

log = logging.getLogger(__name__)

# Seconds the caller may wait on the intercept callback (Twilio waits on
# the whole webhook for 15 s; this keeps well inside it).
TIMEOUT = 3.0
# Seconds between checks whether any Service has an intercept URL, and how
# long an unsealed token is kept (a revocation stops signing within it).
REFRESH = 30.0
# What each session mode refuses: the kind of interaction it does not carry.
REFUSES = {"voice-only": "sms", "message-only": "call"}


@dataclass(frozen=True)
class _Target:
    url: str
    fail_closed: bool
    account_sid: str
    service_sid: str
    session_sid: str
    participants: dict[str, str]


class Interceptor:
    """``(kind, decision, sid) -> go ahead?`` for :attr:`WebhookService.interceptors`."""

    def __init__(
        self,
        *,
        services: Any,
        send: Sender | None = None,
        timeout: float = TIMEOUT,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.services = services
        self._send = send if send is not None else guarded_sender(services.settings)
        self.timeout = timeout
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._any_until = 0.0
        self._any = False
        # Whether any session has a mode other than voice-and-message: once
        # True it stays True (modes never change, and sessions are rarely deleted).
        self._restricts_until = 0.0
        self._restricts = False
        self._tokens: dict[str, tuple[float, str | None]] = {}
        # binding id -> (until, its intercepting session or None): most calls
        # are to bindings of no Proxy session, and a call's binding is asked
        # about again on every call for a while.
        self._targets: dict[str, tuple[float, _Target | None]] = {}
        # binding id -> its session's mode ("" for a binding of no session).
        self._modes: dict[str, str] = {}

    def _db(self) -> Any:
        # The webhook path's database client: its statements time out fast.
        return self.services.webhook_backends.db

    def _anyone_intercepts(self) -> bool:
        now = self._monotonic()
        with self._lock:
            if now < self._any_until:
                return self._any
        with self._db().session() as session:
            found = session.scalar(
                select(ProxyService.sid).where(ProxyService.intercept_callback_url.is_not(None)).limit(1)
            )
        with self._lock:
            self._any, self._any_until = found is not None, now + REFRESH
        return found is not None

    def restricted_mode_seen(self) -> None:
        """A session with a non-default mode was created (in this process)."""
        with self._lock:
            self._restricts = True

    def _anyone_restricts(self) -> bool:
        now = self._monotonic()
        with self._lock:
            if self._restricts or now < self._restricts_until:
                return self._restricts
        with self._db().session() as session:
            # IN, not !=: answered from the index on mode, however many sessions.
            found = session.scalar(
                select(ProxySession.sid).where(ProxySession.mode.in_(list(REFUSES))).limit(1)
            )
        with self._lock:
            self._restricts = self._restricts or found is not None
            self._restricts_until = now + REFRESH
            return self._restricts

    def _mode(self, binding_id: str) -> str:
        with self._lock:
            cached = self._modes.get(binding_id)
        if cached is not None:
            return cached
        with self._db().session() as session:
            row = session.execute(
                select(Binding.id, ProxySession.mode)
                .outerjoin(ProxySession, ProxySession.binding_id == Binding.id)
                .where(Binding.id == binding_id)
            ).first()
        if row is None:  # routed but not committed yet: ask again next time
            return ""
        mode = row[1] or ""
        with self._lock:
            if len(self._modes) > 100_000:
                self._modes.clear()
            self._modes[binding_id] = mode
        return mode

    def _target(self, binding_id: str) -> _Target | None:
        now = self._monotonic()
        with self._lock:
            cached = self._targets.get(binding_id)
            if cached is not None and now < cached[0]:
                return cached[1]
        target = self._lookup(binding_id)
        with self._lock:
            if len(self._targets) > 10_000:
                self._targets.clear()
            self._targets[binding_id] = (now + REFRESH, target)
        return target

    def _lookup(self, binding_id: str) -> _Target | None:
        with self._db().session() as session:
            row = session.execute(
                select(ProxySession.sid, ProxyService)
                .join(ProxyService, ProxyService.sid == ProxySession.service_sid)
                .where(
                    ProxySession.binding_id == binding_id, ProxyService.intercept_callback_url.is_not(None)
                )
            ).first()
            if row is None:
                return None
            session_sid, service = row
            roles = {
                p.role: p.sid
                for p in session.scalars(
                    select(ProxyParticipant).where(ProxyParticipant.session_sid == session_sid)
                )
            }
        assert service.intercept_callback_url is not None
        return _Target(
            url=service.intercept_callback_url,
            fail_closed=service.intercept_fail_closed,
            account_sid=service.account_sid,
            service_sid=service.sid,
            session_sid=session_sid,
            participants=roles,
        )

    def _token(self, account_sid: str) -> str | None:
        now = self._monotonic()
        with self._lock:
            cached = self._tokens.get(account_sid)
            if cached is not None and now < cached[0]:
                return cached[1]
        token = open_token(self.services, account_sid)
        with self._lock:
            self._tokens[account_sid] = (now + REFRESH, token)
        return token

    def __call__(self, kind: str, decision: StepDecision, sid: str) -> bool:
        if not decision.binding_id:
            return True
        try:
            mode = self._mode(decision.binding_id) if self._anyone_restricts() else ""
            if REFUSES.get(mode) == kind:
                log.info("a %s session refused a %s on binding %s", mode, kind, decision.binding_id)
                return False
            if not self._anyone_intercepts():
                return True
            target = self._target(decision.binding_id)
        except Exception as exc:
            # The session's mode, or whether it intercepts, cannot be told: the webhook
            # service answers a failing backend by failing closed anyway.
            log.warning("intercept lookup failed: %s", type(exc).__name__)
            raise
        if target is None:
            return True
        return self._ask(kind, decision, sid, target)

    def _ask(self, kind: str, decision: StepDecision, sid: str, target: _Target) -> bool:
        form = {
            "interactionSid": derived_sid("interaction", sid),
            "interactionSessionSid": target.session_sid,
            "interactionServiceSid": target.service_sid,
            "interactionAccountSid": target.account_sid,
            "interactionType": "voice" if kind == "call" else "message",
            "inboundResourceSid": sid,
            "inboundResourceType": "Call" if kind == "call" else "Message",
            "inboundParticipantSid": target.participants.get(decision.from_role or "", ""),
            "outboundParticipantSid": target.participants.get(decision.target_role or "", ""),
        }
        fallback = not target.fail_closed
        settings = self.services.settings
        try:
            url = check_events_url(
                target.url, allow_loopback_http=not settings.is_production, allow=settings.outbound_allow
            )
            token = self._token(target.account_sid)
            if token is None:
                log.warning("intercept for %s: the signing credentials are revoked", target.service_sid)
                return fallback
            signature = RequestValidator(token).compute_signature(url, form)
            status = self._send(
                url, urllib.parse.urlencode(form).encode(), {"X-Twilio-Signature": signature}, self.timeout
            )
        except (InvalidEventsUrl, RefusedUrl) as exc:
            # A URL the outbound guard refuses (now, or once resolved) blocks the
            # interaction whatever intercept_fail_closed says: letting it through
            # would reward pointing the intercept at an internal address.
            log.warning(
                "intercept for %s refused its URL (%s): blocked", target.service_sid, type(exc).__name__
            )
            return False
        except Exception as exc:  # no answer in time, a token that cannot be unsealed
            log.warning(
                "intercept for %s failed (%s): %s",
                target.service_sid,
                type(exc).__name__,
                "blocked" if not fallback else "let through",
            )
            return fallback
        if status == 403:
            log.info("intercept for %s blocked %s", target.service_sid, sid)
            return False
        if 200 <= status < 300:
            return True
        log.warning("intercept for %s answered HTTP %d", target.service_sid, status)
        return fallback


def register(app_extensions: dict[str, Any], services: Any) -> Interceptor | None:
    """Add the interceptor to the webhook service of this app (if it has one),
    and the out-of-session callback to its rejections."""
    from maskline.compat.twilio.interaction_events import EventTap
    from maskline.compat.twilio.outofsession import OutOfSession

    hooks = app_extensions.get("maskline.webhooks")
    if hooks is None:
        return None
    interceptor = Interceptor(services=services)
    hooks.service.interceptors.append(interceptor)
    hooks.service.rejections.append(OutOfSession(services=services))
    # Last: it records the connect of an interaction the others let through.
    tap = EventTap(services=services)
    hooks.service.interceptors.append(tap.connected)
    hooks.service.status_listeners.append(tap.status)
    return interceptor
