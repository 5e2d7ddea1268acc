"""The console's overview at /admin: its figures, the pool_low alert, and the
audit page's check from the newest signed checkpoint."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, select, text

from maskline import services_of
from maskline.audit import checkpoints as cp
from maskline.audit.head import check_head
from maskline.audit.interfaces import AuditEntry
from maskline.audit.models import Alert, AuditRecord
from maskline.clock import FixedClock
from maskline.numbers.interfaces import BindRequest
from maskline.numbers.load import region_loads
from maskline.webhooks.models import Interaction
from maskline.wiring import Services
from tests.console_text import english_words
from tests.integration.admin_helpers import PASSWORD, Console
from tests.integration.conftest import STRANGER, Twilio

ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9"}


def signed_in(app: Flask, name: str = "vera", role: str = "viewer", *, zh: bool = False) -> Console:
    services_of(app).admin.accounts.create_user(name=name, role=role, password=PASSWORD, actor="cli:root")
    browser = Console(app)
    if zh:
        browser.client.environ_base.update(ZH)
    assert browser.login(name).status_code == 303
    return browser


def add_interaction(services: Services, sid: str, kind: str, at: dt.datetime) -> None:
    with services.db.session() as session:
        session.add(
            Interaction(
                sid=sid,
                binding_id="bd_x",
                owner="default",
                type=kind,
                from_role="buyer",
                to_role="merchant",
                status="completed",
                duration=None,
                started_at=at,
            )
        )


def tile(page: str, tile_id: str) -> int:
    found = re.search(rf'id="{tile_id}">[^<]*<strong>(\d+)</strong>', page)
    assert found, page
    return int(found.group(1))


def bind_distinct(app: Flask, count: int, *, start: int = 0) -> list[str]:
    """``count`` bindings whose parties differ (so two can share a relay number)."""
    ids = []
    for i in range(start, start + count):
        parties = {"buyer": f"+1212555{100 + i:04d}", "merchant": f"+1312555{100 + i:04d}"}
        request = BindRequest(order_id=f"o-{i}", mode="axb", parties=parties)
        ids.append(services_of(app).numbers.bindings.bind(request).id)
    return ids


# -- the figures -----------------------------------------------------------------


def test_the_landing_page_is_the_overview_with_live_bindings_and_calls_as_text(
    app: Flask, bind: Callable[..., Any], clock: FixedClock
) -> None:
    services = services_of(app)
    bind(order_id="o-1")
    bind("axe", order_id="o-2")
    now = clock()
    for i, hours_ago in enumerate((0.5, 2, 23.5)):
        add_interaction(services, f"CA{i}", "call", now - dt.timedelta(hours=hours_ago))
    add_interaction(services, "CAold", "call", now - dt.timedelta(hours=30))  # in the week, not the day
    add_interaction(services, "SM1", "sms", now - dt.timedelta(hours=1))
    browser = signed_in(app)
    page = browser.text("/admin/")
    assert tile(page, "live-bindings") == 2
    assert tile(page, "calls-24h") == 3
    week = re.findall(r"(\d+) binds, (\d+) calls, (\d+) texts", page)
    assert week[-1] == ("2", "4", "1"), week  # the 7-day totals
    assert page.count('<svg class="chart"') == 2
    assert 'id="chart-day"' in page and 'id="chart-week"' in page
    # Nothing from outside the console: no script, no other origin.
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")


def test_an_ended_binding_is_not_live(app: Flask, bind: Callable[..., Any], clock: FixedClock) -> None:
    view = bind()
    services_of(app).numbers.bindings.unbind(view.id, actor="admin:olga", reason="order cancelled")
    assert tile(signed_in(app).text("/admin/"), "live-bindings") == 0


def test_the_hourly_series_put_each_event_in_its_hour(app: Flask, clock: FixedClock) -> None:
    from maskline.admin.overview import hourly

    services = services_of(app)
    clock.advance(minutes=30)  # 12:30 UTC: the current hour is 12:00-13:00
    now = clock()
    add_interaction(services, "CA1", "call", now - dt.timedelta(minutes=1))  # 12:29
    add_interaction(services, "CA2", "call", now - dt.timedelta(hours=5))  # 07:30
    add_interaction(services, "CA3", "call", now - dt.timedelta(hours=5, minutes=31))  # 06:59
    add_interaction(services, "SM1", "sms", now - dt.timedelta(days=8))  # outside the window
    with services.db.session() as session:
        series = hourly(session, now=now, hours=24)
    assert len(series.starts) == 24 and series.starts[-1] == now.replace(minute=0)
    calls = {start.hour: count for start, count in zip(series.starts, series.calls, strict=True) if count}
    assert calls == {12: 1, 7: 1, 6: 1}
    assert sum(series.texts) == 0


def test_refusals_are_tallied_by_reason_off_the_webhook_path(app: Flask, bind: Callable[..., Any]) -> None:
    relay = bind().relay_number
    twilio = Twilio(app)
    for _ in range(3):
        twilio.call(STRANGER, relay)
    services_of(app).alerts.drain()
    page = signed_in(app).text("/admin/")
    row = re.search(r"<tr><td>caller is not a party</td><td>(\d+)</td><td>(\d+)</td>", page)
    assert row, page
    assert row.groups() == ("3", "3")


def test_the_overview_says_so_when_redis_cannot_give_the_refusals(app: Flask) -> None:
    from maskline.admin.overview import _refusals

    def down(**_: Any) -> dict[str, int]:
        raise ConnectionError("redis down")

    assert _refusals(down, now=dt.datetime.now(dt.UTC), hours=24) is None


def test_the_overview_is_in_chinese(app: Flask, bind: Callable[..., Any]) -> None:
    Twilio(app).call(STRANGER, bind().relay_number)
    services_of(app).alerts.drain()
    page = signed_in(app, "ops_li", zh=True).text("/admin/")
    assert '<html lang="zh-CN">' in page
    assert english_words(page) == []
    assert "主叫不是当事人" in page


# -- pool_low --------------------------------------------------------------------


@pytest.fixture
def small_pool(make_app: Any) -> Flask:
    # Two relay numbers (X1, X2: one region) of two bindings each: capacity 4.
    app: Flask = make_app(max_bindings_per_number=2)
    return app


def pool_low_alerts(app: Flask) -> list[Alert]:
    with services_of(app).db.session() as session:
        rows = list(session.scalars(select(Alert).where(Alert.kind == "pool_low")))
        session.expunge_all()
    return rows


def look(app: Flask) -> None:
    """What the worker does each run: every region's load, to the alerts."""
    services = services_of(app)
    with services.db.session() as session:
        loads = region_loads(session, now=services.clock(), per_number=2)
    services.alerts.pool_loads(loads, at=services.clock())
    services.alerts.drain()


