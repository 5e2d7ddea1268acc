"""The console's lists in a real browser: paging, CSV export, bulk actions with confirmation.

Same set-up as test_admin_browser.py: ``maskline serve`` over a throwaway
PostgreSQL and Redis, Debian's chromium driven by Playwright. The 55
bindings are made through the API, as an order system would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Cli, RunningServer, maskline_environ, serving
from tests.slow.conftest import ThrowawayPostgres, ThrowawayRedis
from tests.slow.drills import api_client
from tests.slow.test_admin_browser import CHROMIUM, PASSWORD, X1, X2, log_in, shot

pytestmark = pytest.mark.slow

BINDINGS = 55


def buyer(n: int) -> str:
    return f"+1312555{n + 200:04d}"


def merchant(n: int) -> str:
    return f"+1212555{n + 200:04d}"


@pytest.fixture
def server(
    throwaway_postgres: ThrowawayPostgres, throwaway_redis: ThrowawayRedis, tmp_path: Path
) -> Iterator[tuple[Cli, RunningServer]]:
    instance = tmp_path / "instance"
    env = maskline_environ(instance, throwaway_postgres.url, throwaway_redis.url)
    cli = Cli(instance_path=instance, env=env)
    cli.run("init")
    cli.run("pool", "add", X1, X2)
    cli.run(
        "admin", "create-user", "--name", "olga", "--role", "operator", "--password-stdin", stdin=PASSWORD
    )
    with serving(cli, tmp_path / "server.log", workers=2) as running:
        api = api_client(cli, running)
        for n in range(BINDINGS):
            reply = api.create_binding(f"SO2026-{n:03d}", {"buyer": buyer(n), "merchant": merchant(n)})
            assert reply.status == 201, reply
        yield cli, running


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    from tests.slow.test_admin_browser import CHROMIUM_ARGS

    assert CHROMIUM.exists(), "Debian's chromium is not installed (.ci/run installs it)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


def no_party_digits(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return not any(number(n)[2:] in digits for n in range(BINDINGS) for number in (buyer, merchant))


def test_paging_export_and_bulk_actions(
    server: tuple[Cli, RunningServer], browser: Any, tmp_path: Path
) -> None:
    _cli, running = server
    base = running.base_url.replace("127.0.0.1", "localhost")
    context = browser.new_context(accept_downloads=True)
    page = log_in(context, base, "olga")

    # -- a search by the beginning of an order id, over two pages ------------------
    page.wait_for_url(re.compile(r".*/admin/.*"))
    page.goto(f"{base}/admin/bindings")
    page.fill("input[name=q]", "SO2026")
    page.click("form.search button")
    assert f"{BINDINGS} binding(s) by order id" in page.inner_text("main")
    assert page.locator("#results tbody tr").count() == 50
    assert page.inner_text(".pager .total") == f"50 of {BINDINGS}"
    first_ids = page.locator("#results tbody td:nth-child(2)").all_inner_texts()
    page.click(".pager a[rel=next]")
    assert page.locator("#results tbody tr").count() == BINDINGS - 50
    older_ids = page.locator("#results tbody td:nth-child(2)").all_inner_texts()
    assert not set(first_ids) & set(older_ids)
    page.click(".pager a[rel=prev]")
    assert page.locator("#results tbody td:nth-child(2)").all_inner_texts() == first_ids

    # -- the export holds every row of the search, and no party number --------------
    with page.expect_download() as download:
        page.click("#export")
    saved = tmp_path / "bindings.csv"
    download.value.save_as(saved)
    text = saved.read_text(encoding="utf-8-sig")
    lines = text.splitlines()
    assert lines[0].startswith("Binding,Order,") and len(lines) == 1 + BINDINGS
    assert no_party_digits(text)

    # -- bulk extend: review shows old -> new, confirm changes both -----------------
    chosen = first_ids[:2]
    for binding_id in chosen:
        page.check(f"input[name=ids][value={binding_id}]")
    page.select_option("#bulk select[name=action]", "extend")
    page.fill("#bulk input[name=hours]", "24")
    page.fill("#bulk input[name=reason]", "carrier delayed the whole route")
    page.click("#bulk button[type=submit]")
    assert page.inner_text("h1") == "Confirm the changes"
    plan = page.locator("#plan tbody tr")
    assert plan.count() == 2 and all("→" in t for t in plan.all_inner_texts())
    shot(page, "bulk-confirm")
    page.click("#confirm")
    assert page.inner_text("#bulk-summary") == "Extended 2 of 2 binding(s)."

    # -- bulk unbind of one, with its confirmation ------------------------------------
    page.goto(f"{base}/admin/bindings?q=SO2026")
    page.check(f"input[name=ids][value={chosen[0]}]")
    page.select_option("#bulk select[name=action]", "unbind")
    page.fill("#bulk input[name=reason]", "order cancelled by the buyer")
    page.click("#bulk button[type=submit]")
    assert "ends now" in page.inner_text("#plan")
    page.click("#confirm")
    assert page.inner_text("#bulk-summary") == "Unbound 1 of 1 binding(s)."

    # -- the audit log, filtered: one record per binding, and the export -------------
    page.goto(f"{base}/admin/audit")
    page.fill("#filters input[name=action]", "binding.updated")
    page.click("#filters button")
    subjects = page.locator("#audit tbody td:nth-child(5)").all_inner_texts()
    assert sorted(subjects) == sorted(chosen)
    page.fill("#filters input[name=action]", "admin.export")
    page.click("#filters button")
    assert page.inner_text(".pager .total") == "1 of 1"
    page.fill("#filters input[name=action]", "binding.unbound")
    page.click("#filters button")
    assert page.locator("#audit tbody td:nth-child(5)").all_inner_texts() == [chosen[0]]
