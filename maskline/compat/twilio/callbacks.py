"""Proxy callbacks to a Service's ``callback_url``, sent by ``maskline worker``.

As Proxy sends them: a form-encoded ``POST``, signed with ``X-Twilio-Signature``
(twilio's own ``RequestValidator`` algorithm) under the auth token of the
credentials that created the Service, so a receiver checks it exactly as it
checked Twilio's. The token is unsealed for this only (see credentials).

Three kinds, each queued once (``twilio_callbacks.key`` is unique):

* an **interaction** reached its final status (a call or message relayed, or
  a MessageInteraction): ``interaction*`` / ``inbound*`` / ``outbound*`` fields;
* a **session** closed (by an update, a delete of a participant, or its
  expiry): ``session*`` fields;
* a call or text **out of session** (queued on the webhook path, see
  :mod:`maskline.compat.twilio.outofsession`): the inbound request's fields,
  its ``From`` masked.

Each run also extends sessions whose ``ttl`` counts from their last
interaction (:meth:`ProxyFace.slide_expiries`).

Each worker run first finds what happened since (SQL is the source of truth:
interactions and bindings are read, never a webhook's memory), queues it in
one transaction, then delivers what is due: 2xx is delivered; anything else
is retried with the events' backoff (30 s doubling to 1 h, with jitter) up to
``max_attempts``, then ``failed``. Forms carry sids, roles, statuses and the
relay number only; never a party number. Logs name the callback's id and
service, never the URL.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import random
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from twilio.request_validator import RequestValidator

from maskline.compat.twilio import wire
from maskline.compat.twilio.autocreate import CALLER_TOKEN, auto_create
from maskline.compat.twilio.credentials import open_token
from maskline.compat.twilio.models import ProxyCallback, ProxyParticipant, ProxyService, ProxySession
from maskline.events.delivery import LEASE, backoff, describe_failure
from maskline.events.interfaces import InvalidEventsUrl
from maskline.events.services import check_events_url
from maskline.numbers.models import Binding
from maskline.outbound import OutboundPolicy
from maskline.webhooks.models import Interaction

log = logging.getLogger(__name__)

TIMEOUT = 5.0
MAX_ATTEMPTS = 12
BATCH = 50
# How far back a run looks for interactions and sessions that ended.
LOOKBACK = dt.timedelta(days=2)

Sender = Callable[[str, bytes, dict[str, str], float], int]
# The worker's sender may also answer (status, the first bytes of the answer's body).
AnswerSender = Callable[[str, bytes, dict[str, str], float], "int | tuple[int, bytes]"]
# How much of an answer is read (an out-of-session auto-create answer is small).
MAX_ANSWER = 16 * 1024


def post_form(
    url: str, body: bytes, headers: dict[str, str], timeout: float, *, policy: OutboundPolicy | None = None
) -> int:
    """POST a form through the outbound guard (maskline.outbound); the HTTP status
    (no redirect followed, no proxy). Without a ``policy``: public addresses only."""
    return post_form_answer(url, body, headers, timeout, policy=policy)[0]


def post_form_answer(
    url: str, body: bytes, headers: dict[str, str], timeout: float, *, policy: OutboundPolicy | None = None
) -> tuple[int, bytes]:
    """:func:`post_form`, with at most MAX_ANSWER bytes of the answer (an
    out-of-session auto-create answer is read from it)."""
    guard = policy if policy is not None else OutboundPolicy()
    status, answer = guard.post_answer(
        url,
        body,
        {
            **headers,
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "maskline-twilio-proxy/1",
        },
        timeout,
    )
    return status, answer[:MAX_ANSWER] if 200 <= status < 300 else b""


def guarded_sender(settings: Any) -> Sender:
    """:func:`post_form` under this deployment's outbound policy."""
    return functools.partial(post_form, policy=settings.outbound_policy())


def guarded_answer_sender(settings: Any) -> AnswerSender:
    """:func:`post_form_answer` under this deployment's outbound policy."""
    return functools.partial(post_form_answer, policy=settings.outbound_policy())


