"""The console in Simplified Chinese: every page, with data on it, has no English left.

The check (tests/console_text.py) reads what a person sees, not the
catalogue, so a string nobody marked for translation is caught here.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from flask import Flask

from maskline import services_of
from maskline.webhooks.models import Interaction
from tests.console_text import english_words
from tests.integration.admin_helpers import PASSWORD, Console
from tests.integration.conftest import BUYER, STRANGER, X1, Twilio

ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9,en;q=0.5"}


def test_the_checker_catches_an_unmarked_string() -> None:
    page = '<html lang="zh-CN"><p>绑定 <code>bd_1a2b</code> UTC</p><input placeholder="why not"><b>Log in</b>'
    assert english_words(page) == ["why", "not", "Log", "in"]
    assert english_words("<p>时间 2026-12-08 07:06 +08:00，Asia/Shanghai。</p><script>var x</script>") == []


def make_admin(app: Flask, name: str, role: str) -> None:
    accounts = services_of(app).admin.accounts
    accounts.create_user(name=name, role=role, password=PASSWORD, actor="cli:root")


class ZhConsole(Console):
    """A browser that asks for Chinese."""

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self.client.environ_base.update(ZH)


def signed_in(app: Flask, name: str, role: str, *, new: bool = True) -> ZhConsole:
    if new:
        make_admin(app, name, role)
    browser = ZhConsole(app)
    assert browser.login(name).status_code == 303
    if role == "security":
        assert browser.enroll(services_of(app).clock()).status_code == 303
    return browser


def assert_chinese(html: str, where: str) -> None:
    assert '<html lang="zh-CN">' in html, where
    assert english_words(html) == [], (where, english_words(html))


@pytest.fixture
def app(make_app) -> Flask:  # type: ignore[no-untyped-def]
    # Alerts at the first stranger, so the alerts page has rows.
    return make_app(alert_strangers_per_hour=1, display_timezone="Asia/Shanghai")


def test_every_console_page_is_in_chinese_with_data_on_it(app: Flask, bind, clock) -> None:  # type: ignore[no-untyped-def]
    services = services_of(app)
    twilio = Twilio(app)
    # Owner names are ids (the pool page lists them), as API keys' owners are.
    axb = bind(order_id="order-1001", owner="shop_a")
    axe = bind("axe", order_id="order-1002", owner="shop_a")
    # Calls and a text through the binding, and strangers: interactions and alerts.
    twilio.call(BUYER, X1)
    twilio.sms(BUYER, X1, "你好")
    twilio.call(STRANGER, X1)
    for _ in range(3):
        services.alerts.stranger(relay=X1, caller=None, at=clock())
        services.alerts.reveal_viewed(admin="sec_wang", request_id="rv_0123456789abcdef", at=clock())
    services.alerts.drain()
    with services.db.session() as session:
        for status, kind in (("no-answer", "call"), ("busy", "call"), ("delivered", "sms")):
            session.add(
                Interaction(
                    sid=f"CA{status}{kind}",
                    binding_id=axb.id,
                    owner="shop_a",
                    type=kind,
                    from_role="buyer",
                    to_role="merchant",
                    status=status,
                    duration=None,
                    started_at=clock(),
                )
            )

    pages: dict[str, str] = {}
    stranger = ZhConsole(app)
    pages["login"] = stranger.text("/admin/login")
    make_admin(app, "ops_li", "operator")
    refused = stranger.login("ops_li", "wrong password here")
    assert refused.status_code == 401
    pages["login refused"] = refused.get_data(as_text=True)

    operator = signed_in(app, "ops_li", "operator", new=False)
    pages["search"] = operator.text(f"/admin/bindings?q={axb.order_id}")
    pages["search by relay"] = operator.text(f"/admin/bindings?q={X1.replace('+', '%2B')}")
    bad = operator.post(f"/admin/bindings/{axb.id}/extend", {"hours": "many", "reason": "客户要求延长"})
    assert bad.status_code == 303
    pages["binding, an error flashed"] = operator.text(f"/admin/bindings/{axb.id}")
    operator.post(f"/admin/bindings/{axb.id}/extend", {"hours": "48", "reason": "客户要求延长时间"})
    pages["binding, extended"] = operator.text(f"/admin/bindings/{axb.id}")
    operator.post(f"/admin/bindings/{axe.id}/unbind", {"reason": "订单已取消"})
    pages["binding, unbound"] = operator.text(f"/admin/bindings/{axe.id}")
    pages["pool"] = operator.text("/admin/pool")
    pages["interactions"] = operator.text("/admin/interactions")
    pages["alerts"] = operator.text("/admin/alerts")
    alert_id = re.search(r"/admin/alerts/(al_[0-9a-f]+)/acknowledge", pages["alerts"])
    assert alert_id, pages["alerts"]
    operator.post(f"/admin/alerts/{alert_id.group(1)}/acknowledge")
    pages["alerts, one acknowledged"] = operator.text("/admin/alerts")
    pages["audit"] = operator.text("/admin/audit")
    pages["preferences"] = operator.text("/admin/preferences")
    pages["404"] = operator.get("/admin/bindings/bd_000000000000000000000").get_data(as_text=True)
    pages["403"] = operator.get("/admin/reveals").get_data(as_text=True)
    unknown = operator.get("/admin/no/such/page")
    assert unknown.status_code == 404
    pages["404, no such page"] = unknown.get_data(as_text=True)
    css = operator.get("/admin/static/admin.css")
    css.close()
    assert css.status_code == 200  # not caught by the 404

    asker = ZhConsole(app)
    make_admin(app, "sec_wang", "security")
    asker.login("sec_wang")
    pages["second factor, enrolment"] = asker.text("/admin/totp")
    assert asker.enroll(clock()).status_code == 303
    approver = signed_in(app, "sec_zhao", "security")
    asker.post(f"/admin/bindings/{axb.id}/reveal", {"role": "buyer", "reason": "短"})
    pages["binding, reveal refused"] = asker.text(f"/admin/bindings/{axb.id}")
    asker.post(
        f"/admin/bindings/{axb.id}/reveal", {"role": "buyer", "reason": "客户投诉快递员，需要核实号码"}
    )
    asker.post(f"/admin/bindings/{axb.id}/reveal", {"role": "merchant", "reason": "商家投诉，需要核实号码"})
    pages["reveals, asked"] = asker.text("/admin/reveals")
    first, second = sorted(set(re.findall(r'id="reveal-(rv_[A-Za-z0-9]+)"', pages["reveals, asked"])))
    asker.post(f"/admin/reveals/{first}/approve")
    pages["reveals, self-approval refused"] = asker.text("/admin/reveals")
    pages["reveals, to approve"] = approver.text("/admin/reveals")
    approver.post(f"/admin/reveals/{first}/approve")
    approver.post(f"/admin/reveals/{second}/deny", {"reason": "理由不充分，请补充材料"})
    pages["reveals, approved and denied"] = asker.text("/admin/reveals")
    shown = asker.post(f"/admin/reveals/{first}/view")
    assert shown.status_code == 200
    pages["revealed number"] = shown.get_data(as_text=True)
    pages["binding, as security"] = asker.text(f"/admin/bindings/{axb.id}")
    pages["audit, with reveals"] = asker.text("/admin/audit")
    clock.advance(minutes=5)
    again = ZhConsole(app)
    again.totp_secret = asker.totp_secret
    again.login("sec_wang")
    pages["second factor"] = again.text("/admin/totp")
    logged_out = operator.post("/admin/logout")
    assert logged_out.status_code == 303
    pages["logged out"] = operator.text("/admin/login")
    pages["csrf"] = operator.post("/admin/login", {"name": "x"}, token=False).get_data(as_text=True)

    assert len(pages) >= 25
    for where, html in pages.items():
        assert_chinese(html, where)
    # Data and words really are on them, in the display zone with its offset.
    assert "+08:00" in pages["interactions"] and "通话" in pages["interactions"]
    assert "美国 (US)" in pages["pool"] and "陌生号码来电" in pages["alerts"]
    assert (
        "已解绑" in pages["binding, unbound"]
        and "已由 admin:ops_li 确认" in pages["alerts, one acknowledged"]
    )
    assert "小时数：必须是整数小时" in pages["binding, an error flashed"]
    assert "用户名或密码错误" in pages["login refused"] and "您已退出登录" in pages["logged out"]
    assert "不能批准自己的申请" in pages["reveals, self-approval refused"]


def test_the_admins_own_language_wins_over_the_browser(app: Flask) -> None:
    browser = signed_in(app, "ops_li", "operator")
    browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en-US,en;q=0.9"
    assert '<html lang="en">' in browser.text("/admin/pool")
    saved = browser.post("/admin/preferences", {"language": "zh-CN", "timezone": "Asia/Shanghai"})
    assert saved.status_code == 303
    assert "设置已保存" in browser.text("/admin/preferences")  # said in the language just chosen
    page = browser.text("/admin/pool")
    assert '<html lang="zh-CN">' in page and "号码池状态" in page
    browser.post("/admin/preferences", {"language": "", "timezone": ""})
    assert '<html lang="en">' in browser.text("/admin/pool")


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [("language", "fr", "语言：不是可选的值"), ("timezone", "Mars/Olympus", "时区：必须是 IANA 时区名")],
)
def test_a_bad_preference_names_the_field_and_changes_nothing(
    app: Flask, field: str, value: str, shown: str
) -> None:
    browser = signed_in(app, "ops_li", "operator")
    browser.post("/admin/preferences", {"language": "", "timezone": "", field: value})
    page = browser.text("/admin/preferences")
    assert shown in page
    assert 'value="" selected' in page


def test_the_deployment_language_applies_when_the_browser_names_none(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app(console_language="zh-CN")
    page = app.test_client().get("/admin/login", base_url="https://localhost").get_data(as_text=True)
    assert '<html lang="zh-CN">' in page and "登录" in page
    english = app.test_client().get(
        "/admin/login", base_url="https://localhost", headers={"Accept-Language": "en"}
    )
    assert '<html lang="en">' in english.get_data(as_text=True)


def test_times_carry_the_admins_own_zone_and_offset(app: Flask, bind, clock) -> None:  # type: ignore[no-untyped-def]
    view = bind(order_id="order-1003")
    browser = signed_in(app, "ops_li", "operator")
    created = clock().astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")
    assert f"{created}:00 +08:00" in browser.text(f"/admin/bindings/{view.id}")
    browser.post("/admin/preferences", {"language": "", "timezone": "Europe/London"})
    utc = clock().strftime("%Y-%m-%d %H:%M")
    assert f"{utc}:00 +00:00" in browser.text(f"/admin/bindings/{view.id}")


def test_a_mainland_pool_names_its_cities(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    services = services_of(app)
    with services.db.session() as session:
        services.numbers.pool.add(session, ["+862161234567", "+861062345678"])
    browser = signed_in(app, "ops_li", "operator")
    chinese = browser.text("/admin/pool")
    assert "上海市 (21)" in chinese and "北京市 (10)" in chinese and "中国 (CN)" in chinese
    browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    english = browser.text("/admin/pool")
    assert "Shanghai (21)" in english and "Beijing (10)" in english and "China (CN)" in english
    assert ">21<" not in english


def test_csv_downloads_have_translated_headers_local_times_and_no_formulas(app: Flask, bind) -> None:  # type: ignore[no-untyped-def]
    view = bind(order_id="order-1004")
    browser = signed_in(app, "ops_li", "operator")
    browser.post(f"/admin/bindings/{view.id}/unbind", {"reason": "=HYPERLINK(1) 订单已取消"})
    audit = browser.get("/admin/audit.csv")
    assert audit.status_code == 200 and audit.mimetype == "text/csv"
    assert "attachment" in audit.headers["Content-Disposition"]
    lines = audit.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[0] == "#,时间,操作人,操作,对象,原因"
    unbound = next(line for line in lines if "binding.unbound" in line)
    assert "'=HYPERLINK(1) 订单已取消" in unbound and "+08:00" in unbound
    interactions = browser.get("/admin/interactions.csv").get_data(as_text=True).lstrip("\ufeff")
    assert interactions.splitlines()[0] == "时间,绑定,所属平台,类型,主叫,被叫,状态,时长（秒）"
    browser.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    english = browser.get("/admin/audit.csv").get_data(as_text=True).lstrip("\ufeff")
    assert english.splitlines()[0] == "#,When,Who,What,Subject,Why"
    assert "admin.export" in browser.text("/admin/audit")  # the download is on the record
