"""Alerts: insider-threat and abuse signals, counted in Redis, recorded in SQL.

What fires (each threshold, from the settings, is the most that passes
without an alert in its window; windows are fixed, from the injected clock):

* ``distinct_buyers``: one caller (calls and messages that reached a buyer)
  reached more distinct buyers in an hour than ``alert_distinct_buyers_per_hour``,
  or one API key bound more than ``alert_key_distinct_buyers_per_hour``;
* ``binding_burst``: one API key created more bindings in a minute than
  ``alert_bindings_per_minute``;
* ``stranger_calls``: more calls or messages from non-parties in an hour
  than ``alert_strangers_per_hour``, to one relay number or from one caller;
* ``wrong_extensions``: more extensions keyed in vain in an hour than
  ``alert_wrong_extensions_per_hour``, on one relay number or by one caller;
* ``failed_logins``: more failed console logins of one account in an hour
  than ``alert_failed_logins_per_hour``;
* ``off_hours_reveal``: every reveal viewed outside ``working_hours`` or
  ``working_days`` (in ``working_timezone``), one alert each;
* ``pool_low``: a region's live bindings passed 80% of what its active
  numbers hold (:data:`maskline.numbers.load.POOL_LOW_SHARE`), once per
  crossing: the worker's sweep hands every region's load to
  :meth:`AlertService.pool_loads`, and Redis remembers which regions are
  low (see :mod:`maskline.audit.tallies`). Not raised where binds happen:
  a bind pays nothing for it.

The same thread also keeps the refusal tallies the console's overview
shows (:meth:`AlertService.refused`, one queued signal per refused call or
message; see :mod:`maskline.audit.tallies`).

How, and why this way
---------------------

Raising a signal must never slow down or fail the request that raises it,
and the webhook path is the hot one. So a request only appends the signal
(kind, subject, time, and for distinct counts the buyer's vault token) to a
bounded in-process queue: a deque under a lock, microseconds, no I/O. A
daemon thread of the process drains it in batches:

1. one pipelined Redis round trip per batch counts every signal of the
   batch: ``INCR`` + ``EXPIRE``, or ``PFADD`` + ``PFCOUNT`` + ``EXPIRE`` (a
   HyperLogLog) for distinct buyers. Every command touches one key, so this
   runs unchanged on Redis Cluster. Counts live in Redis, so all processes
   and gunicorn workers add to the same windows;
2. a count over its threshold is recorded in SQL: one ``alerts`` row per
   (kind, subject, window), inserted on the first crossing together with an
   outbox row (``alert.raised``) that ``maskline worker`` delivers, signed,
   with retries; later crossings in the window raise the row's count
   (coalesced: one write per alert per batch, however large the burst).

Redis runs in the thread too, not in the request: the connect path of a call
(a call to a buyer is a contact, and is counted) and the stranger and
wrong-extension paths then pay no round trip at all, and a burst costs one
pipeline per batch rather than one round trip per request. The window of a
signal is taken from the time it carries (read from the injected clock when
it was raised), not from when the thread gets to it.

The price is stated: signals still queued when a process is killed are lost,
and a full queue drops new ones. Both are bounded and counted, as is every
Redis or SQL failure (``maskline_alert_failures`` by stage), and none ever
reaches the request. :meth:`AlertService.drain` processes what is queued, in
the caller's thread, and waits for the batch in flight: for tests, and at
shutdown (:meth:`AlertService.close`, and on interpreter exit).

No party number, anywhere: a buyer is its vault token (and a HyperLogLog
keeps hashed registers, not members), a caller is ``caller:`` + the first 12
hex digits of its blind index (an HMAC under a key Redis and SQL never
hold), relay numbers are public, API keys are their ids. Redis keys are
``ml:alert:<kind>:<subject>:<window number>``.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import logging
import os
import re
import secrets
import threading
import time
import weakref
import zoneinfo
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from maskline.audit import tallies
from maskline.audit.interfaces import ALERTS_OWNER, AlertKind, AlertNotFound, AlertView
from maskline.audit.models import Alert
from maskline.clock import Clock, system_clock
from maskline.db import Database
from maskline.numbers.interfaces import BindingEvent, PoolExhaustedEvent
from maskline.numbers.load import POOL_LOW_SHARE, RegionLoad
from maskline.numbers.models import Binding
from maskline.redaction import redact_phone_numbers

if TYPE_CHECKING:
    from config import Settings
    from maskline.events.services import Outbox

log = logging.getLogger(__name__)

# Labels are stages and kinds: bounded, never a number or a subject.
ALERT_FAILURES = Counter(
    "maskline_alert_failures",
    "Alert signals lost or not recorded (queue full, Redis, SQL); the requests went on",
    ["stage"],
)
ALERTS_RAISED = Counter(
    "maskline_alerts_raised", "Alerts recorded (a threshold crossed in a window)", ["kind"]
)

ALERT_EVENT = "alert.raised"
# The role whose contacts count as "buyers" (see BindingMember.role).
BUYER_ROLE = "buyer"
# Non-party refusals of a call or message: nobody is bound to this caller
# on the relay number (or nobody at all).
STRANGER_REASONS = frozenset({"stranger", "no_binding"})

QUEUE_CAPACITY = 10_000
BATCH = 500
IDLE_WAIT = 1.0  # seconds the thread waits for a signal before looking at its stop flag
# Once a signal arrives, the thread gathers more for this long before it
# counts them: one Redis pipeline per gathering, not one per call (at a
# thousand connects a second, a round trip each would double the webhook
# path's Redis work). Alerts are minutes-scale; a fraction of a second is free.
GATHER_SECONDS = 0.25
LOG_EVERY = 60.0  # seconds between two warnings of the same failing stage
FINGERPRINT_HEX = 12

_ACTOR_KEY = re.compile(r"^apikey:[A-Za-z0-9_-]{1,64}\Z")
_ADMIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}\Z")
_TOKEN = re.compile(r"^pn_[a-z0-9_]{1,40}\Z")  # a vault token: what distinct buyers count
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}\Z")
_RELAY = re.compile(r"^\+[1-9][0-9]{5,14}\Z")
# Stands for a name that is no account name (it could be anything typed at
# the login form, a number included): such failures count together.
INVALID_ACCOUNT = "admin:?"


def caller_subject(index: bytes | None) -> str | None:
    """``caller:`` + the first 12 hex digits of a caller's blind index (None: anonymous)."""
    if not index:
        return None
    return "caller:" + index.hex()[:FINGERPRINT_HEX]


