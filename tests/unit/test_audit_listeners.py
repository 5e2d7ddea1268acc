"""What the binding auditor writes, and what it leaves out (no database: a recording fake)."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

import click
import pytest

from maskline.audit.cli import _parse_time
from maskline.audit.interfaces import AuditEntry
from maskline.audit.listeners import BindingAuditor
from maskline.audit.services import AuditLog
from maskline.numbers.interfaces import BindingEvent, BindingView, PoolExhaustedEvent

AT = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
VIEW = BindingView(
    id="bd_aaaaaaaaaaaaaaaa",
    owner="shop-a",
    order_id="o-1",
    mode="axe",
    relay_number="+14155550100",
    extension="1234",
    status="active",
    expires_at=AT + dt.timedelta(hours=72),
    created_at=AT,
    roles=["buyer"],
    allow="list",
    allowed_callers=1,
)


class RecordingAudit:
    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def append(self, session: Any, entry: AuditEntry) -> None:
        self.entries.append(entry)


def heard(*events: BindingEvent | PoolExhaustedEvent) -> list[AuditEntry]:
    audit = RecordingAudit()
    auditor = BindingAuditor(audit=cast(AuditLog, audit))
    for event in events:
        auditor.on_binding_event(cast(Any, None), event)
    return audit.entries


def test_a_created_binding_is_recorded_with_its_public_facts() -> None:
    (entry,) = heard(BindingEvent(type="binding.created", binding=VIEW, at=AT, actor="apikey:abc"))

    assert (entry.actor, entry.action, entry.subject, entry.reason) == (
        "apikey:abc",
        "binding.created",
        VIEW.id,
        "",
    )
    assert entry.data == {
        "owner": "shop-a",
        "order_id": "o-1",
        "mode": "axe",
        "relay_number": "+14155550100",
        "extension": "1234",
        "roles": ["buyer"],
        "expires_at": "2026-11-27T12:00:00Z",
        "allow": "list",
        "allowed_callers": 1,
        "fallback_used": False,
        "record": False,
    }


def test_an_update_carries_its_changes_and_reason() -> None:
    changes = {"expires_at": "2026-11-25T12:00:00Z", "delivered": True, "allow": 2}
    event = BindingEvent(
        type="binding.updated", binding=VIEW, at=AT, actor="admin:ann", reason="ticket 7", changes=changes
    )

    (entry,) = heard(event)

    assert (entry.action, entry.reason, entry.data["changes"]) == ("binding.updated", "ticket 7", changes)
    assert "roles" not in entry.data


@pytest.mark.parametrize("kind", ["binding.unbound", "binding.expired"])
def test_an_end_carries_when(kind: Any) -> None:
    (entry,) = heard(BindingEvent(type=kind, binding=VIEW, at=AT, actor="cli:root"))

    assert (entry.action, entry.data["ended_at"]) == (kind, "2026-11-24T12:00:00Z")


def test_maskline_s_own_changes_and_pool_exhaustion_are_not_recorded() -> None:
    exhausted = PoolExhaustedEvent(owner="shop-a", order_id="o-1", mode="axb", role=None, needed=1, at=AT)

    assert heard(BindingEvent(type="binding.expired", binding=VIEW, at=AT), exhausted) == []


NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-20", dt.datetime(2026, 11, 20, tzinfo=dt.UTC)),
        ("2026-11-20T08:30:00Z", dt.datetime(2026, 11, 20, 8, 30, tzinfo=dt.UTC)),
        ("2026-11-20T16:30:00+08:00", dt.datetime(2026, 11, 20, 8, 30, tzinfo=dt.UTC)),
        ("24h", NOW - dt.timedelta(hours=24)),
        ("7d", NOW - dt.timedelta(days=7)),
    ],
)
def test_export_times_are_iso_or_a_duration_back(value: str, expected: dt.datetime) -> None:
    assert _parse_time(value, "--since", NOW) == expected


@pytest.mark.parametrize("value", ["2026", "yesterday", "24", "-1h", ""])
def test_an_unclear_export_time_is_refused(value: str) -> None:
    with pytest.raises(click.BadParameter, match="neither an ISO 8601 time"):
        _parse_time(value, "--since", NOW)
