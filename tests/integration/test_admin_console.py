"""The console over HTTP: login, roles, CSRF, pages, and what they never show."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from flask import Flask
from sqlalchemy import select, text

from maskline import services_of
from maskline.audit.models import AuditRecord
from maskline.numbers.models import Binding
from tests.integration.admin_helpers import Console, make_admin
from tests.integration.conftest import BUYER, MERCHANT, X1, without_party_digits

PAGES = ("/admin/bindings", "/admin/pool", "/admin/interactions", "/admin/alerts", "/admin/audit")


@pytest.fixture
def console(app: Flask) -> Console:
    return Console(app)


def logged_in(app: Flask, name: str, role: str) -> Console:
    make_admin(app, name, role)
    browser = Console(app)
    assert browser.login(name).status_code == 303
    if role == "security":
        assert browser.enroll(services_of(app).clock()).status_code == 303
    return browser


def audit_actions(app: Flask) -> list[tuple[str, str, str]]:
    with services_of(app).db.session() as session:
        rows = session.execute(select(AuditRecord.actor, AuditRecord.action, AuditRecord.subject)).all()
    return [tuple(r) for r in rows]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_sends_a_stranger_to_the_login_page(console: Console, page: str) -> None:
    response = console.get(page)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login")


def test_a_post_without_its_csrf_token_fails_and_logs_no_one_in(app: Flask, console: Console) -> None:
    make_admin(app, "vera", "viewer")
    response = console.post(
        "/admin/login", {"name": "vera", "password": "correct horse battery staple"}, token=False
    )
    assert response.status_code == 400
    assert console.get("/admin/bindings").status_code == 302


def test_a_post_with_a_forged_csrf_token_fails(app: Flask, bind, console: Console) -> None:
    browser = logged_in(app, "olga", "operator")
    view = bind()
    response = browser.client.post(
        f"/admin/bindings/{view.id}/unbind",
        data={"reason": "forged request here", "csrf_token": "not-the-token"},
        base_url="https://localhost",
        headers={"Referer": "https://localhost/admin/"},
    )
    assert response.status_code == 400
    with services_of(app).db.session() as session:
        assert session.get(Binding, view.id).status == "active"


def test_login_sets_a_secure_httponly_samesite_cookie(app: Flask, console: Console) -> None:
    make_admin(app, "vera", "viewer")
    response = console.login("vera")
    cookie = next(v for k, v in response.headers.items() if k == "Set-Cookie" and "maskline_admin=" in v)
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Path=/admin" in cookie


def test_a_wrong_password_is_refused_with_the_same_words_as_an_unknown_name(
    app: Flask, console: Console
) -> None:
    make_admin(app, "vera", "viewer")
    wrong = console.login("vera", "not the password at all")
    unknown = console.login("nobody", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    message = re.compile(r'role="alert">([^<]+)<')
    assert message.search(wrong.get_data(as_text=True)).group(1) == message.search(
        unknown.get_data(as_text=True)
    ).group(1)


@pytest.mark.parametrize("page", PAGES)
def test_a_viewer_reads_every_page_and_pages_are_not_cached(app: Flask, page: str) -> None:
    browser = logged_in(app, "vera", "viewer")
    response = browser.get(page)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize("role", ["viewer", "security"])
def test_roles_other_than_operator_cannot_unbind_or_extend(app: Flask, bind, role: str) -> None:
    browser = logged_in(app, "someone", role)
    view = bind()
    assert (
        browser.post(f"/admin/bindings/{view.id}/unbind", {"reason": "testing the guard"}).status_code == 403
    )
    extend = browser.post(f"/admin/bindings/{view.id}/extend", {"hours": "5", "reason": "testing the guard"})
    assert extend.status_code == 403
    with services_of(app).db.session() as session:
        row = session.get(Binding, view.id)
        assert row.status == "active" and row.expires_at == view.expires_at


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_security_sees_or_takes_part_in_reveals(app: Flask, bind, role: str) -> None:
    browser = logged_in(app, "someone", role)
    view = bind()
    assert browser.get("/admin/reveals").status_code == 403
    request = browser.post(
        f"/admin/bindings/{view.id}/reveal", {"role": "buyer", "reason": "customer complaint 42"}
    )
    assert request.status_code == 403
    assert browser.post("/admin/reveals/rv_whatever/approve").status_code == 403
    assert browser.post("/admin/reveals/rv_whatever/view").status_code == 403


def test_an_operator_unbinds_with_a_reason_on_the_record(app: Flask, bind) -> None:
    browser = logged_in(app, "olga", "operator")
    view = bind()
    response = browser.post(f"/admin/bindings/{view.id}/unbind", {"reason": "merchant reported abuse"})
    assert response.status_code == 303
    with services_of(app).db.session() as session:
        assert session.get(Binding, view.id).status == "unbound"
        record = session.scalars(
            select(AuditRecord).where(AuditRecord.action == "binding.unbound", AuditRecord.subject == view.id)
        ).one()
    assert record.actor == "admin:olga" and record.reason == "merchant reported abuse"


def test_an_operator_extends_and_bad_hours_name_the_field_and_change_nothing(app: Flask, bind, clock) -> None:
    browser = logged_in(app, "olga", "operator")
    view = bind()
    bad = browser.post(f"/admin/bindings/{view.id}/extend", {"hours": "lots", "reason": "courier is late"})
    assert bad.status_code == 303
    page = browser.text(f"/admin/bindings/{view.id}")
    assert "hours: must be a whole number of hours" in page
    with services_of(app).db.session() as session:
        assert session.get(Binding, view.id).expires_at == view.expires_at
    good = browser.post(f"/admin/bindings/{view.id}/extend", {"hours": "100", "reason": "courier is late"})
    assert good.status_code == 303
    with services_of(app).db.session() as session:
        assert session.get(Binding, view.id).expires_at == clock() + dt.timedelta(hours=100)


def test_a_reason_is_required_to_unbind(app: Flask, bind) -> None:
    browser = logged_in(app, "olga", "operator")
    view = bind()
    browser.post(f"/admin/bindings/{view.id}/unbind", {"reason": " "})
    assert "reason: say why" in browser.text(f"/admin/bindings/{view.id}")
    with services_of(app).db.session() as session:
        assert session.get(Binding, view.id).status == "active"


@pytest.mark.parametrize("how", ["order", "relay", "binding", "tracking"])
def test_search_finds_a_binding_by_order_relay_number_binding_id_or_tracking_number(
    app: Flask, bind, api, how: str
) -> None:
    view = bind("axe" if how == "tracking" else "axb", order_id="order-77", owner="shop-a")
    if how == "tracking":
        assert api.call("PUT", f"/v1/bindings/{view.id}/waybills/TRK123", {"carrier": "acme"}).status < 300
    query = {"order": "order-77", "relay": view.relay_number, "binding": view.id, "tracking": "TRK123"}[how]
    browser = logged_in(app, "vera", "viewer")
    page = browser.text(f"/admin/bindings?q={query.replace('+', '%2B')}")
    assert f'href="/admin/bindings/{view.id}"' in page


def test_search_by_a_party_number_finds_nothing(app: Flask, bind) -> None:
    bind(order_id="order-77")
    browser = logged_in(app, "vera", "viewer")
    page = browser.text(f"/admin/bindings?q={BUYER.replace('+', '%2B')}")
    assert "0 binding(s)" in page


def test_the_binding_page_masks_parties_and_puts_the_look_on_record(app: Flask, bind) -> None:
    view = bind()
    browser = logged_in(app, "vera", "viewer")
    page = browser.text(f"/admin/bindings/{view.id}")
    assert "+1 ••••••••" + BUYER[-2:] in page and "+1 ••••••••" + MERCHANT[-2:] in page
    assert without_party_digits(page)
    assert ("admin:vera", "admin.binding.view", view.id) in audit_actions(app)


def test_an_unknown_binding_is_404(app: Flask) -> None:
    browser = logged_in(app, "vera", "viewer")
    assert browser.get("/admin/bindings/bd_aaaaaaaaaaaaaaaa").status_code == 404
    assert browser.get("/admin/bindings/not-an-id").status_code == 404


def test_pool_health_counts_numbers_and_live_bindings_per_region(app: Flask, bind) -> None:
    bind()
    browser = logged_in(app, "vera", "viewer")
    page = browser.text("/admin/pool")
    # The area is named by its place (phonenumbers' geocoder), with its code.
    area = r"<tr><td>United States \(US\)</td><td>San Francisco, CA \(415\)</td>"
    row = re.search(area + r"(.*?)</tr>", page, re.S)
    assert row, page
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row.group(1))
    assert cells[:5] == ["2", "2", "0", "0", "1"]  # numbers, active, locked, retired, live


def test_the_audit_page_shows_the_chain_verified_then_broken_after_tampering(app: Flask, bind) -> None:
    browser = logged_in(app, "vera", "viewer")
    assert "Chain verified" in browser.text("/admin/audit")
    with services_of(app).db.session() as session:
        session.execute(text("UPDATE audit_log SET reason = 'nothing to see' WHERE seq = 1"))
    assert "Chain BROKEN at record 1" in browser.text("/admin/audit")


def test_logout_ends_the_session_for_a_copied_cookie_too(app: Flask) -> None:
    browser = logged_in(app, "vera", "viewer")
    copied = Console(app)
    for cookie in browser.client._cookies.values():
        copied.client.set_cookie(cookie.key, cookie.value, domain=cookie.domain, path=cookie.path)
    assert copied.get("/admin/bindings").status_code == 200
    assert browser.post("/admin/logout").status_code == 303
    assert copied.get("/admin/bindings").status_code == 302
    assert ("admin:vera", "admin.logout", "admin:vera") in audit_actions(app)


def test_disabling_an_admin_ends_their_session_and_blocks_login(app: Flask) -> None:
    browser = logged_in(app, "vera", "viewer")
    services_of(app).admin.accounts.set_disabled("vera", True, actor="cli:root")
    assert browser.get("/admin/bindings").status_code == 302
    assert browser.login("vera").status_code == 401


def test_a_security_admin_must_enroll_totp_before_any_page(app: Flask, clock) -> None:
    make_admin(app, "sam", "security")
    browser = Console(app)
    assert browser.login("sam").headers["Location"] == "/admin/totp"
    assert browser.get("/admin/bindings").headers["Location"] == "/admin/totp"
    assert browser.enroll(clock()).status_code == 303
    assert browser.get("/admin/bindings").status_code == 200
    # Next login: the code is asked for, and the one already used is refused.
    browser.post("/admin/logout")
    browser.login("sam")
    assert browser.get("/admin/bindings").status_code == 302
    browser.second_factor(browser.totp_code(clock()))
    assert browser.get("/admin/bindings").status_code == 302
    clock.advance(seconds=30)
    browser.second_factor(browser.totp_code(clock()))
    assert browser.get("/admin/bindings").status_code == 200


def test_no_party_number_on_any_page(app: Flask, bind, twilio) -> None:
    view = bind()
    twilio.call(BUYER, X1)
    browser = logged_in(app, "vera", "viewer")
    for page in (*PAGES, f"/admin/bindings/{view.id}", f"/admin/bindings?q={view.order_id}"):
        assert without_party_digits(browser.text(page)), page


def test_a_reveal_request_with_too_short_a_reason_names_the_field_and_asks_nothing(app: Flask, bind) -> None:
    browser = logged_in(app, "sam", "security")
    view = bind()
    browser.post(f"/admin/bindings/{view.id}/reveal", {"role": "buyer", "reason": "because"})
    assert "reason: say why, in at least 10 characters" in browser.text(f"/admin/bindings/{view.id}")
    assert services_of(app).admin.reveals.list(binding_id=view.id) == []