def within_working_hours(
    at: dt.datetime, *, hours: tuple[dt.time, dt.time], days: frozenset[int], zone: dt.tzinfo
) -> bool:
    """Whether ``at`` (aware) falls on one of ``days`` (Monday is 0), from the
    start (inclusive) to the end (exclusive) of ``hours``, both as read on a
    clock in ``zone``."""
    local = at.astimezone(zone)
    start, end = hours
    return local.weekday() in days and start <= local.time() < end


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _admin_subject(name: str, *, region: str) -> str:
    """``admin:<name>`` for a plausible account name, else :data:`INVALID_ACCOUNT`."""
    bare = str(name).removeprefix("admin:")
    if not _ADMIN_NAME.match(bare) or redact_phone_numbers(bare, region=region) != bare:
        return INVALID_ACCOUNT
    return f"admin:{bare}"


@dataclass(frozen=True)
class _Rule:
    window: int  # seconds
    threshold: int
    distinct: bool = False


# Signals that are no alert kind: a refusal, tallied for the overview.
REFUSAL = "refusal"


@dataclass(frozen=True)
class _Signal:
    kind: str  # an AlertKind, or REFUSAL
    subject: str
    at: dt.datetime
    member: str | None = None  # distinct counts: what is counted (a vault token)
    detail: dict[str, object] = field(default_factory=dict)


@dataclass
class _Crossing:
    """A threshold crossed, gathered over one batch for one (kind, subject, window)."""

    count: int
    threshold: int
    window: int
    first_at: dt.datetime
    last_at: dt.datetime
    detail: dict[str, object]

    def merge(self, count: int, at: dt.datetime, detail: dict[str, object]) -> None:
        self.count = max(self.count, count)
        self.first_at = min(self.first_at, at)
        self.last_at = max(self.last_at, at)
        self.detail.update(detail)


