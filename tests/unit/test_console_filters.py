"""The console lists' filters and page cursors: typed, checked, refused clearly."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from maskline.admin import paging
from maskline.admin.filters import AlertFilter, AuditFilter, InteractionFilter, PoolFilter, RevealFilter
from maskline.admin.interfaces import InvalidAdminInput
from maskline.admin.listing import AUDIT, BINDINGS, POOL

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
UTC = zoneinfo.ZoneInfo("UTC")


def test_a_cursor_round_trips_times_and_ids() -> None:
    values = (dt.datetime(2026, 12, 8, 3, 4, 5, 678901, tzinfo=dt.UTC), "bd_aaaaaaaaaaaaaaaa")
    assert paging.decode(paging.encode(values), BINDINGS, field="after") == values
    assert paging.decode(paging.encode((42,)), AUDIT, field="after") == (42,)
    assert paging.decode(paging.encode(("+14155550100",)), POOL, field="after") == ("+14155550100",)


@pytest.mark.parametrize(
    ("keyset", "cursor"),
    [
        (AUDIT, "not base64!"),
        (AUDIT, paging.encode(("12",))),  # a string where the key is a number
        (AUDIT, paging.encode((True,))),  # JSON true is no sequence number
        (AUDIT, paging.encode((1, 2))),  # too many values
        (BINDINGS, paging.encode(("yesterday", "bd_aaaaaaaaaaaaaaaa"))),
        (BINDINGS, paging.encode(("2026-12-08T03:04:05", "bd_aaaaaaaaaaaaaaaa"))),  # no offset
        (AUDIT, "A" * 1000),
        (AUDIT, "e30"),  # {} is no list
    ],
)
def test_a_cursor_that_is_not_one_of_the_list_is_refused_by_field(keyset: paging.Keyset, cursor: str) -> None:
    with pytest.raises(InvalidAdminInput) as refused:
        paging.decode(cursor, keyset, field="before")
    assert refused.value.field == "before" and "first page" in refused.value.message


def test_a_date_is_the_whole_day_in_the_console_zone() -> None:
    f = AuditFilter.read({"since": "2026-12-08", "until": "2026-12-08"}, zone=SHANGHAI)
    assert f.time.since == dt.datetime(2026, 12, 7, 16, 0, tzinfo=dt.UTC)
    assert f.time.until == dt.datetime(2026, 12, 8, 16, 0, tzinfo=dt.UTC)
    assert f.args() == {"since": "2026-12-08", "until": "2026-12-08"}


def test_a_date_and_time_is_read_to_the_minute() -> None:
    f = AuditFilter.read({"since": "2026-12-08T14:30", "actor": "admin:", "action": "binding."}, zone=UTC)
    assert f.time.since == dt.datetime(2026, 12, 8, 14, 30, tzinfo=dt.UTC) and f.time.until is None
    assert f.args() == {"actor": "admin:", "action": "binding.", "since": "2026-12-08T14:30"}


def test_an_empty_filter_has_no_args() -> None:
    assert AuditFilter.read({}, zone=UTC).args() == {}
    assert InteractionFilter.read({"binding": " "}, zone=UTC, region="US").args() == {}


def test_a_national_relay_number_is_read_in_the_deployment_region() -> None:
    cn = InteractionFilter.read({"relay": "010 6552 0100"}, zone=UTC, region="CN")
    us = InteractionFilter.read({"relay": "(415) 555-0100"}, zone=UTC, region="US")
    assert cn.relay == "+861065520100" and us.relay == "+14155550100"


def test_the_old_open_link_still_means_open_alerts() -> None:
    assert AlertFilter.read({"open": "1"}).state == "open"
    assert AlertFilter.read({"state": "acknowledged", "kind": "binding_burst"}).args() == {
        "kind": "binding_burst",
        "state": "acknowledged",
    }


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-13-01"}, "since"),
        ({"until": "2026-12-08 25:00"}, "until"),
        ({"since": "2026-12-09", "until": "2026-12-08"}, "until"),
        ({"actor": "admin:olga; DROP TABLE"}, "actor"),
        ({"action": "Binding.Unbound"}, "action"),
        ({"actor": "a" * 121}, "actor"),
    ],
)
def test_a_bad_audit_filter_names_its_field(args: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidAdminInput) as refused:
        AuditFilter.read(args, zone=UTC)
    assert refused.value.field == field


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"binding": "bd_short"}, "binding"),
        ({"relay": "not a number"}, "relay"),
        ({"relay": "12"}, "relay"),
        ({"outcome": "<script>"}, "outcome"),
    ],
)
def test_a_bad_interaction_filter_names_its_field(args: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidAdminInput) as refused:
        InteractionFilter.read(args, zone=UTC, region="US")
    assert refused.value.field == field
    # What was typed is not repeated in the message.
    assert all(v not in refused.value.message for v in args.values())


@pytest.mark.parametrize(
    ("read", "args", "field"),
    [
        (AlertFilter.read, {"state": "closed"}, "state"),
        (AlertFilter.read, {"kind": "Binding Burst"}, "kind"),
        (PoolFilter.read, {"status": "free"}, "status"),
        (RevealFilter.read, {"status": "lost"}, "status"),
    ],
)
def test_other_bad_filters_name_their_field(read, args: dict[str, str], field: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidAdminInput) as refused:
        read(args)
    assert refused.value.field == field
