"""The admin console in a real browser: Debian's chromium, driven by Playwright.

The server is ``maskline serve`` (gunicorn) over a throwaway PostgreSQL and
Redis of its own; accounts and bindings are made with the CLI, as an
operator would.
Three people use it: an operator who unbinds, and two security admins who
run a dual-control reveal. Screenshots of the main pages go to
docs/screenshots/ (the README shows them).
"""

from __future__ import annotations

import json
import re
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
# The flags the machine's own probe found Chromium needs here: no sandbox as
# root, and no background connections to a network that is closed.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def server(
    throwaway_postgres: ThrowawayPostgres, throwaway_redis: ThrowawayRedis, tmp_path: Path
) -> Iterator[tuple[Cli, RunningServer]]:
    instance = tmp_path / "instance"
    env = maskline_environ(
        instance, throwaway_postgres.url, throwaway_redis.url, MASKLINE_ALERT_FAILED_LOGINS_PER_HOUR="1"
    )
    cli = Cli(instance_path=instance, env=env)
    cli.run("init")
    cli.run("pool", "add", X1, X2)
    for name, role in (("olga", "operator"), ("sam", "security"), ("sue", "security")):
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


def log_in(context: Any, base: str, name: str, *, screenshot: str | None = None) -> Any:
    page = context.new_page()
    page.goto(f"{base}/admin/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    if screenshot:
        shot(page, screenshot)
    page.click("button[type=submit]")
    return page


def enroll_totp(page: Any, *, screenshot: str | None = None) -> None:
    """The first login of a security admin: read the key, answer with a code."""
    assert page.url.endswith("/admin/totp")
    secret = page.inner_text("#totp-secret").strip()
    if screenshot:
        shot(page, screenshot)
    page.fill("input[name=code]", pyotp.TOTP(secret).now())
    page.click("form[action='/admin/totp'] button[type=submit]")
    assert page.url.endswith("/admin/"), page.url


def test_the_console_end_to_end(server: tuple[Cli, RunningServer], browser: Any) -> None:
    cli, running = server
    # http://localhost is a secure context: the Secure session cookie works.
    base = running.base_url.replace("127.0.0.1", "localhost")
    axb = bind(cli, "order-1001", f"buyer={BUYER}", f"merchant={MERCHANT}")
    axe = bind(cli, "order-1002", f"buyer={BUYER}", mode="axe", allow=COURIER)

    # -- an operator finds a binding and unbinds it --------------------------------
    operator = browser.new_context()
    page = log_in(operator, base, "olga", screenshot="login")
    page.fill("input[name=q]", "order-1001")
    page.click("form.search button")
    assert page.locator("#results tbody tr").count() == 1
    shot(page, "bindings-search")
    page.click(f"a[href='/admin/bindings/{axb['id']}']")
    masked = page.locator("#parties td.masked").all_inner_texts()
    assert masked == [f"+1 ••••••••{BUYER[-2:]}", f"+1 ••••••••{MERCHANT[-2:]}"]
    shot(page, "binding-detail")
    page.fill("#unbind-form input[name=reason]", "merchant reported a wrong order")
    page.click("#unbind-form button")
    assert page.inner_text("#status") == "unbound"
    page.goto(f"{base}/admin/pool")
    shot(page, "pool")

    # -- two security admins run a dual-control reveal -----------------------------
    asker = browser.new_context()
    sam = log_in(asker, base, "sam")
    enroll_totp(sam, screenshot="totp-enroll")
    sam.goto(f"{base}/admin/bindings/{axe['id']}")
    sam.select_option("#reveal-form select[name=role]", "buyer")
    sam.fill("#reveal-form input[name=reason]", "buyer disputes a delivery, ticket 5521")
    sam.click("#reveal-form button")
    request_id = re.search(r"Reveal (rv_\w+) requested", sam.inner_text("main")).group(1)
    # Asking is not seeing: no button to view yet, and approving oneself is not offered.
    row = sam.locator(f"#reveal-{request_id}")
    assert row.locator("text=View once").count() == 0 and row.locator("text=Approve").count() == 0

    approver = browser.new_context()
    sue = log_in(approver, base, "sue")
    enroll_totp(sue)
    sue.goto(f"{base}/admin/reveals")
    shot(sue, "reveals")
    sue.click(f"#reveal-{request_id} button:has-text('Approve')")
    assert "approved" in sue.inner_text(f"#reveal-{request_id} .status")

    sam.goto(f"{base}/admin/reveals")
    sam.click(f"#reveal-{request_id} button:has-text('View once')")
    assert sam.inner_text("#revealed-number").strip() == BUYER
    shot(sam, "reveal-view")
    sam.goto(f"{base}/admin/reveals")
    assert sam.locator(f"#reveal-{request_id} button:has-text('View once')").count() == 0
    assert "viewed" in sam.inner_text(f"#reveal-{request_id} .status")

    # -- the trail and an alert ------------------------------------------------------
    intruder = browser.new_context()
    for _ in range(2):
        wrong = intruder.new_page()
        wrong.goto(f"{base}/admin/login")
        wrong.fill("input[name=name]", "olga")
        wrong.fill("input[name=password]", "guessing her password")
        wrong.click("button[type=submit]")
        assert "wrong name or password" in wrong.inner_text("main")
    page.goto(f"{base}/admin/audit")
    assert page.inner_text("#chain-status").startswith("Chain verified")
    actions = page.locator("#audit tbody td:nth-child(4)").all_inner_texts()
    # Actions are shown in plain words (maskline/admin/labels.py).
    for action in (
        "binding unbound",
        "reveal requested",
        "reveal approved",
        "revealed number viewed",
        "console login failed",
    ):
        assert action in actions, (action, actions)
    shot(page, "audit")
    page.goto(f"{base}/admin/alerts")
    assert "admin:olga" in page.inner_text("#alerts")
    shot(page, "alerts")
    # The browser kept nothing it may not: the number is in no cookie.
    for context in (operator, asker, approver):
        for cookie in context.cookies():
            assert BUYER[2:] not in cookie["value"]
            assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
