"""The console in Simplified Chinese in a real browser (Debian's chromium, Playwright).

A mainland deployment: Shanghai landline relay numbers, mainland parties,
MASKLINE_DISPLAY_TIMEZONE=Asia/Shanghai, and browsers that ask for zh-CN.
The same three people as the English walk-through (an operator, two
security admins); every page they see is checked for English words left
untranslated (tests/console_text.py), and screenshots go to
docs/screenshots/zh-CN/.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest

from tests.console_text import english_words
from tests.e2e.conftest import Cli, RunningServer, maskline_environ, serving
from tests.slow.conftest import ThrowawayPostgres, ThrowawayRedis
from tests.slow.test_admin_browser import CHROMIUM, CHROMIUM_ARGS, PASSWORD

pytestmark = pytest.mark.slow

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "zh-CN"
# Shanghai landlines as relay numbers; a Jiangsu mobile buyer, a Shanghai merchant.
X1, X2 = "+862161234567", "+862161234568"
BUYER, MERCHANT = "+8613912340003", "+862165432100"


@pytest.fixture
def server(
    throwaway_postgres: ThrowawayPostgres, throwaway_redis: ThrowawayRedis, tmp_path: Path
) -> Iterator[tuple[Cli, RunningServer]]:
    instance = tmp_path / "instance"
    env = maskline_environ(
        instance,
        throwaway_postgres.url,
        throwaway_redis.url,
        MASKLINE_DEFAULT_REGION="CN",
        MASKLINE_DISPLAY_TIMEZONE="Asia/Shanghai",
        MASKLINE_CONSOLE_LANGUAGE="zh-CN",
        MASKLINE_ALERT_FAILED_LOGINS_PER_HOUR="1",
    )
    cli = Cli(instance_path=instance, env=env)
    cli.run("init")
    cli.run("pool", "add", X1, X2)
    for name, role in (("ops_li", "operator"), ("sec_wang", "security"), ("sec_zhao", "security")):
        cli.run("admin", "create-user", "--name", name, "--role", role, "--password-stdin", stdin=PASSWORD)
    with serving(cli, tmp_path / "server.log", workers=2) as running:
        yield cli, running


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "Debian's chromium is not installed (.ci/run installs it)"
    # Without a CJK font the pages render, but the screenshots show empty boxes.
    fonts = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, check=False).stdout
    assert fonts.strip(), "no font with Chinese glyphs: install fonts-noto-cjk (.ci/run does)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


def chinese(browser: Any) -> Any:
    """A browser context as a mainland admin's: Chinese first, Beijing time."""
    return browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")


def checked(page: Any, name: str | None = None) -> str:
    """The page is in Chinese (no English word outside ids and codes); a screenshot if named."""
    html = page.content()
    assert '<html lang="zh-CN">' in html, page.url
    assert english_words(html) == [], (page.url, english_words(html))
    if name:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    return str(page.inner_text("main"))


def log_in(context: Any, base: str, name: str, *, screenshot: str | None = None) -> Any:
    page = context.new_page()
    page.goto(f"{base}/admin/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    checked(page, screenshot)
    page.click("button[type=submit]")
    return page


def enroll_totp(page: Any, *, screenshot: str | None = None) -> None:
    assert page.url.endswith("/admin/totp")
    secret = page.inner_text("#totp-secret").strip()
    checked(page, screenshot)
    page.fill("input[name=code]", pyotp.TOTP(secret).now())
    page.click("form[action='/admin/totp'] button[type=submit]")
    assert page.url.endswith("/admin/"), page.url


def bind(cli: Cli, order: str, *parties: str) -> dict[str, Any]:
    args = ["bind", "--order", order, "--mode", "axb", *(a for p in parties for a in ("--party", p))]
    return dict(json.loads(cli.out(*args)))


def test_the_console_in_chinese_end_to_end(server: tuple[Cli, RunningServer], browser: Any) -> None:
    cli, running = server
    base = running.base_url.replace("127.0.0.1", "localhost")
    axb = bind(cli, "order-2001", f"buyer={BUYER}", f"merchant={MERCHANT}")
    assert axb["relay_number"] in (X1, X2)

    # -- an operator finds the order, sees Beijing times, unbinds ---------------------
    operator = chinese(browser)
    page = log_in(operator, base, "ops_li", screenshot="login")
    checked(page)
    page.fill("input[name=q]", "order-2001")
    page.click("form.search button")
    assert page.locator("#results tbody tr").count() == 1
    assert "+08:00" in checked(page, "bindings-search")
    page.click(f"a[href='/admin/bindings/{axb['id']}']")
    assert page.inner_text("#status") == "生效中"
    checked(page, "binding-detail")
    page.fill("#unbind-form input[name=reason]", "商家反馈订单有误")
    page.click("#unbind-form button")
    assert page.inner_text("#status") == "已解绑"
    assert "已解绑" in checked(page)
    page.goto(f"{base}/admin/pool")
    pool = checked(page, "pool")
    assert "上海市 (21)" in pool and "中国 (CN)" in pool

    # -- two security admins run a dual-control reveal -----------------------------
    asker = chinese(browser)
    wang = log_in(asker, base, "sec_wang")
    enroll_totp(wang, screenshot="totp-enroll")
    wang.goto(f"{base}/admin/bindings/{axb['id']}")
    wang.select_option("#reveal-form select[name=role]", "buyer")
    wang.fill("#reveal-form input[name=reason]", "买家投诉配送问题 工单 5521")
    wang.click("#reveal-form button")
    request_id = re.search(r"已提交查看申请 (rv_\w+)", checked(wang)).group(1)  # type: ignore[union-attr]

    approver = chinese(browser)
    zhao = log_in(approver, base, "sec_zhao")
    enroll_totp(zhao)
    zhao.goto(f"{base}/admin/reveals")
    checked(zhao, "reveals")
    zhao.click(f"#reveal-{request_id} button:has-text('批准')")
    assert "已批准" in zhao.inner_text(f"#reveal-{request_id} .status")

    wang.goto(f"{base}/admin/reveals")
    wang.click(f"#reveal-{request_id} button:has-text('查看一次')")
    assert wang.inner_text("#revealed-number").strip() == BUYER
    checked(wang, "reveal-view")

    # -- a guessed password, the trail, the alert, the preferences ------------------------
    intruder = chinese(browser)
    for _ in range(2):
        wrong = intruder.new_page()
        wrong.goto(f"{base}/admin/login")
        wrong.fill("input[name=name]", "ops_li")
        wrong.fill("input[name=password]", "guessing her password")
        wrong.click("button[type=submit]")
        assert "用户名或密码错误" in checked(wrong)
    page.goto(f"{base}/admin/audit")
    assert page.inner_text("#chain-status").startswith("审计链校验通过")
    checked(page, "audit")
    page.goto(f"{base}/admin/alerts")
    assert "admin:ops_li" in checked(page, "alerts")
    page.goto(f"{base}/admin/interactions")
    checked(page)
    page.goto(f"{base}/admin/preferences")
    checked(page, "preferences")
    page.select_option("select[name=timezone]", "UTC")
    page.click("#preferences-form button")
    assert "设置已保存" in checked(page)
    page.goto(f"{base}/admin/bindings/{axb['id']}")
    assert "+00:00" in checked(page) and "+08:00" not in page.inner_text("main")
