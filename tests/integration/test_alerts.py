"""Alerts over real Redis and SQL: thresholds, windows, one row per window,
off-hours reveals, delivery through the outbox, and failures that cost the
request nothing. Time is the injected clock; nothing sleeps."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from prometheus_client import REGISTRY
from sqlalchemy import select

from config import Settings, load_settings, with_overrides
from maskline.api.models import OutboxEvent
from maskline.audit.alerts import AlertService
from maskline.audit.interfaces import ALERTS_OWNER, AlertNotFound, AlertView
from maskline.audit.models import Alert
from maskline.clock import FixedClock
from maskline.db import Database
from maskline.events.interfaces import verify
from maskline.numbers.interfaces import BindRequest
from maskline.wiring import Services, build_services
from tests.conftest import EPOCH, add_relay_numbers
from tests.integration.conftest import BUYER, X1, X2
from tests.receiver import receiving

THRESHOLD = 3
CALLER = "caller:0123456789ab"
HOUR = EPOCH.replace(minute=0, second=0)
LIMITS = {
    "alert_distinct_buyers_per_hour": THRESHOLD,
    "alert_key_distinct_buyers_per_hour": THRESHOLD,
    "alert_bindings_per_minute": THRESHOLD,
    "alert_strangers_per_hour": THRESHOLD,
    "alert_wrong_extensions_per_hour": THRESHOLD,
    "alert_failed_logins_per_hour": THRESHOLD,
}


def failures(stage: str) -> float:
    return REGISTRY.get_sample_value("maskline_alert_failures_total", {"stage": stage}) or 0.0


def alert_rows(services: Services) -> list[tuple[str, str, int, int, dt.datetime]]:
    with services.db.session() as session:
        rows = session.scalars(select(Alert).order_by(Alert.kind, Alert.subject, Alert.window_start))
        return [(r.kind, r.subject, r.count, r.threshold, r.window_start) for r in rows]


def outbox_rows(services: Services) -> list[OutboxEvent]:
    with services.db.session() as session:
        return list(session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)))


MakeAlerts = Callable[..., AlertService]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test settings with every alert threshold at 3 (``services.alerts`` uses them)."""
    return with_overrides(settings, **LIMITS)


@pytest.fixture
def alerts(services: Services, redis_client: Any) -> AlertService:
    """The alerts as wired, over a clean Redis database."""
    return services.alerts


@pytest.fixture
def make_alerts(
    services: Services, redis_client: Any, settings: Settings, clock: FixedClock
) -> Iterator[MakeAlerts]:
    """More AlertServices over the test database and Redis (another process, a dead Redis...)."""
    made: list[AlertService] = []

    def make(
        *, redis_provider: Callable[[], Any] | None = None, db: Database | None = None, **kw: Any
    ) -> AlertService:
        options = {key: kw.pop(key) for key in ("background", "capacity", "outbox") if key in kw}
        alerts = AlertService(
            db=db or services.db,
            redis=redis_provider or (lambda: redis_client),
            settings=with_overrides(settings, **kw),
            outbox=options.pop("outbox", None),
            clock=clock,
            **options,
        )
        made.append(alerts)
        return alerts

    yield make
    for alerts in made:
        alerts.close()


# kind, subject, and how one signal of it is raised (the n-th signal: distinct buyers differ)
SIGNALS: dict[str, tuple[str, str, Callable[[AlertService, dt.datetime, int], None]]] = {
    "strangers to a relay number": (
        "stranger_calls",
        f"relay:{X1}",
        lambda a, at, n: a.stranger(relay=X1, caller=None, at=at),
    ),
    "strangers from a caller": (
        "stranger_calls",
        CALLER,
        lambda a, at, n: a.stranger(relay=None, caller=CALLER, at=at),
    ),
    "wrong extensions on a relay number": (
        "wrong_extensions",
        f"relay:{X1}",
        lambda a, at, n: a.wrong_extension(relay=X1, caller=None, at=at),
    ),
    "wrong extensions by a caller": (
        "wrong_extensions",
        CALLER,
        lambda a, at, n: a.wrong_extension(relay=None, caller=CALLER, at=at),
    ),
    "a caller reaching distinct buyers": (
        "distinct_buyers",
        CALLER,
        lambda a, at, n: a.contacted(caller=CALLER, buyer=f"pn_buyer{n}", at=at),
    ),
    "failed logins": (
        "failed_logins",
        "admin:alice",
        lambda a, at, n: a.failed_login(account="alice", at=at),
    ),
}


