"""Alerts without I/O: working hours in a time zone, subjects, the queue, the settings."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from config import SettingsError, load_settings, with_overrides
from maskline.api.keys import ApiKeyService, KeyRequestInvalid
from maskline.audit.alerts import (
    INVALID_ACCOUNT,
    AlertService,
    _admin_subject,
    caller_subject,
    within_working_hours,
)
from maskline.audit.interfaces import ALERTS_OWNER
from maskline.clock import FixedClock
from maskline.db import Database
from maskline.events.interfaces import InvalidOwnerName
from maskline.events.services import OwnerService

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
NINE_TO_SIX = (dt.time(9, 0), dt.time(18, 0))
WEEKDAYS = frozenset({0, 1, 2, 3, 4})


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("at", "zone", "within"),
    [
        ("2026-11-24T01:00", SHANGHAI, True),  # Tuesday 09:00 in Shanghai: the start counts
        ("2026-11-24T00:59", SHANGHAI, False),  # 08:59
        ("2026-11-24T09:59", SHANGHAI, True),  # 17:59
        ("2026-11-24T10:00", SHANGHAI, False),  # 18:00: the end does not
        ("2026-11-24T12:00", SHANGHAI, False),  # noon UTC, 20:00 in Shanghai
        ("2026-11-28T03:00", SHANGHAI, False),  # Saturday 11:00
        ("2026-11-29T03:00", SHANGHAI, False),  # Sunday 11:00
        ("2026-11-27T20:00", SHANGHAI, False),  # Friday in UTC, Saturday 04:00 in Shanghai
        ("2026-11-30T01:30", SHANGHAI, True),  # Monday 09:30
        # New York moved to daylight time on 8 March 2026: 12:30 UTC is 07:30
        # (EST) on the Monday before, 08:30 (EDT) on the Monday after; the day starts at 08:00.
        ("2026-03-02T12:30", NEW_YORK, False),
        ("2026-03-09T12:30", NEW_YORK, True),
    ],
)
def test_working_hours_are_read_on_the_local_clock(at: str, zone: dt.tzinfo, within: bool) -> None:
    hours = (dt.time(8, 0), dt.time(18, 0)) if zone is NEW_YORK else NINE_TO_SIX
    assert within_working_hours(utc(at), hours=hours, days=WEEKDAYS, zone=zone) is within


INSTANTS = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2090, 1, 1)).map(
    lambda naive: naive.replace(tzinfo=dt.UTC)
)


@given(INSTANTS, st.integers(-50, 50))
def test_a_zone_without_daylight_time_gives_the_same_answer_whole_weeks_apart(
    at: dt.datetime, weeks: int
) -> None:
    def within(when: dt.datetime) -> bool:
        return within_working_hours(when, hours=NINE_TO_SIX, days=WEEKDAYS, zone=SHANGHAI)

    assert within(at) == within(at + dt.timedelta(weeks=weeks))


@given(INSTANTS)
def test_with_every_day_a_working_day_only_the_local_time_counts(at: dt.datetime) -> None:
    every_day, until_23 = frozenset(range(7)), (dt.time(0, 0), dt.time(23, 0))
    in_shanghai = (at + dt.timedelta(hours=8)).time() < dt.time(23, 0)  # UTC+8 all year
    assert within_working_hours(at, hours=until_23, days=every_day, zone=SHANGHAI) == in_shanghai
    assert within_working_hours(at, hours=until_23, days=every_day, zone=dt.UTC) == (
        at.time() < dt.time(23, 0)
    )


def test_a_caller_is_named_by_twelve_hex_digits_of_its_blind_index() -> None:
    index = bytes(range(12))
    assert caller_subject(index) == "caller:000102030405"
    assert caller_subject(None) is None and caller_subject(b"") is None


@pytest.mark.parametrize(
    ("account", "subject"),
    [
        ("alice", "admin:alice"),
        ("admin:alice", "admin:alice"),
        ("ops.bob-2", "admin:ops.bob-2"),
        ("+14155550132", INVALID_ACCOUNT),
        ("a415-555-0132", INVALID_ACCOUNT),
        ("4155550132", INVALID_ACCOUNT),
        ("", INVALID_ACCOUNT),
        ("x" * 65, INVALID_ACCOUNT),
        ("alice smith", INVALID_ACCOUNT),
    ],
)
def test_an_account_that_could_carry_a_number_is_not_named(account: str, subject: str) -> None:
    assert _admin_subject(account, region="US") == subject


@pytest.fixture
def settings(tmp_path: Path) -> Any:
    return load_settings(
        {"env": "testing", "instance_path": tmp_path, "alert_failed_logins_per_hour": 1}, environ={}
    )


def failures(stage: str) -> float:
    return REGISTRY.get_sample_value("maskline_alert_failures_total", {"stage": stage}) or 0.0


def unconnected_service(settings: Any, tmp_path: Path, **kw: Any) -> AlertService:
    def no_redis() -> Any:
        raise AssertionError("the signal path must not reach Redis")

    return AlertService(
        db=Database(url=f"sqlite:///{tmp_path / 'never-opened.sqlite3'}"),
        redis=no_redis,
        settings=settings,
        outbox=None,
        clock=FixedClock(utc("2026-11-24T12:00")),
        background=False,
        **kw,
    )


def test_signals_only_queue_and_a_full_queue_drops_and_counts(settings: Any, tmp_path: Path) -> None:
    alerts = unconnected_service(settings, tmp_path, capacity=3)
    before = failures("dropped")
    at = utc("2026-11-24T12:00")
    alerts.failed_login(account="alice", at=at)
    alerts.stranger(relay="+14155550100", caller="caller:0123456789ab", at=at)  # two signals
    alerts.contacted(caller="caller:0123456789ab", buyer="pn_x", at=at)  # no room left
    assert alerts.pending() == 3
    assert failures("dropped") == before + 1
    assert not (tmp_path / "never-opened.sqlite3").exists()


@given(account=st.text(max_size=80), request_id=st.text(max_size=80))
def test_signal_methods_take_any_input_without_raising(account: str, request_id: str) -> None:
    settings = load_settings({"env": "testing", "working_days": frozenset()}, environ={})
    alerts = AlertService(
        db=Database(url="sqlite://"),
        redis=lambda: None,
        settings=settings,
        outbox=None,
        background=False,
    )
    at = utc("2026-11-24T12:00")
    alerts.failed_login(account=account, at=at)
    alerts.reveal_viewed(admin=account, request_id=request_id, at=at)  # no working day: always off hours
    assert alerts.pending() == 2


def test_an_alerts_url_needs_its_secret(settings: Any) -> None:
    with pytest.raises(SettingsError, match="MASKLINE_ALERTS_SECRET"):
        with_overrides(settings, alerts_url="https://siem.example.com/alerts")
    environ = {"MASKLINE_ALERTS_URL": "https://siem.example.com/alerts", "MASKLINE_ALERTS_SECRET": "s"}
    loaded = load_settings({}, environ=environ)
    assert (loaded.alerts_url, loaded.alerts_secret) == ("https://siem.example.com/alerts", "s")


def test_no_owner_can_take_the_name_alerts_are_sent_under(tmp_path: Path) -> None:
    db = Database(url=f"sqlite:///{tmp_path / 'never-opened.sqlite3'}")
    with pytest.raises(InvalidOwnerName):
        OwnerService(db=db, allow_loopback_http=True).set_events(ALERTS_OWNER, url="https://example.com/")
    clock = FixedClock(utc("2026-11-24T12:00"))
    with pytest.raises(KeyRequestInvalid):
        ApiKeyService(db=db, clock=clock).create(name="k", owner=ALERTS_OWNER, scopes=["bindings:read"])
    assert not (tmp_path / "never-opened.sqlite3").exists()


def test_what_is_not_a_fingerprint_a_relay_shape_or_a_token_is_not_queued(
    settings: Any, tmp_path: Path
) -> None:
    alerts = unconnected_service(settings, tmp_path)
    at = utc("2026-11-24T12:00")
    alerts.contacted(caller="+14155550132", buyer="pn_abc", at=at)
    alerts.contacted(caller="caller:0123456789ab", buyer="+14155550132", at=at)
    alerts.stranger(relay="415-555-0132", caller="+14155550132", at=at)
    alerts.wrong_extension(relay=None, caller="4155550132", at=at)
    assert alerts.pending() == 0
    # (Whether an E.164 relay is one of the pool is the webhook's check.)
    alerts.stranger(relay="+14155550100", caller=None, at=at)
    assert alerts.pending() == 1