class _Queue:
    """A bounded FIFO that request threads append to and batches are taken from.

    ``busy`` counts batches taken and not yet done, so :meth:`wait_idle` can
    tell "nothing queued and nothing in flight".
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[_Signal] = deque()
        self._cond = threading.Condition()
        self._busy = 0
        # Set by shutdown: a waiting take() returns at once instead of
        # sleeping out its wait (which made every close() take IDLE_WAIT).
        self._closing = False

    def put(self, signals: Iterable[_Signal]) -> int:
        """Append what fits; the number that did not."""
        dropped = 0
        with self._cond:
            for signal in signals:
                if len(self._items) < self.capacity:
                    self._items.append(signal)
                else:
                    dropped += 1
            self._cond.notify_all()
        return dropped

    def take(self, limit: int, *, wait: float = 0.0) -> list[_Signal]:
        with self._cond:
            if not self._items and wait > 0:
                self._cond.wait_for(lambda: bool(self._items) or self._closing, wait)
            batch = [self._items.popleft() for _ in range(min(limit, len(self._items)))]
            if batch:
                self._busy += 1
            return batch

    def done(self) -> None:
        with self._cond:
            self._busy -= 1
            self._cond.notify_all()

    def set_closing(self, closing: bool) -> None:
        with self._cond:
            self._closing = closing
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._items and self._busy == 0, timeout)

    def __len__(self) -> int:
        return len(self._items)


class AlertService:
    """Detects, records and lists alerts (see the module's docstring).

    The signal methods (:meth:`stranger`, :meth:`wrong_extension`,
    :meth:`contacted`, :meth:`on_binding_event`, :meth:`failed_login`,
    :meth:`reveal_viewed`) never raise and never wait on Redis or SQL.
    ``redis`` gives the client the thread counts with (short timeouts, like
    the webhook path's: a hung Redis costs the thread that long per batch);
    it is called once, and the client is closed by :meth:`close` if
    ``close_redis``. ``outbox`` None: alerts are recorded for the console,
    not sent. ``background`` False: no thread; signals wait for :meth:`drain`.
    """

    def __init__(
        self,
        *,
        db: Database,
        redis: Callable[[], Any],
        settings: Settings,
        outbox: Outbox | None,
        clock: Clock = system_clock,
        capacity: int = QUEUE_CAPACITY,
        background: bool = True,
        close_redis: bool = False,
    ) -> None:
        self.db = db
        self._redis_provider = redis
        self._redis: Any = None
        self._redis_lock = threading.Lock()
        self._close_redis = close_redis
        self.outbox = outbox
        self._clock = clock
        self._region = settings.default_region
        self.rules: dict[str, _Rule] = {
            "distinct_buyers": _Rule(3600, settings.alert_distinct_buyers_per_hour, distinct=True),
            # An order system's key binds many buyers an hour by design: its
            # own, higher threshold (see _rule).
            "distinct_buyers:apikey": _Rule(3600, settings.alert_key_distinct_buyers_per_hour, distinct=True),
            "binding_burst": _Rule(60, settings.alert_bindings_per_minute),
            "stranger_calls": _Rule(3600, settings.alert_strangers_per_hour),
            "wrong_extensions": _Rule(3600, settings.alert_wrong_extensions_per_hour),
            "failed_logins": _Rule(3600, settings.alert_failed_logins_per_hour),
        }
        self.working_hours = settings.working_hours
        self.working_days = settings.working_days
        self.working_zone = zoneinfo.ZoneInfo(settings.working_zone)
        self._capacity = capacity
        self._background = background
        self._queue = _Queue(capacity)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._flush = threading.Event()
        self._start_lock = threading.Lock()
        self._logged: dict[str, float] = {}
        self._at_exit_registered = False
        # A forked child (a gunicorn worker) starts with a fresh queue and
        # lock: the parent's thread does not exist there, and a lock it held
        # at the fork would stay held forever.
        os.register_at_fork(after_in_child=_call_if_alive(weakref.ref(self), "_after_fork"))

    def _rule(self, signal: _Signal) -> _Rule:
        if signal.kind == "distinct_buyers" and signal.subject.startswith("apikey:"):
            return self.rules["distinct_buyers:apikey"]
        return self.rules[signal.kind]

    # -- signals (never raise, never block) ------------------------------------

    def stranger(self, *, relay: str | None, caller: str | None, at: dt.datetime) -> None:
        """A call or message from a non-party, to ``relay`` (a relay number of
        the pool) from ``caller`` (:func:`caller_subject`); either may be None."""
        self._subjects("stranger_calls", relay=relay, caller=caller, at=at)

    def wrong_extension(self, *, relay: str | None, caller: str | None, at: dt.datetime) -> None:
        """An extension keyed in vain (unknown, expired, or not for this caller)."""
        self._subjects("wrong_extensions", relay=relay, caller=caller, at=at)

    def contacted(self, *, caller: str | None, buyer: str | None, at: dt.datetime) -> None:
        """A call or message from ``caller`` reached the buyer whose vault token is ``buyer``."""
        if caller and caller.startswith("caller:") and buyer and _TOKEN.match(buyer):
            self._submit([_Signal("distinct_buyers", caller, at, member=buyer)])

    def on_binding_event(self, session: Session, event: BindingEvent | PoolExhaustedEvent) -> None:
        """Listener of :meth:`BindingService.on_event`: bindings an API key
        creates, counted per key (bursts) with their buyers (distinct).

        Runs in the binding's transaction, so it only reads the binding the
        session already holds (no SQL) and queues the signals once that
        transaction commits: a bind that rolls back counts for nothing.
        """
        try:
            if not isinstance(event, BindingEvent) or event.type != "binding.created":
                return
            actor = event.actor or ""
            if not _ACTOR_KEY.match(actor):
                return
            signals = [_Signal("binding_burst", actor, event.at)]
            binding = session.get(Binding, event.binding.id)
            if binding is not None:
                signals += [
                    _Signal("distinct_buyers", actor, event.at, member=m.token)
                    for m in binding.parties
                    if m.role == BUYER_ROLE
                ]
            sa_event.listen(session, "after_commit", lambda _session: self._submit(signals), once=True)
        except Exception as exc:
            self._failed("internal", exc)

    def extension_lockdown(self, *, relay: str, wrong: int, until: dt.datetime, at: dt.datetime) -> None:
        """``relay``'s open extensions are locked down after ``wrong`` wrong ones (an alert each time)."""
        try:
            if _RELAY.match(relay):
                detail: dict[str, object] = {"wrong_extensions": int(wrong), "until": _iso(until)}
                self._submit([_Signal("extension_lockdown", f"relay:{relay}", at, detail=detail)])
        except Exception as exc:
            self._failed("internal", exc)

    def failed_login(self, *, account: str, at: dt.datetime) -> None:
        """A console login of ``account`` (a name, or ``admin:<name>``) failed."""
        try:
            subject = _admin_subject(account, region=self._region)
            self._submit([_Signal("failed_logins", subject, at)])
        except Exception as exc:
            self._failed("internal", exc)

    def reveal_viewed(self, *, admin: str, request_id: str, at: dt.datetime) -> None:
        """A reveal was viewed; an alert of its own if outside working hours or days."""
        try:
            if self.within_working_hours(at):
                return
            local = at.astimezone(self.working_zone)
            rid = request_id if isinstance(request_id, str) and _REQUEST_ID.match(request_id) else "?"
            if rid != "?" and redact_phone_numbers(rid, region=self._region) != rid:
                rid = "?"
            detail: dict[str, object] = {
                "request_id": rid,
                "local_time": local.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "weekday": local.strftime("%A"),
                "timezone": self.working_zone.key,
            }
            subject = _admin_subject(admin, region=self._region)
            self._submit([_Signal("off_hours_reveal", subject, at, detail=detail)])
        except Exception as exc:
            self._failed("internal", exc)

    def refused(self, *, reason: str | None, at: dt.datetime) -> None:
        """A call or message reached no one for ``reason`` (a code): tallied per
        hour for the console's overview, by the thread (no I/O here)."""
        try:
            code = reason or "unavailable"
            if tallies.REASON.match(code):
                self._submit([_Signal(REFUSAL, code, at)])
        except Exception as exc:
            self._failed("internal", exc)

    def pool_loads(self, loads: Iterable[RegionLoad], *, at: dt.datetime) -> None:
        """Every region's load, from the worker's sweep: ``pool_low`` for each
        region that passed its threshold since the last look (once per crossing)."""
        try:
            signals = [
                _Signal(
                    "pool_low",
                    f"pool:{load.region}",
                    at,
                    member="low" if load.low else "ok",
                    detail={
                        "live_bindings": load.live_bindings,
                        "capacity": load.capacity,
                        "load_percent": round(load.share * 100),
                    },
                )
                for load in loads
            ]
            if signals:
                self._submit(signals)
        except Exception as exc:
            self._failed("internal", exc)

    def refusal_counts(self, *, since: dt.datetime, until: dt.datetime) -> dict[str, int]:
        """Refusals per reason from ``since`` to ``until`` (whole hours), read
        from Redis; empty if Redis cannot answer (the overview says so)."""
        return tallies.refusals_by_reason(self._client(), since=since, until=until)

    def within_working_hours(self, at: dt.datetime) -> bool:
        """Whether ``at`` is within the configured working hours and days."""
        return within_working_hours(
            at, hours=self.working_hours, days=self.working_days, zone=self.working_zone
        )

    def _subjects(self, kind: AlertKind, *, relay: str | None, caller: str | None, at: dt.datetime) -> None:
        signals = []
        if relay and _RELAY.match(relay):
            signals.append(_Signal(kind, f"relay:{relay}", at))
        if caller and caller.startswith("caller:"):
            signals.append(_Signal(kind, caller, at))
        if signals:
            self._submit(signals)

    def _submit(self, signals: list[_Signal]) -> None:
        try:
            dropped = self._queue.put(signals)
            if dropped:
                ALERT_FAILURES.labels(stage="dropped").inc(dropped)
                self._warn("dropped", "alert queue full: %d signal(s) dropped", dropped)
            if self._background:
                self._ensure_thread()
        except Exception as exc:
            self._failed("internal", exc)

    # -- the console -----------------------------------------------------------

    def recent(self, session: Session, *, limit: int = 100, open_only: bool = False) -> list[AlertView]:
        """Alerts, newest first (at most ``limit``, up to 1000); ``open_only``:
        not yet acknowledged."""
        query = (
            select(Alert).order_by(Alert.raised_at.desc(), Alert.id.desc()).limit(max(1, min(limit, 1000)))
        )
        if open_only:
            query = query.where(Alert.acknowledged_at.is_(None))
        return [_view(row) for row in session.scalars(query)]

    def acknowledge(self, session: Session, alert_id: str, *, by: str) -> None:
        """Record that ``by`` saw the alert (the first acknowledgement stands).

        :class:`AlertNotFound` if there is no such alert (the message does
        not repeat the id: it is input).
        """
        row = session.scalars(
            select(Alert).where(Alert.alert_id == str(alert_id)[:32]).with_for_update()
        ).one_or_none()
        if row is None:
            raise AlertNotFound("no such alert")
        if row.acknowledged_at is None:
            row.acknowledged_by = str(by)[:120]
            row.acknowledged_at = self._clock()
            session.flush()

    # -- the background work ---------------------------------------------------

    def drain(self, timeout: float = 10.0) -> int:
        """Process every queued signal now, in this thread, then wait (up to
        ``timeout`` seconds) for the batch the background thread has in hand.
        Returns how many signals this call processed."""
        processed = 0
        while batch := self._queue.take(BATCH):
            try:
                self._process(batch)
            except Exception as exc:
                self._failed("internal", exc, count=len(batch))
            finally:
                self._queue.done()
            processed += len(batch)
        self._flush.set()  # a batch the thread is gathering is counted now
        self._queue.wait_idle(timeout)
        return processed

    def close(self, timeout: float = 5.0) -> None:
        """Drain, then stop the background thread (shutdown)."""
        self.drain(timeout)
        self._stop.set()
        self._queue.set_closing(True)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if self._close_redis and self._redis is not None and hasattr(self._redis, "close"):
            self._redis.close()
            self._redis = None

    def pending(self) -> int:
        """Signals queued and not yet taken."""
        return len(self._queue)

    def _ensure_thread(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._queue.set_closing(False)
            self._thread = threading.Thread(target=self._run, name="maskline-alerts", daemon=True)
            self._thread.start()
            if not self._at_exit_registered:
                atexit.register(_call_if_alive(weakref.ref(self), "close"))
                self._at_exit_registered = True

    def _after_fork(self) -> None:
        self._queue = _Queue(self._capacity)
        self._thread = None
        self._stop = threading.Event()
        self._flush = threading.Event()
        self._start_lock = threading.Lock()
        self._redis_lock = threading.Lock()

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._queue.take(BATCH, wait=IDLE_WAIT)
            if not batch:
                continue
            taken = 1
            if len(batch) < BATCH and self._flush.wait(GATHER_SECONDS) is False:
                more = self._queue.take(BATCH - len(batch))
                if more:
                    batch += more
                    taken += 1
            self._flush.clear()
            try:
                self._process(batch)
            except Exception as exc:
                self._failed("internal", exc, count=len(batch))
            finally:
                for _ in range(taken):
                    self._queue.done()

    def _process(self, batch: list[_Signal]) -> None:
        crossings: dict[tuple[str, str, dt.datetime], _Crossing] = {}
        batch = self._tally(batch)
        counted = [s for s in batch if s.kind in self.rules]
        for signal in batch:
            if signal.kind == "pool_low":
                at = signal.at.replace(microsecond=0)
                # count: live bindings, over threshold: 80% of the capacity.
                live = int(str(signal.detail["live_bindings"]))
                limit = int(int(str(signal.detail["capacity"])) * POOL_LOW_SHARE)
                key = ("pool_low", signal.subject, at)
                crossings[key] = _Crossing(live, limit, 0, at, at, dict(signal.detail))
            elif signal.kind not in self.rules:
                # Each one is an alert of its own, at its own time.
                at = signal.at.replace(microsecond=0)
                key = (signal.kind, signal.subject, at)
                if key in crossings:
                    crossings[key].merge(crossings[key].count + 1, at, signal.detail)
                else:
                    crossings[key] = _Crossing(1, 0, 0, at, at, dict(signal.detail))
        for signal, count in zip(counted, self._count(counted), strict=True):
            rule = self._rule(signal)
            if count is None or count <= rule.threshold:
                continue
            window_start = _window_start(signal.at, rule.window)
            key = (signal.kind, signal.subject, window_start)
            if key in crossings:
                crossings[key].merge(count, signal.at, signal.detail)
            else:
                crossings[key] = _Crossing(
                    count, rule.threshold, rule.window, signal.at, signal.at, dict(signal.detail)
                )
        for (kind, subject, window_start), crossing in crossings.items():
            try:
                self._record(kind, subject, window_start, crossing)
            except Exception as exc:
                self._failed("database", exc)

    def _tally(self, batch: list[_Signal]) -> list[_Signal]:
        """Adds the batch's refusals to their tallies, and keeps of its pool
        loads only the new crossings; returns the rest of the batch."""
        refusals = [(s.subject, s.at) for s in batch if s.kind == REFUSAL]
        loads = [s for s in batch if s.kind == "pool_low"]
        rest = [s for s in batch if s.kind not in (REFUSAL, "pool_low")]
        if refusals:
            try:
                tallies.add_refusals(self._client(), refusals)
            except Exception as exc:
                self._failed("redis", exc, count=len(refusals))
        if loads:
            try:
                crossed = tallies.newly_low(self._client(), [(s.subject, s.member == "low") for s in loads])
            except Exception as exc:
                self._failed("redis", exc, count=len(loads))
                crossed = [False] * len(loads)
            rest += [s for s, new in zip(loads, crossed, strict=True) if new]
        return rest

    def _count(self, signals: list[_Signal]) -> list[int | None]:
        """Each signal's count in its window after adding it: one pipeline."""
        if not signals:
            return []
        try:
            pipe = self._client().pipeline(transaction=False)
            for signal in signals:
                rule = self._rule(signal)
                key = f"ml:alert:{signal.kind}:{signal.subject}:{int(signal.at.timestamp()) // rule.window}"
                if rule.distinct:
                    pipe.pfadd(key, signal.member or "")
                    # One key, so one cluster node answers it; redis-py's
                    # cluster pipeline blocks pfcount() for its multi-key form.
                    pipe.execute_command("PFCOUNT", key)
                else:
                    pipe.incr(key)
                # Every touch pushes the expiry out by a window: the key
                # outlives its window, which no later signal touches.
                pipe.expire(key, rule.window)
            replies = pipe.execute(raise_on_error=False)
        except Exception as exc:
            self._failed("redis", exc, count=len(signals))
            return [None] * len(signals)
        counts: list[int | None] = []
        position = 0
        for signal in signals:
            size = 3 if self._rule(signal).distinct else 2
            reply = replies[position + size - 2]
            position += size
            if isinstance(reply, Exception):
                self._failed("redis", reply)
                counts.append(None)
            else:
                counts.append(int(reply))
        return counts

    def _client(self) -> Any:
        # Once, under a lock: the thread and drain() may both get here first.
        with self._redis_lock:
            if self._redis is None:
                self._redis = self._redis_provider()
            return self._redis

    def _record(self, kind: str, subject: str, window_start: dt.datetime, crossing: _Crossing) -> None:
        """Insert the alert of (kind, subject, window) with its outbox row, or
        raise the count of the one that exists (another batch, process or
        worker may have inserted it first: then the insert fails, and the
        second try finds it)."""
        for attempt in (1, 2):
            try:
                with self.db.session() as session:
                    row = session.scalars(
                        select(Alert)
                        .where(
                            Alert.kind == kind, Alert.subject == subject, Alert.window_start == window_start
                        )
                        .with_for_update()
                    ).one_or_none()
                    if row is None:
                        row = self._insert(session, kind, subject, window_start, crossing)
                        inserted = True
                    else:
                        inserted = False
                        if crossing.count > row.count:
                            row.count = crossing.count
                            detail = _loads(row.detail)
                            detail["last_at"] = _iso(crossing.last_at)
                            row.detail = json.dumps(detail, sort_keys=True)
                if inserted:
                    ALERTS_RAISED.labels(kind=kind).inc()
                    log.warning(
                        "alert %s: %s %s (%d > %d)", row.alert_id, kind, subject, row.count, row.threshold
                    )
                return
            except IntegrityError:
                if attempt == 2:
                    raise

    def _insert(
        self, session: Session, kind: str, subject: str, window_start: dt.datetime, crossing: _Crossing
    ) -> Alert:
        detail: dict[str, object] = {
            **crossing.detail,
            "first_at": _iso(crossing.first_at),
            "last_at": _iso(crossing.last_at),
        }
        if crossing.window:
            detail["window_seconds"] = crossing.window
        row = Alert(
            alert_id="al_" + secrets.token_hex(12),
            kind=kind,
            subject=subject,
            window_start=window_start,
            count=crossing.count,
            threshold=crossing.threshold,
            detail=json.dumps(detail, sort_keys=True),
            raised_at=crossing.first_at,
        )
        session.add(row)
        session.flush()  # a concurrent insert of the same window fails here
        if self.outbox is not None:
            self.outbox.enqueue(
                session,
                owner=ALERTS_OWNER,
                type=ALERT_EVENT,
                data={
                    "alert_id": row.alert_id,
                    "kind": kind,
                    "subject": subject,
                    "count": row.count,
                    "threshold": row.threshold,
                    "window_start": _iso(window_start),
                    "raised_at": _iso(row.raised_at),
                    "detail": detail,
                },
            )
        return row

    def _failed(self, stage: str, exc: BaseException, *, count: int = 1) -> None:
        ALERT_FAILURES.labels(stage=stage).inc(count)
        # The exception type only: messages of drivers can quote input.
        self._warn(stage, "alerts: %s failed: %s", stage, type(exc).__name__)

    def _warn(self, stage: str, message: str, *args: object) -> None:
        """A warning, at most once a minute per stage: a Redis outage must not flood the log."""
        now = time.monotonic()
        last = self._logged.get(stage)
        if last is None or now - last >= LOG_EVERY:
            self._logged[stage] = now
            log.warning(message, *args)


def _call_if_alive(ref: weakref.ref[AlertService], method: str) -> Callable[[], None]:
    """A callback for fork and exit hooks that keeps no service alive."""

    def call() -> None:
        service = ref()
        if service is not None:
            getattr(service, method)()

    return call


def _window_start(at: dt.datetime, window: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(at.timestamp()) // window * window, dt.UTC)


def _loads(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _view(row: Alert) -> AlertView:
    return AlertView(
        alert_id=row.alert_id,
        kind=row.kind,
        subject=row.subject,
        count=row.count,
        threshold=row.threshold,
        window_start=row.window_start,
        raised_at=row.raised_at,
        detail=_loads(row.detail),
        acknowledged_by=row.acknowledged_by,
        acknowledged_at=row.acknowledged_at,
    )