def test_pool_low_fires_once_when_a_region_passes_80_percent(small_pool: Flask, clock: FixedClock) -> None:
    app = small_pool
    ids = bind_distinct(app, 3)  # 75%
    look(app)
    assert pool_low_alerts(app) == []
    ids += bind_distinct(app, 1, start=3)  # 100%
    look(app)
    clock.advance(seconds=30)
    look(app)  # still low: no second alert
    alerts = pool_low_alerts(app)
    assert len(alerts) == 1
    assert alerts[0].subject == "pool:US:415"
    assert (alerts[0].count, alerts[0].threshold) == (4, 3)
    page = signed_in(app).text("/admin/")
    assert "Pool running low" in page
    assert "pool running low" in signed_in(app, "otto").text("/admin/alerts")


def test_pool_low_fires_again_only_after_the_load_fell_back(small_pool: Flask, clock: FixedClock) -> None:
    app = small_pool
    ids = bind_distinct(app, 4)
    look(app)
    bindings = services_of(app).numbers.bindings
    bindings.unbind(ids[0], actor="admin:olga", reason="order cancelled")
    bindings.unbind(ids[1], actor="admin:olga", reason="order cancelled")
    clock.advance(seconds=30)
    look(app)  # 50%: re-armed
    assert len(pool_low_alerts(app)) == 1
    clock.advance(seconds=30)
    bindings.unbind(ids[2], actor="admin:olga", reason="order cancelled")
    bind_distinct(app, 3, start=10)  # back to 100% (new parties, so the cool-down does not bar them)
    look(app)
    assert len(pool_low_alerts(app)) == 2


def test_the_worker_hands_the_loads_to_the_alerts(small_pool: Flask) -> None:
    from maskline.worker import _pool_loads

    app = small_pool
    bind_distinct(app, 4)
    services = services_of(app)
    line = _pool_loads(services)
    services.alerts.drain()
    assert "1 past 80% (US:415)" in line
    assert len(pool_low_alerts(app)) == 1


# -- the audit page's check ------------------------------------------------------


def append(services: Services, count: int) -> None:
    with services.db.session() as session:
        for i in range(count):
            services.audit.append(
                session, AuditEntry(actor="cli:test", action="test.action", subject=f"s{i}")
            )


@pytest.fixture
def signed(make_app: Any, tmp_path: Path) -> Iterator[tuple[Flask, cp.Checkpointer]]:
    key = cp.write_new_key_file(tmp_path / "audit-signing.pem")
    app: Flask = make_app(
        audit_signing_key_file=tmp_path / "audit-signing.pem",
        audit_checkpoint_file=tmp_path / "checkpoints.jsonl",
    )
    services = services_of(app)
    checkpointer = cp.Checkpointer(
        db=services.db,
        audit=services.audit,
        key=key,
        destinations=[cp.FileDestination(tmp_path / "checkpoints.jsonl")],
        interval=dt.timedelta(minutes=5),
        clock=services.clock,
    )
    yield app, checkpointer


