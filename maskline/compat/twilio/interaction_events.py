"""Proxy's callback for each interaction event, not only the final one.

Twilio calls a Service's ``callback_url`` each time an interaction's status
changes. maskline's worker finds final statuses in SQL (:mod:`callbacks`);
the events before them (the connect, a text's ``sent``, ...) are not kept
in SQL, so the webhook path adds them to one Redis stream and the worker
moves them to the callback outbox, keyed ``<sid>:<status>`` as the final
ones are (each is queued once, whichever finds it first).

On the webhook path, two taps, each a dictionary lookup while no Service
has a ``callback_url`` (asked every :data:`REFRESH` seconds), else an
indexed query per binding every :data:`REFRESH` seconds and one ``XADD``
per event of a Proxy session's binding:

* :meth:`EventTap.connected`: registered last among the webhook service's
  interceptors (it always lets the interaction through, and runs only if
  the others did), for the first webhook of a call or text;
* :meth:`EventTap.status`: registered with its status listeners, for each
  status callback of a session's interaction.

An entry carries sids, roles, a status and a time: no number. The stream is
capped (:data:`MAX_LEN`, approximate trimming); the worker trims what it has
queued.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from maskline.compat.twilio import wire
from maskline.compat.twilio.callbacks import interaction_form
from maskline.compat.twilio.models import ProxyCallback, ProxyParticipant, ProxyService, ProxySession
from maskline.numbers.routes import epoch
from maskline.webhooks.interfaces import StepDecision
from maskline.webhooks.models import Interaction

log = logging.getLogger(__name__)

STREAM = "ml:proxy:events"
MAX_LEN = 100_000
REFRESH = 30.0
BATCH = 500
MAX_BATCHES = 20
# The status of an interaction at its first webhook (see compat.twilio.live).
CONNECTED = {"call": "in-progress", "sms": "sending"}


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class EventTap:
    """Adds the events of Proxy sessions' interactions to :data:`STREAM`."""

    def __init__(
        self,
        *,
        services: Any,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.services = services
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._any_until = 0.0
        self._any = False
        # binding id -> (until, whether it is a session of a Service with a callback_url)
        self._bindings: dict[str, tuple[float, bool]] = {}

    def _db(self) -> Any:
        return self.services.webhook_backends.db

    def _anyone_listens(self) -> bool:
        now = self._monotonic()
        with self._lock:
            if now < self._any_until:
                return self._any
        with self._db().session() as session:
            found = session.scalar(
                select(ProxyService.sid).where(ProxyService.callback_url.is_not(None)).limit(1)
            )
        with self._lock:
            self._any, self._any_until = found is not None, now + REFRESH
        return found is not None

    def _listened(self, binding_id: str) -> bool:
        now = self._monotonic()
        with self._lock:
            cached = self._bindings.get(binding_id)
            if cached is not None and now < cached[0]:
                return cached[1]
        with self._db().session() as session:
            found = session.scalar(
                select(ProxySession.sid)
                .join(ProxyService, ProxyService.sid == ProxySession.service_sid)
                .where(ProxySession.binding_id == binding_id, ProxyService.callback_url.is_not(None))
                .limit(1)
            )
        with self._lock:
            if len(self._bindings) > 10_000:
                self._bindings.clear()
            self._bindings[binding_id] = (now + REFRESH, found is not None)
        return found is not None

    def _add(
        self, *, sid: str, kind: str, status: str, binding_id: str, from_role: str, to_role: str
    ) -> None:
        try:
            if not (self._anyone_listens() and self._listened(binding_id)):
                return
            fields = {"sid": sid, "k": kind, "s": status, "b": binding_id, "fr": from_role, "tr": to_role}
            fields["t"] = str(epoch(self.services.clock()))
            self.services.webhook_backends.redis.xadd(STREAM, fields, maxlen=MAX_LEN, approximate=True)
        except Exception as exc:  # an event is lost, never a call
            log.warning("proxy interaction event of %s not recorded: %s", binding_id, type(exc).__name__)

    def connected(self, kind: str, decision: StepDecision, sid: str) -> bool:
        """An interceptor that always lets the interaction through."""
        if decision.binding_id:
            self._add(
                sid=sid,
                kind=kind,
                status=CONNECTED.get(kind, "in-progress"),
                binding_id=decision.binding_id,
                from_role=decision.from_role or "",
                to_role=decision.target_role or "",
            )
        return True

    def status(self, sid: str, kind: str, status: str, info: dict[str, str], ended: bool) -> None:
        """A status callback of an interaction whose record names its binding.
        A final status is left to the worker's SQL scan, which has its duration."""
        binding_id = info.get("b")
        if binding_id and not ended:
            self._add(
                sid=sid,
                kind=kind,
                status=status,
                binding_id=binding_id,
                from_role=info.get("fr", ""),
                to_role=info.get("tr", ""),
            )


def drain(
    services: Any,
    now: dt.datetime,
    *,
    base: str,
    queue: Callable[[str, ProxyService, dict[str, str]], bool],
) -> int:
    """Move the stream's events to the callback outbox (``queue(key, service,
    form)``, False if that key is queued already), a batch at a time, each
    trimmed once queued (a run that fails midway leaves its batch for the
    next, whose keys make it queued once). At most :data:`MAX_BATCHES` a run.
    The number queued."""
    queued = 0
    for _ in range(MAX_BATCHES):
        entries = services.redis.xrange(STREAM, "-", "+", count=BATCH)
        if not entries:
            break
        queued += _drain_batch(services, entries, base=base, queue=queue)
        # Entries read are queued (or owed to no one): trim up to the last one read.
        millis, _, seq = _text(entries[-1][0]).partition("-")
        services.redis.xtrim(STREAM, minid=f"{millis}-{int(seq or 0) + 1}", approximate=False)
    return queued


def _drain_batch(
    services: Any,
    entries: list[Any],
    *,
    base: str,
    queue: Callable[[str, ProxyService, dict[str, str]], bool],
) -> int:
    events = [{_text(k): _text(v) for k, v in fields.items()} for _id, fields in entries]
    queued = 0
    with services.db.session() as session:
        bindings = {event["b"] for event in events}
        rows = session.execute(
            select(ProxySession, ProxyService)
            .join(ProxyService, ProxyService.sid == ProxySession.service_sid)
            .where(ProxySession.binding_id.in_(bindings), ProxyService.callback_url.is_not(None))
        ).all()
        sessions = {proxy_session.binding_id: (proxy_session, service) for proxy_session, service in rows}
        keys = [f"{event['sid']}:{event['s']}" for event in events]
        known = set(session.scalars(select(ProxyCallback.key).where(ProxyCallback.key.in_(keys))))
        forms: list[tuple[str, ProxyService, dict[str, str]]] = []
        roles_of: dict[str, dict[str, str]] = {}
        for key, event in zip(keys, events, strict=True):
            found = sessions.get(event["b"])
            if found is None or key in known:
                continue
            proxy_session, service = found
            if proxy_session.sid not in roles_of:
                roles_of[proxy_session.sid] = {
                    p.role: p.sid
                    for p in session.scalars(
                        select(ProxyParticipant).where(ProxyParticipant.session_sid == proxy_session.sid)
                    )
                }
            roles = roles_of[proxy_session.sid]
            at = dt.datetime.fromtimestamp(int(event["t"]), dt.UTC)
            row = Interaction(
                sid=event["sid"],
                binding_id=event["b"],
                owner=proxy_session.owner,
                type=event["k"],
                from_role=event["fr"],
                to_role=event["tr"],
                status=event["s"],
                duration=None,
                started_at=at,
                ended_at=None,
            )
            body = wire.interaction_json(
                row,
                service_sid=service.sid,
                session_sid=proxy_session.sid,
                participants=roles,
                base=base,
                account_sid="",
            )
            body["account_sid"] = None  # filled per credentials when sent
            known.add(key)
            forms.append((key, service, body))
    for key, service, body in forms:
        queued += queue(key, service, interaction_form(body))
    return queued