@pytest.mark.parametrize("name", list(SIGNALS))
def test_a_threshold_fires_above_its_limit_and_not_at_it(
    name: str, alerts: AlertService, services: Services, clock: FixedClock
) -> None:
    kind, subject, signal = SIGNALS[name]
    for n in range(THRESHOLD):
        signal(alerts, clock(), n)
    alerts.drain()
    assert alert_rows(services) == []
    signal(alerts, clock(), THRESHOLD)
    alerts.drain()
    assert alert_rows(services) == [(kind, subject, THRESHOLD + 1, THRESHOLD, HOUR)]
    for n in range(THRESHOLD + 1, THRESHOLD + 4):
        signal(alerts, clock(), n)
    alerts.drain()
    # Still one alert for the window; its count follows the burst.
    assert alert_rows(services) == [(kind, subject, THRESHOLD + 4, THRESHOLD, HOUR)]


def test_the_same_buyer_again_and_again_is_one_distinct_buyer(
    alerts: AlertService, services: Services, clock: FixedClock
) -> None:
    for _ in range(20):
        alerts.contacted(caller=CALLER, buyer="pn_the_same_buyer", at=clock())
    for n in range(THRESHOLD - 1):
        alerts.contacted(caller=CALLER, buyer=f"pn_other{n}", at=clock())
    alerts.drain()
    assert alert_rows(services) == []


def test_windows_roll_over_with_the_clock(
    alerts: AlertService, services: Services, clock: FixedClock
) -> None:
    for _ in range(THRESHOLD):
        alerts.failed_login(account="alice", at=clock())
    clock.advance(hours=1)
    alerts.failed_login(account="alice", at=clock())  # the 4th in 2 hours, the 1st of this hour
    alerts.drain()
    assert alert_rows(services) == []
    for _ in range(THRESHOLD):
        alerts.failed_login(account="alice", at=clock())
    alerts.drain()
    assert alert_rows(services) == [
        ("failed_logins", "admin:alice", THRESHOLD + 1, THRESHOLD, HOUR + dt.timedelta(hours=1))
    ]


def test_the_window_is_the_signals_time_not_when_it_is_processed(
    make_alerts: MakeAlerts, services: Services, clock: FixedClock
) -> None:
    alerts = make_alerts(background=False)
    at = clock()
    for _ in range(THRESHOLD + 1):
        alerts.stranger(relay=X2, caller=None, at=at)
    clock.advance(hours=5)  # the queue is drained much later
    alerts.drain()
    with services.db.session() as session:
        [view] = alerts.recent(session)
    assert (view.window_start, view.raised_at, view.count) == (HOUR, at, THRESHOLD + 1)


def test_every_kind_has_its_own_window_and_subjects_do_not_mix(
    alerts: AlertService, services: Services, clock: FixedClock
) -> None:
    for _ in range(THRESHOLD):
        alerts.stranger(relay=X1, caller=CALLER, at=clock())
        alerts.wrong_extension(relay=X1, caller=CALLER, at=clock())
        alerts.stranger(relay=X2, caller="caller:ba9876543210", at=clock())
        alerts.failed_login(account="alice", at=clock())
        alerts.failed_login(account="bob", at=clock())
    alerts.drain()
    assert alert_rows(services) == []


def test_off_hours_reveals_are_alerts_in_the_working_time_zone(
    make_alerts: MakeAlerts, services: Services
) -> None:
    alerts = make_alerts(
        working_timezone="Asia/Shanghai",
        working_hours=(dt.time(9, 0), dt.time(18, 0)),
        working_days=frozenset({0, 1, 2, 3, 4}),
    )
    tuesday_10 = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai
    tuesday_19 = dt.datetime(2026, 11, 24, 11, 0, tzinfo=dt.UTC)  # 19:00 there, 11:00 UTC
    saturday_11 = dt.datetime(2026, 11, 28, 3, 0, tzinfo=dt.UTC)  # Saturday 11:00 there
    alerts.reveal_viewed(admin="alice", request_id="rv_1", at=tuesday_10)
    alerts.reveal_viewed(admin="alice", request_id="rv_2", at=tuesday_19)
    alerts.reveal_viewed(admin="admin:bob", request_id="rv_3", at=saturday_11)
    alerts.drain()
    with services.db.session() as session:
        views = alerts.recent(session)
    assert [(v.kind, v.subject, v.count, v.threshold) for v in views] == [
        ("off_hours_reveal", "admin:bob", 1, 0),
        ("off_hours_reveal", "admin:alice", 1, 0),
    ]
    bob, alice = views
    assert (alice.raised_at, alice.window_start) == (tuesday_19, tuesday_19)
    assert alice.detail["request_id"] == "rv_2" and alice.detail["local_time"] == "2026-11-24T19:00:00+0800"
    assert (bob.detail["weekday"], bob.detail["timezone"], bob.detail["request_id"]) == (
        "Saturday",
        "Asia/Shanghai",
        "rv_3",
    )


