"""The overview and the console at a phone's width, in a real browser (Debian's
chromium, driven by Playwright), over ``maskline serve`` with its own
PostgreSQL and Redis.

* the overview at /admin draws its charts, states its figures as text, and
  the browser fetches nothing from another origin;
* at 390 px no console page scrolls sideways, and the menu (a <details>,
  no script) opens and reaches Alerts, the audit log and Log out.

Screenshots (desktop and mobile) go to docs/screenshots/.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.e2e.conftest import Cli, RunningServer, maskline_environ, serving
from tests.slow.conftest import ThrowawayPostgres, ThrowawayRedis

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PASSWORD = "correct horse battery staple"
X1, X2 = "+14155550100", "+14155550101"
BUYER, MERCHANT, COURIER = "+14155550132", "+12125550143", "+13125550154"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def server(
    throwaway_postgres: ThrowawayPostgres, throwaway_redis: ThrowawayRedis, tmp_path: Path
) -> Iterator[tuple[Cli, RunningServer]]:
    instance = tmp_path / "instance"
    env = maskline_environ(instance, throwaway_postgres.url, throwaway_redis.url)
    cli = Cli(instance_path=instance, env=env)
    cli.run("init")
    cli.run("pool", "add", X1, X2)
    for name, role in (("olga", "operator"), ("sam", "security")):
        cli.run("admin", "create-user", "--name", name, "--role", role, "--password-stdin", stdin=PASSWORD)
    with serving(cli, tmp_path / "server.log", workers=2) as running:
        yield cli, running


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "Debian's chromium is not installed (.ci/run installs it)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


def bind(cli: Cli, order: str, *parties: str, mode: str = "axb", allow: str | None = None) -> dict[str, Any]:
    args = ["bind", "--order", order, "--mode", mode, *(a for p in parties for a in ("--party", p))]
    if allow:
        args += ["--allow", allow]
    return dict(json.loads(cli.out(*args)))


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def log_in(context: Any, base: str, name: str) -> Any:
    page = context.new_page()
    page.goto(f"{base}/admin/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    if page.url.endswith("/admin/totp"):
        secret = page.inner_text("#totp-secret").strip()
        page.fill("input[name=code]", pyotp.TOTP(secret).now())
        page.click("form[action='/admin/totp'] button[type=submit]")
    return page


def test_the_overview_draws_its_charts_from_this_site_only(
    server: tuple[Cli, RunningServer], browser: Any
) -> None:
    cli, running = server
    base = running.base_url.replace("127.0.0.1", "localhost")
    bind(cli, "order-1001", f"buyer={BUYER}", f"merchant={MERCHANT}")
    bind(cli, "order-1002", f"buyer={BUYER}", mode="axe", allow=COURIER)

    context = browser.new_context(viewport=DESKTOP)
    requested: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    page = log_in(context, base, "olga")
    assert page.url.rstrip("/").endswith("/admin"), page.url
    assert page.inner_text("#live-bindings strong") == "2"
    assert page.inner_text("#calls-24h strong") == "0"
    charts = page.locator("svg.chart")
    assert charts.count() == 2
    for index in range(2):
        chart = charts.nth(index)
        assert chart.locator("polyline.series").count() == 3
        assert chart.bounding_box()["width"] > 300  # drawn, not collapsed
    assert page.locator("#pool-load tbody tr").count() == 1
    # On a wide screen the menu is open, its summary hidden.
    assert page.locator("#menu nav a[href='/admin/alerts']").is_visible()
    assert not page.locator("#menu > summary").is_visible()
    shot(page, "overview")
    assert requested and all(url.startswith(base) for url in requested), requested


def test_no_page_scrolls_sideways_at_390_px_and_the_menu_reaches_every_page(
    server: tuple[Cli, RunningServer], browser: Any
) -> None:
    cli, running = server
    base = running.base_url.replace("127.0.0.1", "localhost")
    axb = bind(cli, "order-2001", f"buyer={BUYER}", f"merchant={MERCHANT}")

    phone = browser.new_context(viewport=PHONE, is_mobile=True, device_scale_factor=2)
    sam = log_in(phone, base, "sam")  # a security admin sees every page, reveals too
    pages = [
        "/admin/",
        "/admin/bindings",
        "/admin/bindings?q=order-2001",
        f"/admin/bindings/{axb['id']}",
        "/admin/pool",
        "/admin/interactions",
        "/admin/alerts",
        "/admin/reveals",
        "/admin/audit",
        "/admin/preferences",
    ]
    wide = {}
    for path in pages:
        sam.goto(f"{base}{path}")
        width = sam.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            wide[path] = width
    assert wide == {}
    login = browser.new_context(viewport=PHONE, is_mobile=True).new_page()  # signed out, same width
    login.goto(f"{base}/admin/login")
    assert login.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    sam.goto(f"{base}/admin/")
    shot(sam, "mobile/overview")
    alerts = sam.locator("#menu nav a[href='/admin/alerts']")
    assert not alerts.is_visible()  # folded away
    sam.click("#menu > summary")
    assert alerts.is_visible()
    shot(sam, "mobile/menu")
    alerts.click()
    assert sam.url.endswith("/admin/alerts")
    sam.click("#menu > summary")
    sam.click("#menu nav a[href='/admin/audit']")
    assert sam.url.endswith("/admin/audit")
    assert sam.inner_text("#chain-status").startswith("Chain verified")
    shot(sam, "mobile/audit")
    sam.click("#menu > summary")
    sam.click("#menu form.who button[type=submit]")
    assert sam.url.endswith("/admin/login")
    assert "logged out" in sam.inner_text("main")
