"""The worker delivers the outbox to a real HTTP server on 127.0.0.1: signed,
retried with backoff on failure (time passed in, never slept), then failed."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql

from maskline.api.models import OutboxEvent
from maskline.clock import FixedClock
from maskline.db import Database
from maskline.events.delivery import Deliverer, DeliveryReport, claim_query
from maskline.events.interfaces import verify
from maskline.numbers.interfaces import BindRequest
from maskline.wiring import Services
from tests.conftest import add_relay_numbers
from tests.integration.conftest import BUYER, MERCHANT, X1, X2, without_party_digits
from tests.receiver import Receiver, receiving


def axb(order: str = "o-1") -> BindRequest:
    return BindRequest(
        order_id=order, mode="axb", parties={"buyer": BUYER, "merchant": MERCHANT}, owner="shop-a"
    )


def rows(services: Services) -> list[OutboxEvent]:
    with services.db.session() as session:
        return list(session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as running:
        yield running


@pytest.fixture
def secret(services: Services, numbers: Any, receiver: Receiver) -> str:
    """shop-a sends its events to the receiver; one binding.created is queued."""
    add_relay_numbers(services, X1, X2)
    _, made = services.events.owners.set_events("shop-a", url=receiver.url("/hooks?k=1"))
    assert made is not None
    numbers.bindings.bind(axb())
    return made


def deliverer(services: Services, clock: FixedClock, **kw: Any) -> Deliverer:
    return Deliverer(db=services.db, allow_loopback_http=True, clock=clock, **kw)


def test_an_event_is_posted_signed_and_marked_delivered(
    services: Services, secret: str, receiver: Receiver, clock: FixedClock
) -> None:
    report = services.events.deliverer.deliver_due(clock())
    assert (report.delivered, report.errors) == (1, [])
    [row] = rows(services)
    [request] = receiver.received
    timestamp = request.headers["Maskline-Timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert request.headers["Maskline-Signature"] == f"v1={expected}"
    assert request.headers["Maskline-Event-Id"] == row.event_id and timestamp == str(int(clock().timestamp()))
    assert request.headers["Content-Type"] == "application/json" and request.path == "/hooks?k=1"
    assert json.loads(request.body)["type"] == "binding.created" and request.body == row.payload.encode()
    assert without_party_digits(request.body.decode())
    assert (row.status, row.attempts, row.delivered_at, row.last_error) == ("delivered", 1, clock(), None)


def test_a_500_is_retried_after_backoff_then_delivered(
    services: Services, secret: str, receiver: Receiver, clock: FixedClock
) -> None:
    receiver.answers = [500]
    assert services.events.deliverer.deliver_due(clock()).retried == 1
    [row] = rows(services)
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "HTTP 500")
    assert clock() + dt.timedelta(seconds=15) <= row.next_attempt_at <= clock() + dt.timedelta(seconds=30)
    assert services.events.deliverer.deliver_due(clock()).delivered == 0  # not due yet
    clock.advance(seconds=30)
    assert services.events.deliverer.deliver_due(clock()).delivered == 1
    first, second = receiver.received
    assert first.headers["Maskline-Event-Id"] == second.headers["Maskline-Event-Id"]
    for request in (first, second):
        headers = request.headers
        assert verify(secret, headers["Maskline-Timestamp"], request.body, headers["Maskline-Signature"])
    assert (rows(services)[0].status, rows(services)[0].attempts) == ("delivered", 2)


def test_a_failing_endpoint_ends_failed_after_max_attempts(
    services: Services, secret: str, receiver: Receiver, clock: FixedClock
) -> None:
    receiver.default = 503
    worker = deliverer(services, clock, max_attempts=3)
    reports = []
    for _ in range(4):
        reports.append(worker.deliver_due(clock()))
        clock.advance(hours=1)
    assert [(r.retried, r.failed) for r in reports] == [(1, 0), (1, 0), (0, 1), (0, 0)]
    [row] = rows(services)
    assert (row.status, row.attempts, row.last_error) == ("failed", 3, "HTTP 503")
    assert len(receiver.received) == 3


def test_backoff_starts_at_30s_doubles_and_stops_at_an_hour(services: Services, clock: FixedClock) -> None:
    longest = deliverer(services, clock, jitter=lambda: 1.0)
    shortest = deliverer(services, clock, jitter=lambda: 0.0)
    waits = [longest.backoff(n).total_seconds() for n in range(1, 10)]
    assert waits == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert shortest.backoff(1).total_seconds() == 15 and longest.backoff(100).total_seconds() == 3600


def test_an_unreachable_endpoint_is_retried_and_its_url_is_not_recorded(
    services: Services, numbers: Any, clock: FixedClock
) -> None:
    add_relay_numbers(services, X1)
    with receiving() as gone:
        url = gone.url("/hooks?token=s3cr3t")
    services.events.owners.set_events("shop-a", url=url)  # nothing listens there any more
    numbers.bindings.bind(axb())
    assert services.events.deliverer.deliver_due(clock()).retried == 1
    [row] = rows(services)
    assert row.last_error == "URLError: ConnectionRefusedError"


def test_a_redirect_is_not_followed(
    services: Services, secret: str, receiver: Receiver, clock: FixedClock
) -> None:
    receiver.answers = [302]
    assert services.events.deliverer.deliver_due(clock()).retried == 1
    assert [r.path for r in receiver.received] == ["/hooks?k=1"]
    assert rows(services)[0].last_error == "HTTP 302"


def test_delivered_events_are_purged_after_seven_days(
    services: Services, secret: str, receiver: Receiver, clock: FixedClock
) -> None:
    services.events.deliverer.deliver_due(clock())
    clock.advance(days=7)
    assert services.events.deliverer.deliver_due(clock()).purged == 0
    clock.advance(seconds=1)
    assert services.events.deliverer.deliver_due(clock()).purged == 1
    assert rows(services) == []


def test_clearing_events_fails_what_is_pending_and_sends_nothing(
    services: Services, secret: str, receiver: Receiver, clock: FixedClock
) -> None:
    info = services.events.owners.clear_events("shop-a")
    assert info.events_url is None and not info.has_secret and info.outbox["failed"] == 1
    assert services.events.deliverer.deliver_due(clock()).delivered == 0
    assert receiver.received == []


def test_a_rotated_secret_signs_the_next_attempt(
    services: Services, secret: str, receiver: Receiver, clock: FixedClock
) -> None:
    receiver.answers = [500]
    services.events.deliverer.deliver_due(clock())
    _, rotated = services.events.owners.set_events("shop-a", url=receiver.url(), rotate_secret=True)
    assert rotated is not None and rotated != secret
    clock.advance(minutes=1)
    services.events.deliverer.deliver_due(clock())
    retry = receiver.received[-1]
    timestamp, signature = retry.headers["Maskline-Timestamp"], retry.headers["Maskline-Signature"]
    assert verify(rotated, timestamp, retry.body, signature)
    assert not verify(secret, timestamp, retry.body, signature)


def test_an_event_being_sent_by_one_worker_is_not_sent_by_another(
    services: Services, secret: str, receiver: Receiver, clock: FixedClock
) -> None:
    other = deliverer(services, clock)
    meanwhile: list[DeliveryReport] = []
    receiver.during = lambda: meanwhile.append(other.deliver_due(clock()))
    assert services.events.deliverer.deliver_due(clock()).delivered == 1
    [report] = meanwhile
    assert (report.delivered, report.retried, report.errors) == (0, 0, [])
    assert len(receiver.received) == 1


def test_claims_skip_rows_another_worker_has_locked(
    services: Services, secret: str, receiver: Receiver, clock: FixedClock
) -> None:
    compiled = str(claim_query(clock(), dialect="postgresql").compile(dialect=postgresql.dialect()))
    assert "FOR UPDATE SKIP LOCKED" in compiled
    if services.db.dialect != "postgresql":
        return  # SQLite: one writer at a time; the lease (above) is what keeps workers apart
    # A statement timeout turns a claim that waits for the lock (no SKIP LOCKED) into an error.
    impatient = Database(url=services.db.url, statement_timeout=5)
    try:
        worker = Deliverer(db=impatient, allow_loopback_http=True, clock=clock)
        with services.db.engine.connect() as holder, holder.begin():
            holder.execute(text("SELECT id FROM outbox_events FOR UPDATE"))
            report = worker.deliver_due(clock())
            assert (report.delivered, report.errors, receiver.received) == (0, [], [])
        assert worker.deliver_due(clock()).delivered == 1
    finally:
        impatient.dispose()
