"""Delivering the outbox: signed POSTs, retries with backoff (``maskline worker``).

Each run claims due events a batch at a time in a short transaction: on
PostgreSQL with ``FOR UPDATE SKIP LOCKED``, so two workers never take the
same row, and with a lease: ``attempts`` goes up and ``next_attempt_at``
moves :data:`LEASE` ahead before anything is sent. The claim commits before
the first request, so no row lock (on SQLite: no write lock) is held while a
receiver is slow; a worker that dies mid-send leaves its events to be sent
again when the lease runs out. Receivers de-duplicate on Maskline-Event-Id.

2xx is delivered. Anything else (another status, a redirect, a timeout, a
refused connection) is retried after 30 s, doubling up to 1 h, with jitter,
until ``max_attempts``; then the event is ``failed``. Logs name the owner and
the event, never the URL (its query may carry a token) nor the secret.

maskline's own receivers (alerts) are ``reserved`` owner names, which no
real owner can take (owner names start with a letter or digit): their URL
and secret come from the settings, not from the owners table.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import random
import urllib.error
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import Select, delete, select

from maskline.api.models import OutboxEvent, Owner
from maskline.clock import Clock, system_clock
from maskline.db import Database
from maskline.events.interfaces import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    InvalidEventsUrl,
    signature,
)
from maskline.events.services import check_events_url
from maskline.outbound import IPNetwork, OutboundPolicy, RefusedUrl

log = logging.getLogger(__name__)

BACKOFF_BASE = dt.timedelta(seconds=30)
BACKOFF_CAP = dt.timedelta(hours=1)


def backoff(attempts: int, jitter: float) -> dt.timedelta:
    """The wait after failed attempt number ``attempts`` (1 is the first);
    ``jitter`` in [0, 1). Between half and all of a doubling ceiling: retries
    that failed together spread out, and none waits longer than the cap."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(max(attempts - 1, 0), 16))
    wait: dt.timedelta = ceiling * (0.5 + 0.5 * jitter)
    return wait


# Longer than a whole batch of timed-out requests takes.
LEASE = dt.timedelta(minutes=10)
BATCH = 20
MAX_PER_RUN = 500
TIMEOUT = 5.0
KEEP_DELIVERED = dt.timedelta(days=7)
MAX_ATTEMPTS = 12


class Sender(Protocol):
    def __call__(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        """POST ``body``; the HTTP status, or an exception if no answer came."""
        ...


def post(
    url: str, body: bytes, headers: dict[str, str], timeout: float, *, policy: OutboundPolicy | None = None
) -> int:
    """The default :class:`Sender`: through the outbound guard (maskline.outbound):
    the resolved address checked and connected to, no proxy, no redirect followed.
    Without a ``policy``: public addresses only."""
    guard = policy if policy is not None else OutboundPolicy()
    return guard.post(
        url, body, {**headers, "Content-Type": "application/json", "User-Agent": "maskline-events/1"}, timeout
    )


def describe_failure(exc: BaseException) -> str:
    """Exception types only: messages can quote the URL."""
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError):
        return f"URLError: {type(exc.reason).__name__}"[:200]
    if isinstance(exc, RefusedUrl):
        # Says which kind of address, never the URL.
        return f"refused: {exc.kind}"[:200]
    if isinstance(exc, OSError):
        # No answer (refused, reset, timed out, TLS): named as urllib named it before.
        return f"URLError: {type(exc).__name__}"[:200]
    return type(exc).__name__[:200]


def claim_query(now: dt.datetime, *, dialect: str, limit: int = BATCH) -> Select[OutboxEvent]:
    """Due events, oldest first; locked and skipped by other workers on PostgreSQL."""
    query = (
        select(OutboxEvent)
        .where(OutboxEvent.status == "pending", OutboxEvent.next_attempt_at <= now)
        .order_by(OutboxEvent.next_attempt_at, OutboxEvent.id)
        .limit(limit)
    )
    if dialect == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return query


@dataclass
class DeliveryReport:
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    purged: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"events delivered {self.delivered}, retried {self.retried}, failed {self.failed}, "
            f"purged {self.purged}"
        )


@dataclass(frozen=True)
class _Claimed:
    id: int
    event_id: str
    owner: str
    body: bytes
    url: str
    secret: str