def enqueue(
    db: Any, *, key: str, service_sid: str, account_sid: str, url: str, form: dict[str, str], now: dt.datetime
) -> bool:
    """Queue one callback for the worker to sign and send, in a transaction of
    its own; False if one with ``key`` is queued already (each is sent once)."""
    try:
        with db.session() as session:
            session.add(
                ProxyCallback(
                    key=key,
                    service_sid=service_sid,
                    account_sid=account_sid,
                    url=url,
                    form=json.dumps(form, separators=(",", ":"), sort_keys=True),
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
    except IntegrityError:
        return False
    return True


def _account_field(form: dict[str, str]) -> str:
    """Where a form names the signing account: as the callback of its kind does."""
    if "interactionSid" in form:
        return "interactionAccountSid"
    if "sessionSid" in form:
        return "sessionAccountSid"
    return "AccountSid"  # out of session: the inbound request's own field


def _camel(prefix: str, name: str) -> str:
    head, *rest = name.split("_")
    word = head + "".join(part.capitalize() for part in rest)
    return prefix + word[0].upper() + word[1:] if prefix else word


def interaction_form(body: dict[str, Any]) -> dict[str, str]:
    """Proxy's interaction callback fields from an Interaction resource."""
    form: dict[str, str] = {}
    for name, value in body.items():
        if value is None or name in ("url", "links"):
            continue
        # inbound* / outbound* as they are; the rest as interaction*.
        prefix = "" if name.startswith(("inbound_", "outbound_")) else "interaction"
        form[_camel(prefix, name)] = str(value)
    return form


def session_form(body: dict[str, Any]) -> dict[str, str]:
    """Proxy's session callback fields from a Session resource."""
    return {
        _camel("session", name): str(value)
        for name, value in body.items()
        if value is not None and name not in ("url", "links")
    }


@dataclass
class CallbackReport:
    extended: int = 0
    queued: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"twilio proxy sessions extended {self.extended}; callbacks queued {self.queued}, "
            f"delivered {self.delivered}, retried {self.retried}, failed {self.failed}"
        )


class CallbackWorker:
    """Finds what Proxy callbacks are owed, and sends them."""

    def __init__(
        self,
        *,
        services: Any,
        send: AnswerSender | None = None,
        timeout: float = TIMEOUT,
        max_attempts: int = MAX_ATTEMPTS,
        jitter: Callable[[], float] = random.random,
        base_url: str | None = None,
    ) -> None:
        settings = services.settings
        self.services = services
        self._send = send if send is not None else guarded_answer_sender(settings)
        self.timeout = timeout
        self.max_attempts = max_attempts
        self._jitter = jitter
        self.allow_loopback_http = not settings.is_production
        self.allow = settings.outbound_allow
        # The resources' own URLs in the forms (public URL, else a placeholder host).
        root = base_url or settings.public_url or "http://maskline.invalid"
        self.base = f"{root}/twilio-proxy/v1"

    def run_once(self, now: dt.datetime) -> CallbackReport:
        """Extend sessions' ttl from their last interaction, queue what is owed,
        then send what is due. Never raises (steps report by type)."""
        report = CallbackReport()
        # Streamed events before final statuses, so that they are sent in order.
        steps = (
            ("extend", self.extend),
            ("events", self.events),
            ("queue", self.queue),
            ("deliver", self.deliver),
        )
        for name, step in steps:
            try:
                step(now, report)
            except Exception as exc:
                log.warning("twilio proxy callbacks: %s failed: %s", name, type(exc).__name__)
                report.errors.append(f"{name}: {type(exc).__name__}")
        return report

    def extend(self, now: dt.datetime, report: CallbackReport) -> None:
        """A session's ``ttl`` counts from its last interaction (see ProxyFace.slide_expiries)."""
        from maskline.compat.twilio.services import ProxyFace

        report.extended += ProxyFace(services=self.services).slide_expiries(now)

    # -- finding what is owed ----------------------------------------------------------

    def queue(self, now: dt.datetime, report: CallbackReport) -> None:
        since = now - LOOKBACK
        db = self.services.db
        with db.session() as session:
            ended = session.execute(
                select(Interaction, ProxySession, ProxyService)
                .join(ProxySession, ProxySession.binding_id == Interaction.binding_id)
                .join(ProxyService, ProxyService.sid == ProxySession.service_sid)
                .where(
                    ProxyService.callback_url.is_not(None),
                    Interaction.owner == ProxySession.owner,
                    Interaction.ended_at.is_not(None),
                    Interaction.ended_at > since,
                )
            ).all()
            closed = session.execute(
                select(ProxySession, ProxyService)
                .join(ProxyService, ProxyService.sid == ProxySession.service_sid)
                .outerjoin(Binding, Binding.id == ProxySession.binding_id)
                .where(
                    ProxyService.callback_url.is_not(None),
                    # Closed (by an update, a binding's end, or expiry) since the lookback.
                    or_(
                        and_(ProxySession.status == "closed", ProxySession.date_ended > since),
                        and_(Binding.status != "active", Binding.ended_at > since),
                        and_(
                            Binding.status == "active", Binding.expires_at <= now, Binding.expires_at > since
                        ),
                        and_(
                            ProxySession.binding_id.is_(None),
                            ProxySession.date_expiry <= now,
                            ProxySession.date_expiry > since,
                        ),
                    ),
                )
            ).all()
            wanted: dict[str, tuple[ProxyService, dict[str, str]]] = {}
            for interaction, proxy_session, service in ended:
                key = f"{interaction.sid}:{interaction.status}"
                wanted[key] = (service, self._interaction_form(session, interaction, proxy_session))
            closing: dict[str, tuple[ProxyService, ProxySession]] = {}
            for proxy_session, service in closed:
                key = f"{proxy_session.sid}:closed"
                if key not in wanted:
                    closing.setdefault(key, (service, proxy_session))
            keys = [*wanted, *closing]
            if not keys:
                return
            known = set(session.scalars(select(ProxyCallback.key).where(ProxyCallback.key.in_(keys))))
        # A session's state is read in a transaction of its own, after this one
        # ends: on SQLite every transaction takes the write lock (BEGIN
        # IMMEDIATE), so one opened inside this one would wait for it, then fail.
        for key, (service, proxy_session) in closing.items():
            if key not in known:
                wanted[key] = (service, self._session_form(proxy_session))
        for key, (service, form) in wanted.items():
            if key in known or service.callback_url is None:
                continue
            queued = enqueue(
                db,
                key=key,
                service_sid=service.sid,
                account_sid=service.account_sid,
                url=service.callback_url,
                form=form,
                now=now,
            )
            report.queued += queued  # not queued: another worker queued it first

    def events(self, now: dt.datetime, report: CallbackReport) -> None:
        """The interaction events the webhook path streamed (see interaction_events):
        all but final statuses, which :meth:`queue` finds in SQL with their duration."""
        from maskline.compat.twilio.interaction_events import drain

        def queue(key: str, service: ProxyService, form: dict[str, str]) -> bool:
            assert service.callback_url is not None
            return enqueue(
                self.services.db,
                key=key,
                service_sid=service.sid,
                account_sid=service.account_sid,
                url=service.callback_url,
                form=form,
                now=now,
            )

        report.queued += drain(self.services, now, base=self.base, queue=queue)

    def _interaction_form(
        self, session: Any, row: Interaction, proxy_session: ProxySession
    ) -> dict[str, str]:
        roles = {
            p.role: p.sid
            for p in session.scalars(
                select(ProxyParticipant).where(ProxyParticipant.session_sid == proxy_session.sid)
            )
        }
        body = wire.interaction_json(
            row,
            service_sid=proxy_session.service_sid,
            session_sid=proxy_session.sid,
            participants=roles,
            base=self.base,
            account_sid="",
        )
        body["account_sid"] = None  # filled per credentials when sent
        return interaction_form(body)

    def _session_form(self, proxy_session: ProxySession) -> dict[str, str]:
        from maskline.compat.twilio.services import ProxyFace

        state = ProxyFace(services=self.services).state(proxy_session)
        body = wire.session_json(state, base=self.base, account_sid="")
        body["account_sid"] = None
        return session_form(body)

    # -- sending -------------------------------------------------------------------------

    def backoff(self, attempts: int) -> dt.timedelta:
        """The events' backoff, so both kinds of retry behave alike."""
        return backoff(attempts, self._jitter())

    def deliver(self, now: dt.datetime, report: CallbackReport) -> None:
        db = self.services.db
        due = (
            select(ProxyCallback)
            .where(ProxyCallback.status == "pending", ProxyCallback.next_attempt_at <= now)
            .order_by(ProxyCallback.next_attempt_at, ProxyCallback.id)
            .limit(BATCH)
        )
        if db.dialect == "postgresql":
            # As the events' claim: two workers never take the same row.
            due = due.with_for_update(skip_locked=True)
        with db.session() as session:
            rows = session.scalars(due).all()
            claimed = []
            for row in rows:
                row.attempts += 1
                row.next_attempt_at = now + LEASE
                claimed.append((row.id, row.account_sid, row.url, json.loads(row.form)))
        tokens: dict[str, str | None] = {}
        for callback_id, account_sid, url, form in claimed:
            error = self.attempt(account_sid, url, form, tokens)
            self._settle(callback_id, error, now, report)

    def attempt(
        self, account_sid: str, url: str, form: dict[str, str], tokens: dict[str, str | None]
    ) -> str | None:
        """Sign and send one callback (and act on an auto-create answer): None
        if delivered, else why not ("!..." if never worth retrying)."""
        try:
            url = check_events_url(url, allow_loopback_http=self.allow_loopback_http, allow=self.allow)
        except InvalidEventsUrl as exc:
            return f"!{exc}"  # "!": never retried
        if account_sid not in tokens:
            try:
                tokens[account_sid] = open_token(self.services, account_sid)
            except Exception as exc:  # e.g. its key-ring version was retired
                log.warning("twilio proxy callback: cannot unseal the signing token (%s)", type(exc).__name__)
                tokens[account_sid] = None
        token = tokens[account_sid]
        if token is None:
            return "!the credentials that sign this service's callbacks are revoked (or cannot be unsealed)"
        queued = form
        # Private fields (the caller's vault token) stay here: never sent.
        form = {k: v for k, v in form.items() if not k.startswith("_")}
        form = {**form, _account_field(form): account_sid}
        signature = RequestValidator(token).compute_signature(url, form)
        body = urllib.parse.urlencode(form).encode()
        try:
            result = self._send(url, body, {"X-Twilio-Signature": signature}, self.timeout)
        except Exception as exc:
            return describe_failure(exc)
        status, answer = result if isinstance(result, tuple) else (result, b"")
        if not 200 <= status < 300:
            return f"HTTP {status}"
        if CALLER_TOKEN in queued:
            try:
                auto_create(self.services, queued, answer)
            except Exception as exc:  # delivered all the same; never retried for this
                log.warning("out-of-session auto-create failed: %s", type(exc).__name__)
        return None

    def _settle(self, callback_id: int, error: str | None, now: dt.datetime, report: CallbackReport) -> None:
        with self.services.db.session() as session:
            row = session.get(ProxyCallback, callback_id)
            if row is None or row.status != "pending":
                return
            if error is None:
                row.status, row.delivered_at, row.last_error = "delivered", now, None
                report.delivered += 1
            elif error.startswith("!") or row.attempts >= self.max_attempts:
                row.status, row.last_error = "failed", error.lstrip("!")[:200]
                report.failed += 1
                log.warning(
                    "twilio proxy callback %d of %s failed: %s", row.id, row.service_sid, row.last_error
                )
            else:
                row.next_attempt_at = now + self.backoff(row.attempts)
                row.last_error = error[:200]
                report.retried += 1
