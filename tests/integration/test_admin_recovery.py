"""The console's second factor (issue 20): a QR code at enrollment, the
enrollment code spending only its own step, and one-time recovery codes."""

from __future__ import annotations

import datetime as dt
import html
import re

from flask import Flask
from sqlalchemy import select

from maskline import services_of
from maskline.admin.models import AdminUser, RecoveryCode
from maskline.admin.qr import qr_svg
from maskline.audit.models import AuditRecord
from tests.integration.admin_helpers import Console, make_admin

STEP = dt.timedelta(seconds=30)


def enrolled(app: Flask, name: str = "sam") -> Console:
    make_admin(app, name, "security")
    browser = Console(app)
    assert browser.login(name).status_code == 303
    assert browser.enroll(services_of(app).clock()).status_code == 303
    return browser


def failed_logins(app: Flask, name: str) -> int:
    with services_of(app).db.session() as session:
        return session.scalars(select(AdminUser.failed_logins).where(AdminUser.name == name)).one()


def test_enrollment_shows_the_key_as_a_qr_code(app: Flask) -> None:
    make_admin(app, "sam", "security")
    browser = Console(app)
    browser.login("sam")
    page = browser.text("/admin/totp")
    uri = html.unescape(re.search(r'id="totp-uri">([^<]+)<', page).group(1))
    qr = re.search(r'<div class="qr" id="totp-qr">(<svg .*?</svg>)</div>', page, re.S)
    assert qr and uri.startswith("otpauth://totp/")
    # The picture is the otpauth URI, drawn by the qrcode library.
    assert qr.group(1) == str(qr_svg(uri, label="QR code of your second-factor key"))


def test_the_enrollment_code_blocks_only_its_own_step(app: Flask, clock) -> None:
    first = enrolled(app)
    first.post("/admin/logout")
    again = Console(app)
    again.totp_secret = first.totp_secret
    again.login("sam")
    refused = again.second_factor(again.totp_code(clock()))  # the enrollment's own code
    assert refused.status_code == 303
    assert "that code was already used: wait for the next one" in again.text("/admin/totp")
    assert failed_logins(app, "sam") == 0  # a replay is refused, not counted towards a lockout
    assert again.second_factor(again.totp_code(clock() + STEP)).status_code == 303
    assert again.get("/admin/bindings").status_code == 200


def make_codes(browser: Console) -> list[str]:
    page = browser.post("/admin/recovery-codes").get_data(as_text=True)
    return re.findall(r"<li><code>([a-z2-7-]+)</code></li>", page)


def test_recovery_codes_are_shown_once_and_stored_as_hashes(app: Flask) -> None:
    browser = enrolled(app)
    codes = make_codes(browser)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert "<li><code>" not in browser.text("/admin/recovery-codes")  # not shown again
    with services_of(app).db.session() as session:
        stored = session.scalars(select(RecoveryCode.code_hash)).all()
    assert len(stored) == 10
    assert not {c.replace("-", "") for c in codes} & set(stored)
    assert not any(c.replace("-", "") in h for c in codes for h in stored)


def test_a_recovery_code_signs_in_once_and_is_audited(app: Flask) -> None:
    browser = enrolled(app)
    code = make_codes(browser)[3]
    browser.post("/admin/logout")
    lost_phone = Console(app)
    lost_phone.login("sam")
    assert lost_phone.second_factor(code.upper()).status_code == 303
    assert lost_phone.get("/admin/bindings").status_code == 200
    assert "Unused recovery codes: 9" in lost_phone.text("/admin/recovery-codes")
    with services_of(app).db.session() as session:
        record = session.scalars(
            select(AuditRecord).where(AuditRecord.action == "admin.totp.recovery_code")
        ).one()
    assert record.actor == "admin:sam" and code not in (record.data or "")
    lost_phone.post("/admin/logout")
    thief = Console(app)
    thief.login("sam")
    thief.second_factor(code)
    assert thief.get("/admin/bindings").status_code == 302  # spent: back to the code page
    assert failed_logins(app, "sam") == 1


def test_new_codes_spend_the_old_ones(app: Flask) -> None:
    browser = enrolled(app)
    old = make_codes(browser)
    make_codes(browser)
    browser.post("/admin/logout")
    again = Console(app)
    again.login("sam")
    again.second_factor(old[0])
    assert again.get("/admin/bindings").status_code == 302


def test_resetting_the_second_factor_forgets_the_codes(app: Flask) -> None:
    browser = enrolled(app)
    make_codes(browser)
    services_of(app).admin.accounts.reset_second_factor("sam", actor="cli:root", reason="lost phone")
    with services_of(app).db.session() as session:
        assert session.scalars(select(RecoveryCode)).all() == []


def test_accounts_without_a_second_factor_have_no_codes_page(app: Flask) -> None:
    make_admin(app, "vera", "viewer")
    browser = Console(app)
    browser.login("vera")
    assert browser.get("/admin/recovery-codes").status_code == 404
    assert browser.post("/admin/recovery-codes").status_code == 404