class Deliverer:
    """Sends due outbox events to their owners' events URLs."""

    def __init__(
        self,
        *,
        db: Database,
        allow_loopback_http: bool,
        max_attempts: int = MAX_ATTEMPTS,
        timeout: float = TIMEOUT,
        clock: Clock = system_clock,
        send: Sender | None = None,
        jitter: Callable[[], float] = random.random,
        reserved: Mapping[str, tuple[str, str]] | None = None,
        allow: tuple[IPNetwork, ...] = (),
    ) -> None:
        """``reserved``: owner name -> (URL, secret) of maskline's own receivers;
        ``allow``: MASKLINE_OUTBOUND_ALLOW. Without ``send``, :func:`post` through
        the outbound guard (loopback allowed with ``allow_loopback_http``)."""
        self.db = db
        self.reserved = dict(reserved or {})
        self.allow_loopback_http = allow_loopback_http
        self.allow = allow
        self.max_attempts = max_attempts
        self.timeout = timeout
        self._clock = clock
        policy = OutboundPolicy(allow=allow, loopback=allow_loopback_http)
        self._send: Sender = send if send is not None else functools.partial(post, policy=policy)
        self._jitter = jitter

    def deliver_due(self, now: dt.datetime) -> DeliveryReport:
        """Send what is due at ``now``, then purge delivered events older than a week.

        Never raises: a failing step is reported (by exception type) and the
        next run tries again.
        """
        report = DeliveryReport()
        steps: list[tuple[str, Callable[[], None]]] = [
            ("deliver", lambda: self._deliver(now, report)),
            ("purge", lambda: self._purge(now, report)),
        ]
        for name, step in steps:
            try:
                step()
            except Exception as exc:
                log.warning("events %s failed: %s", name, type(exc).__name__)
                report.errors.append(f"events {name}: {type(exc).__name__}")
        return report

    def backoff(self, attempts: int) -> dt.timedelta:
        """The wait after failed attempt number ``attempts`` (1 is the first)."""
        return backoff(attempts, self._jitter())

    def _deliver(self, now: dt.datetime, report: DeliveryReport) -> None:
        taken = 0
        while taken < MAX_PER_RUN:
            found, claimed = self._claim(now, report)
            for item in claimed:
                self._attempt(item, now, report)
            taken += found
            if found < BATCH:
                return

    def _claim(self, now: dt.datetime, report: DeliveryReport) -> tuple[int, list[_Claimed]]:
        """(how many due rows were taken, those that can be sent)."""
        claimed: list[_Claimed] = []
        with self.db.session() as session:
            rows = session.scalars(claim_query(now, dialect=self.db.dialect)).all()
            if not rows:
                return 0, claimed
            names = {row.owner for row in rows} - self.reserved.keys()
            owners = {
                o.name: (o.events_url, o.events_secret)
                for o in session.scalars(select(Owner).where(Owner.name.in_(names)))
            }
            owners.update(self.reserved)
            for row in rows:
                row.attempts += 1
                row.next_attempt_at = now + LEASE
                target_url, secret = owners.get(row.owner, (None, None))
                if not target_url or not secret:
                    self._give_up(row, "events are turned off for this owner", report)
                    continue
                try:
                    url = check_events_url(
                        target_url, allow_loopback_http=self.allow_loopback_http, allow=self.allow
                    )
                except InvalidEventsUrl as exc:
                    self._give_up(row, str(exc), report)
                    continue
                claimed.append(_Claimed(row.id, row.event_id, row.owner, row.payload.encode(), url, secret))
        return len(rows), claimed

    def _attempt(self, item: _Claimed, now: dt.datetime, report: DeliveryReport) -> None:
        timestamp = str(int(self._clock().timestamp()))
        headers = {
            EVENT_ID_HEADER: item.event_id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: signature(item.secret, timestamp, item.body),
        }
        error: str | None
        try:
            status = self._send(item.url, item.body, headers, self.timeout)
            error = None if 200 <= status < 300 else f"HTTP {status}"
        except Exception as exc:
            error = describe_failure(exc)
        with self.db.session() as session:
            row = session.get(OutboxEvent, item.id)
            if row is None or row.status != "pending":
                return  # purged, or turned off meanwhile
            if error is None:
                row.status = "delivered"
                row.delivered_at = now
                row.last_error = None
                report.delivered += 1
            elif row.attempts >= self.max_attempts:
                self._give_up(row, error, report)
            else:
                row.next_attempt_at = now + self.backoff(row.attempts)
                row.last_error = error
                report.retried += 1
                log.info(
                    "event %s for %s: attempt %d failed (%s)", row.event_id, row.owner, row.attempts, error
                )

    @staticmethod
    def _give_up(row: OutboxEvent, error: str, report: DeliveryReport) -> None:
        row.status = "failed"
        row.last_error = error[:200]
        report.failed += 1
        log.warning(
            "event %s for %s failed after %d attempts: %s", row.event_id, row.owner, row.attempts, error
        )

    def _purge(self, now: dt.datetime, report: DeliveryReport) -> None:
        with self.db.session() as session:
            result = session.execute(
                delete(OutboxEvent)
                .where(OutboxEvent.status == "delivered", OutboxEvent.delivered_at < now - KEEP_DELIVERED)
                .execution_options(synchronize_session=False)
            )
            report.purged += result.rowcount or 0  # type: ignore[attr-defined]