class Reads:
    """Audit records loaded from the database while counting."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, target: Any, context: Any) -> None:
        self.count += 1

    def __enter__(self) -> Reads:
        event.listen(AuditRecord, "load", self)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(AuditRecord, "load", self)


def chain_length(services: Services) -> int:
    with services.db.session() as session:
        return int(session.scalar(text("SELECT count(*) FROM audit_log")) or 0)


def audit_page_reads(app: Flask, browser: Console) -> tuple[int, str]:
    with Reads() as reads:
        page = browser.text("/admin/audit")
    return reads.count, page


def test_the_audit_page_reads_as_many_records_at_300_as_at_1200(
    signed: tuple[Flask, cp.Checkpointer],
) -> None:
    app, checkpointer = signed
    services = services_of(app)
    browser = signed_in(app)
    counts = []
    for size in (300, 1200):
        append(services, size - chain_length(services))
        checkpointer.checkpoint()
        append(services, 5)  # written since the newest checkpoint
        reads, page = audit_page_reads(app, browser)
        counts.append(reads)
        assert "Chain verified from the newest signed checkpoint" in page, page
        assert "costs the same however long the chain grows" in page
    # 100 rows listed, plus the checkpoint's record and the few written since
    # (the page views' own records among them): the same at both lengths.
    assert counts[0] == counts[1]
    assert counts[0] < 130


def test_the_check_finds_a_chain_recomputed_under_a_checkpoint(signed: tuple[Flask, cp.Checkpointer]) -> None:
    app, checkpointer = signed
    services = services_of(app)
    append(services, 20)
    checkpointer.checkpoint()
    append(services, 3)
    # A superuser edits record 5 and rehashes everything after it: the chain
    # alone still holds, but the record the checkpoint signed now differs.
    from maskline.audit.chain import GENESIS_HASH, chain_hash
    from maskline.audit.services import canonical_of

    with services.db.session() as session:
        prev = GENESIS_HASH
        for row in session.scalars(select(AuditRecord).order_by(AuditRecord.seq)):
            if row.seq == 5:
                row.reason = "nothing happened here"
            row.prev_hash = prev
            row.hash = chain_hash(prev, canonical_of(row))
            prev = row.hash
    page = signed_in(app).text("/admin/audit")
    assert "Chain BROKEN at record 20" in page


def test_the_check_finds_an_edit_after_the_checkpoint(signed: tuple[Flask, cp.Checkpointer]) -> None:
    app, checkpointer = signed
    services = services_of(app)
    append(services, 10)
    checkpointer.checkpoint()
    append(services, 3)
    with services.db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET reason = 'x' WHERE seq = 12"))
    assert "Chain BROKEN at record 12" in signed_in(app).text("/admin/audit")


def test_a_checkpoint_not_signed_by_the_key_is_reported(
    signed: tuple[Flask, cp.Checkpointer], tmp_path: Path
) -> None:
    app, _ = signed
    services = services_of(app)
    append(services, 4)
    forger = cp.Checkpointer(
        db=services.db,
        audit=services.audit,
        key=cp.SigningKey.generate(),
        destinations=[cp.FileDestination(tmp_path / "checkpoints.jsonl")],
        interval=dt.timedelta(minutes=5),
    )
    forger.checkpoint()
    page = signed_in(app).text("/admin/audit")
    assert "signature does not verify" in page and "BROKEN" in page


def test_without_a_checkpoint_only_the_newest_records_are_read(app: Flask) -> None:
    services = services_of(app)
    append(services, 60)
    with services.db.session() as session, Reads() as reads:
        result = check_head(session, services.audit, None, tail=10, unanchored_because="no checkpoint yet")
    assert result.ok and result.records == 60 and result.checked == 10
    assert reads.count == 11  # the record before the ten, as their anchor, and the ten
    page = signed_in(app).text("/admin/audit")
    assert "No signed checkpoint anchors this check: no checkpoint file or key configured" in page


def test_the_audit_page_shows_actions_and_details_in_chinese(app: Flask, bind: Callable[..., Any]) -> None:
    view = bind("axe")
    services_of(app).numbers.bindings.unbind(view.id, actor="admin:ops_li", reason="订单已取消")
    page = signed_in(app, "ops_li", zh=True).text("/admin/audit")
    assert english_words(page) == []
    assert "绑定已解除" in page
    assert "<dt>所属方</dt><dd>默认（内置）</dd>" in page  # labelled fields, not a dump


def test_an_alerts_details_are_labelled_fields(app: Flask, clock: FixedClock) -> None:
    services = services_of(app)
    clock.advance(hours=11)  # 23:00 UTC: outside working hours
    services.alerts.reveal_viewed(admin="sec_wang", request_id="rv_abcdef", at=clock())
    services.alerts.drain()
    page = signed_in(app).text("/admin/alerts")
    assert "reveal outside working hours" in page
    assert "<dt>request</dt><dd>rv_abcdef</dd>" in page
