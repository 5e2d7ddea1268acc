"""Reveals in the console name each step's admin (issue 20): who asked, who
approved, who viewed; security admins see how many wait for them; and an
optional notice goes out through the alerts channel."""

from __future__ import annotations

import datetime as dt
import re

from flask import Flask
from sqlalchemy import select

from maskline import services_of
from maskline.audit.models import Alert
from tests.integration.admin_helpers import Console, make_admin

REASON = "customer complaint 4711 about a parcel"


def security(app: Flask, name: str) -> Console:
    make_admin(app, name, "security")
    browser = Console(app)
    assert browser.login(name).status_code == 303
    assert browser.enroll(services_of(app).clock()).status_code == 303
    return browser


def request_id(app: Flask) -> str:
    [row] = services_of(app).admin.reveals.list()
    return str(row.id)


def cell(page: str, request: str, name: str) -> str:
    row = re.search(rf'<tr id="reveal-{request}">(.*?)</tr>', page, re.S)
    assert row, page
    found = re.search(rf'<td class="{name}">(.*?)</td>', row.group(1), re.S)
    assert found
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def test_the_list_names_requester_approver_and_viewer(app: Flask, bind) -> None:
    sec_a, sec_b = security(app, "sec-a"), security(app, "sec-b")
    view = bind()
    sec_a.post(f"/admin/bindings/{view.id}/reveal", {"role": "buyer", "reason": REASON})
    rid = request_id(app)
    assert sec_b.post(f"/admin/reveals/{rid}/approve").status_code == 303
    assert sec_a.post(f"/admin/reveals/{rid}/view").status_code == 200
    page = sec_b.text("/admin/reveals")
    assert cell(page, rid, "requested-by") == "sec-a"
    assert cell(page, rid, "decided-by").startswith("sec-b")
    assert cell(page, rid, "viewed-by").startswith("sec-a")
    assert "(sec-b)" not in cell(page, rid, "status")


def test_security_admins_see_how_many_requests_wait_for_them(app: Flask, bind) -> None:
    sec_a, sec_b = security(app, "sec-a"), security(app, "sec-b")
    view = bind()
    assert 'id="reveals-waiting"' not in sec_b.text("/admin/bindings")
    sec_a.post(f"/admin/bindings/{view.id}/reveal", {"role": "buyer", "reason": REASON})
    sec_a.post(f"/admin/bindings/{view.id}/reveal", {"role": "merchant", "reason": REASON})
    badge = re.search(r'id="reveals-waiting"[^>]*>(\d+)<', sec_b.text("/admin/bindings"))
    assert badge and badge.group(1) == "2"
    # Its own requests do not wait for the requester.
    assert 'id="reveals-waiting"' not in sec_a.text("/admin/bindings")


def alerts_of(app: Flask) -> list[tuple[str, str]]:
    services = services_of(app)
    services.alerts.drain()
    with services.db.session() as session:
        return [(a.kind, a.subject) for a in session.scalars(select(Alert))]


def test_a_notice_goes_out_only_when_asked_for(make_app, bind) -> None:
    quiet = make_app()
    sec_a = security(quiet, "sec-a")
    view = bind()
    sec_a.post(f"/admin/bindings/{view.id}/reveal", {"role": "buyer", "reason": REASON})
    assert [k for k, _ in alerts_of(quiet) if k == "reveal_requested"] == []
    loud = make_app(reveal_notice=True)
    again = Console(loud)
    again.login("sec-a")
    again.totp_secret = sec_a.totp_secret
    # The next step's code: the enrollment code is spent (a code is good once).
    again.second_factor(again.totp_code(services_of(loud).clock() + dt.timedelta(seconds=30)))
    again.post(f"/admin/bindings/{view.id}/reveal", {"role": "merchant", "reason": REASON})
    assert ("reveal_requested", "admin:sec-a") in alerts_of(loud)
