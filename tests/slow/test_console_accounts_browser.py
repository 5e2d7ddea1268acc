"""Issue 20 in a real browser (Debian's chromium, driven by Playwright): the
TOTP QR code, who asked / approved / viewed a reveal, a shortening that is
never silent, and an admin's API key shown once.

The server is ``maskline serve`` over a throwaway PostgreSQL and Redis; the
accounts and bindings are made with the CLI, as an operator would.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.e2e.conftest import Cli, RunningServer, maskline_environ, serving
from tests.slow.conftest import ThrowawayPostgres, ThrowawayRedis
from tests.slow.test_admin_browser import BUYER, MERCHANT, PASSWORD, X1, X2, bind, browser, log_in

pytestmark = pytest.mark.slow
__all__ = ["browser"]  # the fixture, shared with the main browser test

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def server(
    throwaway_postgres: ThrowawayPostgres, throwaway_redis: ThrowawayRedis, tmp_path: Path
) -> Iterator[tuple[Cli, RunningServer]]:
    instance = tmp_path / "instance"
    cli = Cli(
        instance_path=instance, env=maskline_environ(instance, throwaway_postgres.url, throwaway_redis.url)
    )
    cli.run("init")
    cli.run("pool", "add", X1, X2)
    users = (("olga", "operator"), ("sam", "security"), ("sue", "security"), ("ada", "admin"))
    for name, role in users:
        cli.run("admin", "create-user", "--name", name, "--role", role, "--password-stdin", stdin=PASSWORD)
    with serving(cli, tmp_path / "server.log", workers=2) as running:
        yield cli, running


def base_of(running: RunningServer) -> str:
    # http://localhost is a secure context: the Secure session cookie works.
    return running.base_url.replace("127.0.0.1", "localhost")


def enroll(page: Any) -> None:
    """Read the key off the enrollment page and answer with the current code."""
    secret = page.inner_text("#totp-secret").strip()
    page.fill("input[name=code]", pyotp.TOTP(secret).now())
    page.click("form[action='/admin/totp'] button[type=submit]")
    assert page.url.endswith("/admin/"), page.url


def test_enrollment_shows_a_qr_code(server: tuple[Cli, RunningServer], browser: Any) -> None:
    _cli, running = server
    page = log_in(browser.new_context(), base_of(running), "sam")
    assert page.url.endswith("/admin/totp")
    qr = page.locator("#totp-qr svg")
    assert qr.count() == 1 and qr.locator("path").count() == 1
    box = qr.bounding_box()
    assert box is not None and box["width"] >= 100 and abs(box["width"] - box["height"]) < 2
    assert qr.get_attribute("aria-label")
    page.screenshot(path=str(SCREENSHOTS / "totp-enroll-qr.png"), full_page=True)
    enroll(page)
    # Recovery codes are offered once the second factor is set up.
    page.click("#recovery-link")
    page.click("#make-recovery-codes")
    assert page.locator("#recovery-codes li").count() == 10


def test_the_reveal_list_names_who_asked_approved_and_viewed(
    server: tuple[Cli, RunningServer], browser: Any
) -> None:
    cli, running = server
    base = base_of(running)
    axb = bind(cli, "order-2001", f"buyer={BUYER}", f"merchant={MERCHANT}")
    sam = log_in(browser.new_context(), base, "sam")
    enroll(sam)
    sue = log_in(browser.new_context(), base, "sue")
    enroll(sue)
    sam.goto(f"{base}/admin/bindings/{axb['id']}")
    sam.select_option("#reveal-form select[name=role]", "buyer")
    sam.fill("#reveal-form input[name=reason]", "buyer disputes a delivery, ticket 5521")
    sam.click("#reveal-form button")
    request_id = re.search(r"Reveal (rv_\w+) requested", sam.inner_text("main")).group(1)
    sue.goto(f"{base}/admin/bindings")
    assert sue.inner_text("#reveals-waiting").strip() == "1"  # waiting for sue
    sam.goto(f"{base}/admin/bindings")
    assert sam.locator("#reveals-waiting").count() == 0  # one's own request waits for others
    sue.goto(f"{base}/admin/reveals")
    sue.click(f"#reveal-{request_id} button:has-text('Approve')")
    sam.goto(f"{base}/admin/reveals")
    sam.click(f"#reveal-{request_id} button:has-text('View once')")
    assert sam.inner_text("#revealed-number").strip() == BUYER
    sue.goto(f"{base}/admin/reveals")
    row = sue.locator(f"#reveal-{request_id}")
    assert row.locator(".requested-by").inner_text().strip() == "sam"
    assert row.locator(".decided-by").inner_text().strip().startswith("sue")
    assert row.locator(".viewed-by").inner_text().strip().startswith("sam")
    assert "sue" not in row.locator(".status").inner_text()
    assert sue.locator("#reveals-waiting").count() == 0
    sue.screenshot(path=str(SCREENSHOTS / "reveals-attribution.png"), full_page=True)


def test_a_shortening_is_shown_and_refused_without_its_confirmation(
    server: tuple[Cli, RunningServer], browser: Any
) -> None:
    cli, running = server
    base = base_of(running)
    parties = ("--party", f"buyer={BUYER}", "--party", f"merchant={MERCHANT}")
    axb = json.loads(cli.out("bind", "--order", "order-2002", "--mode", "axb", *parties, "--ttl", "240h"))
    page = log_in(browser.new_context(), base, "olga")
    page.goto(f"{base}/admin/bindings/{axb['id']}")
    before = page.inner_text("main")

    def review_grace() -> None:
        page.check("#expiry-form input[value=grace]")
        page.fill("#expiry-form input[name=reason]", "parcel delivered, courier done")
        page.click("#expiry-form button[type=submit]")

    review_grace()
    assert page.locator("#expiry-shortens").is_visible()
    assert page.inner_text("#expiry-old") != page.inner_text("#expiry-new")
    assert page.locator("#confirm-extend").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "expiry-shorten-confirm.png"), full_page=True)
    # A stale or hand-made form that does not say "shorten": refused, nothing changed.
    page.evaluate("document.querySelector('#confirm-shorten').value = 'extend'")
    page.click("#confirm-shorten")
    assert "Nothing changed: this would shorten" in page.inner_text("main")
    assert _expires(cli, axb["id"]) == axb["expires_at"]
    # The real confirmation shortens.
    review_grace()
    page.click("#confirm-shorten")
    assert "Expiry changed:" in page.inner_text("main")
    assert _expires(cli, axb["id"]) < axb["expires_at"]
    assert before != page.inner_text("main")


def _expires(cli: Cli, binding_id: str) -> str:
    return str(json.loads(cli.out("bindings", "show", binding_id))["expires_at"])


def test_an_admin_creates_a_key_shown_once(server: tuple[Cli, RunningServer], browser: Any) -> None:
    _cli, running = server
    base = base_of(running)
    page = log_in(browser.new_context(), base, "ada")
    enroll(page)  # an admin signs in with a second factor
    page.click("nav a:has-text('Owners and keys')")
    page.fill("#create-owner input[name=name]", "shop-z")
    page.click("#create-owner button")
    page.select_option("#create-key select[name=owner]", "shop-z")
    page.fill("#create-key input[name=name]", "order system")
    page.check("#create-key input[value='pool:read']")
    page.click("#create-key button[type=submit]")
    key = page.inner_text("#new-key").strip()
    assert key.startswith("ml_")
    page.screenshot(path=str(SCREENSHOTS / "admin-key-created.png"), full_page=True)
    pool = f"{running.base_url}/v1/pool"
    request = urllib.request.Request(pool, headers={"Authorization": f"Bearer {key}"})  # noqa: S310
    with urllib.request.urlopen(request) as reply:  # noqa: S310 (the test's own server)
        assert reply.status == 200
    page.goto(f"{base}/admin/owners")
    assert key not in page.content()
    assert page.locator("#keys tbody tr").count() == 1
    # An admin holds no reveal rights: no Reveals link, and the page is refused.
    assert page.locator("nav a:has-text('Reveals')").count() == 0
    assert page.goto(f"{base}/admin/reveals").status == 403