def test_a_reveal_in_working_hours_in_utc_raises_nothing(alerts: AlertService, services: Services) -> None:
    # The defaults: 07:00-19:00, Monday to Friday, in the display zone (UTC).
    alerts.reveal_viewed(admin="alice", request_id="rv_1", at=EPOCH)  # Tuesday noon
    alerts.reveal_viewed(admin="alice", request_id="rv_2", at=EPOCH.replace(hour=19))
    alerts.drain()
    assert [r[:2] for r in alert_rows(services)] == [("off_hours_reveal", "admin:alice")]


@pytest.mark.parametrize(
    ("beijing", "raised"),
    [
        (dt.datetime(2026, 12, 8, 7, 8), False),  # a Tuesday morning's reveal
        (dt.datetime(2026, 12, 8, 3, 0), True),  # the same night, 03:00
    ],
)
def test_working_hours_default_to_the_display_zone(
    make_alerts: MakeAlerts, services: Services, beijing: dt.datetime, raised: bool
) -> None:
    # MASKLINE_DISPLAY_TIMEZONE=Asia/Shanghai, working hours and zone left alone.
    settings = load_settings(environ={"MASKLINE_DISPLAY_TIMEZONE": "Asia/Shanghai"})
    assert settings.working_timezone is None and settings.working_zone == "Asia/Shanghai"
    alerts = make_alerts(display_timezone=settings.display_timezone)
    at = beijing.replace(tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai")).astimezone(dt.UTC)
    alerts.reveal_viewed(admin="alice", request_id="rv_1", at=at)
    alerts.drain()
    assert [r[:2] for r in alert_rows(services)] == ([("off_hours_reveal", "admin:alice")] if raised else [])


def test_recent_and_acknowledge(alerts: AlertService, services: Services, clock: FixedClock) -> None:
    for _ in range(THRESHOLD + 1):
        alerts.failed_login(account="alice", at=clock())
    clock.advance(minutes=5)
    for _ in range(THRESHOLD + 1):
        alerts.stranger(relay=X1, caller=None, at=clock())
    alerts.drain()
    with services.db.session() as session:
        newest, oldest = alerts.recent(session)
        assert isinstance(newest, AlertView) and newest.kind == "stranger_calls"
        assert newest.detail["window_seconds"] == 3600 and oldest.kind == "failed_logins"
        assert alerts.recent(session, limit=1) == [newest]
        alerts.acknowledge(session, oldest.alert_id, by="admin:carol")
    clock.advance(minutes=1)
    with services.db.session() as session:
        alerts.acknowledge(session, oldest.alert_id, by="admin:dave")  # the first one stands
        assert [v.alert_id for v in alerts.recent(session, open_only=True)] == [newest.alert_id]
        [acknowledged] = [v for v in alerts.recent(session) if v.alert_id == oldest.alert_id]
    assert (acknowledged.acknowledged_by, acknowledged.acknowledged_at) == (
        "admin:carol",
        clock() - dt.timedelta(minutes=1),
    )
    with services.db.session() as session, pytest.raises(AlertNotFound):
        alerts.acknowledge(session, "al_nosuchalert", by="admin:carol")


def test_two_processes_crossing_the_same_window_make_one_alert(
    make_alerts: MakeAlerts, services: Services, clock: FixedClock
) -> None:
    first, second = make_alerts(background=False), make_alerts(background=False)
    for n in range(THRESHOLD + 2):
        (first if n % 2 else second).failed_login(account="alice", at=clock())
    second.drain()  # counts 1, 3, 5: crosses at 5
    first.drain()  # counts 2, 4: crosses at 4, finds the row
    assert alert_rows(services) == [("failed_logins", "admin:alice", THRESHOLD + 2, THRESHOLD, HOUR)]


# -- API keys, through the binding service's listener ------------------------------

BUYERS = tuple(f"+1415555013{n}" for n in range(3, 9))
MERCHANTS = tuple(f"+1212555014{n}" for n in range(4, 10))


def bind_as(services: Services, actor: str, n: int, *, buyer: str | None = None) -> None:
    services.numbers.bindings.bind(
        BindRequest(
            order_id=f"o-{n}",
            mode="axb",
            parties={"buyer": buyer or BUYERS[n], "merchant": MERCHANTS[n]},
            owner="shop-a",
            actor=actor,
        )
    )


def test_binding_bursts_and_buyers_of_an_api_key_fire_above_their_limits(
    services: Services, alerts: AlertService, numbers: Any
) -> None:
    add_relay_numbers(services, X1, X2)
    bind_as(services, "apikey:k1", 0)
    bind_as(services, "cli:root", 1)  # not an API key: not counted
    bind_as(services, "apikey:k1", 2)
    bind_as(services, "apikey:k1", 3, buyer=BUYERS[0])  # a buyer it bound before
    alerts.drain()
    assert alert_rows(services) == []
    bind_as(services, "apikey:k1", 4, buyer=BUYERS[1])
    alerts.drain()
    assert alert_rows(services) == [("binding_burst", "apikey:k1", 4, 3, EPOCH.replace(second=0))]
    bind_as(services, "apikey:k1", 5)
    alerts.drain()
    assert alert_rows(services) == [
        ("binding_burst", "apikey:k1", 5, 3, EPOCH.replace(second=0)),
        ("distinct_buyers", "apikey:k1", 4, 3, HOUR),
    ]


def test_binding_bursts_are_per_minute(
    services: Services, alerts: AlertService, numbers: Any, clock: FixedClock
) -> None:
    add_relay_numbers(services, X1, X2)
    for n in range(3):
        bind_as(services, "apikey:k1", n)
    clock.advance(minutes=1)
    for n in range(3, 6):
        bind_as(services, "apikey:k1", n)
    alerts.drain()
    assert [r[0] for r in alert_rows(services)] == ["distinct_buyers"]  # 6 buyers in the hour


def test_a_bind_that_rolls_back_counts_for_nothing(
    services: Services, numbers: Any, clock: FixedClock
) -> None:
    add_relay_numbers(services, X1, X2)
    alerts = AlertService(
        db=services.db,
        redis=lambda: services.redis,
        settings=with_overrides(services.settings, alert_bindings_per_minute=1),
        outbox=None,
        clock=clock,
        background=False,
    )
    numbers.bindings.on_event(alerts.on_binding_event)

    def fail_after(session: Any, event: Any) -> None:
        raise RuntimeError("a later listener fails: the bind rolls back")

    numbers.bindings.on_event(fail_after)
    for n in range(3):
        with pytest.raises(RuntimeError):
            bind_as(services, "apikey:k1", n)
    assert alerts.pending() == 0
    alerts.drain()
    assert alert_rows(services) == []


# -- delivery -----------------------------------------------------------------------


def test_alerts_are_delivered_signed_through_the_outbox_with_retries(
    settings: Settings,
    services: Services,
    redis_client: Any,
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "alerts-signing-secret"
    with receiving() as receiver:
        url = receiver.url("/siem/alerts?token=t0ken")
        wired = build_services(with_overrides(settings, alerts_url=url, alerts_secret=secret), clock=clock)
        try:
            for _ in range(THRESHOLD + 1):
                wired.alerts.failed_login(account="alice", at=clock())
            wired.alerts.drain()
            for _ in range(2):  # the same alert, counting on: not a second delivery
                wired.alerts.failed_login(account="alice", at=clock())
            wired.alerts.drain()
            [row] = outbox_rows(wired)
            assert (row.owner, row.type, row.status) == (ALERTS_OWNER, "alert.raised", "pending")
            receiver.answers = [503]
            first = wired.events.deliverer.deliver_due(clock())
            assert (first.delivered, first.retried) == (0, 1)
            clock.advance(hours=1)
            second = wired.events.deliverer.deliver_due(clock())
            assert (second.delivered, second.retried) == (1, 0)
        finally:
            wired.close()
    assert [r.path for r in receiver.received] == ["/siem/alerts?token=t0ken"] * 2
    for request in receiver.received:
        timestamp = request.headers["Maskline-Timestamp"]
        assert verify(secret, timestamp, request.body, request.headers["Maskline-Signature"])
        assert request.headers["Maskline-Event-Id"] == row.event_id
    body = json.loads(receiver.received[-1].body)
    assert body["type"] == "alert.raised"
    data = body["data"]
    assert (data["kind"], data["subject"], data["count"], data["threshold"]) == (
        "failed_logins",
        "admin:alice",
        THRESHOLD + 1,  # as first raised; the console shows it growing
        THRESHOLD,
    )
    assert data["window_start"] == "2026-11-24T12:00:00Z" and data["alert_id"].startswith("al_")
    assert secret not in caplog.text and "t0ken" not in caplog.text and "/siem" not in caplog.text


def test_without_an_alerts_url_alerts_are_recorded_not_queued(
    alerts: AlertService, services: Services, clock: FixedClock
) -> None:
    assert alerts.outbox is None  # as wired: the test settings set no alerts URL
    for _ in range(THRESHOLD + 1):
        alerts.failed_login(account="alice", at=clock())
    alerts.drain()
    assert [r[:3] for r in alert_rows(services)] == [("failed_logins", "admin:alice", THRESHOLD + 1)]
    assert outbox_rows(services) == []


# -- failures cost the request nothing ------------------------------------------------


def dead_redis() -> Any:
    return redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1, socket_timeout=1)


def test_redis_down_the_signal_returns_at_once_and_the_failure_is_counted(
    make_alerts: MakeAlerts, services: Services, clock: FixedClock
) -> None:
    alerts = make_alerts(redis_provider=dead_redis, background=False)
    before = failures("redis")
    for _ in range(THRESHOLD + 1):
        alerts.failed_login(account="alice", at=clock())
    assert alerts.pending() == THRESHOLD + 1  # the caller only queued
    alerts.drain()
    assert failures("redis") == before + THRESHOLD + 1
    assert alert_rows(services) == []


def test_redis_down_a_bind_by_an_api_key_still_succeeds(
    services: Services, numbers: Any, clock: FixedClock
) -> None:
    add_relay_numbers(services, X1, X2)
    alerts = AlertService(
        db=services.db, redis=dead_redis, settings=services.settings, outbox=None, clock=clock
    )
    numbers.bindings.on_event(alerts.on_binding_event)
    before = failures("redis")
    try:
        bind_as(services, "apikey:k1", 0, buyer=BUYER)
        alerts.drain()
    finally:
        alerts.close()
    assert failures("redis") == before + 2  # the burst counter and the buyer
    assert len(numbers.bindings.find(owner="shop-a")) == 1


def test_sql_down_is_counted_and_redis_still_counts(
    make_alerts: MakeAlerts, services: Services, clock: FixedClock, tmp_path: Path, redis_client: Any
) -> None:
    unreachable = Database(url=f"sqlite:///{tmp_path / 'no-such-folder' / 'db.sqlite3'}")
    alerts = make_alerts(db=unreachable, background=False)
    before = failures("database")
    for _ in range(THRESHOLD + 2):
        alerts.failed_login(account="alice", at=clock())
    alerts.drain()
    assert failures("database") == before + 1  # one alert, one failed write per batch
    assert alert_rows(services) == []
    assert [int(v) for v in (redis_client.get(k) for k in redis_client.scan_iter("ml:alert:*"))] == [
        THRESHOLD + 2
    ]


def test_an_api_keys_buyers_have_their_own_threshold_not_the_callers(
    services: Services, make_alerts: MakeAlerts, numbers: Any
) -> None:
    add_relay_numbers(services, X1, X2)
    alerts = make_alerts(alert_distinct_buyers_per_hour=1, alert_key_distinct_buyers_per_hour=3)
    services.numbers.bindings.on_event(alerts.on_binding_event)
    for n in range(3):
        bind_as(services, "apikey:k9", n)
    alerts.drain()
    assert [r for r in alert_rows(services) if r[1] == "apikey:k9" and r[0] == "distinct_buyers"] == []
    with services.db.session() as session:
        tokens = [services.vault.put(session, number).token for number in BUYERS[:2]]
    for token in tokens:
        alerts.contacted(caller=CALLER, buyer=token, at=EPOCH)
    alerts.drain()
    assert ("distinct_buyers", CALLER) in [r[:2] for r in alert_rows(services)]
