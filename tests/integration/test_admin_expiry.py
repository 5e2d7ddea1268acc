"""Expiry changes in the console (issue 20): old -> new shown before anything
changes, and shortening only with its own explicit confirmation."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from flask import Flask
from sqlalchemy import select

from maskline import services_of
from maskline.audit.models import AuditRecord
from maskline.numbers.models import Binding
from tests.integration.admin_helpers import Console, make_admin

REASON = "courier is late today"


def operator(app: Flask) -> Console:
    make_admin(app, "olga", "operator")
    browser = Console(app)
    assert browser.login("olga").status_code == 303
    return browser


def expiry(app: Flask, binding_id: str) -> dt.datetime:
    with services_of(app).db.session() as session:
        return session.get(Binding, binding_id).expires_at


def confirm_form(page: str) -> dict[str, str]:
    """The hidden fields and the one button of the confirmation page."""
    fields = dict(re.findall(r'<input type="hidden" name="(expires_at|reason)" value="([^"]*)"', page))
    button = re.search(r'<button type="submit" name="confirm" value="(\w+)"', page)
    assert button and "expires_at" in fields
    return {**fields, "confirm": button.group(1)}


def test_extend_by_shows_old_and_new_then_extends(app: Flask, bind, clock) -> None:
    browser = operator(app)
    view = bind(ttl=dt.timedelta(hours=72))
    preview = browser.post(
        f"/admin/bindings/{view.id}/expiry/preview", {"how": "extend_by", "hours": "24", "reason": REASON}
    )
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200 and 'id="expiry-extends"' in page and "confirm-shorten" not in page
    assert expiry(app, view.id) == view.expires_at  # a preview changes nothing
    done = browser.post(f"/admin/bindings/{view.id}/expiry", confirm_form(page))
    assert done.status_code == 303
    assert expiry(app, view.id) == view.expires_at + dt.timedelta(hours=24)


def test_shortening_needs_the_shorten_button(app: Flask, bind, clock) -> None:
    browser = operator(app)
    view = bind(ttl=dt.timedelta(days=30))
    preview = browser.post(f"/admin/bindings/{view.id}/expiry/preview", {"how": "grace", "reason": REASON})
    page = preview.get_data(as_text=True)
    form = confirm_form(page)
    assert 'id="expiry-shortens"' in page and form["confirm"] == "shorten"
    # Sent without the shorten confirmation (a hand-made or stale form): refused, nothing changed.
    refused = browser.post(f"/admin/bindings/{view.id}/expiry", {**form, "confirm": "extend"})
    assert refused.status_code == 303
    assert "Nothing changed: this would shorten" in browser.text(f"/admin/bindings/{view.id}")
    assert expiry(app, view.id) == view.expires_at
    browser.post(f"/admin/bindings/{view.id}/expiry", form)
    grace = services_of(app).settings.delivery_grace
    assert expiry(app, view.id) == clock() + grace
    with services_of(app).db.session() as session:
        record = session.scalars(
            select(AuditRecord).where(AuditRecord.action == "binding.updated", AuditRecord.subject == view.id)
        ).one()
    assert record.actor == "admin:olga" and record.reason == REASON


def test_set_to_reads_the_console_time_zone(app: Flask, bind, clock) -> None:
    browser = operator(app)
    view = bind(ttl=dt.timedelta(hours=1))
    target = (clock() + dt.timedelta(days=2)).replace(second=0, microsecond=0)
    page = browser.post(
        f"/admin/bindings/{view.id}/expiry/preview",
        {"how": "set_to", "until": target.strftime("%Y-%m-%dT%H:%M"), "reason": REASON},
    ).get_data(as_text=True)
    browser.post(f"/admin/bindings/{view.id}/expiry", confirm_form(page))
    assert expiry(app, view.id) == target  # the deployment's display zone is UTC in tests


def test_the_old_extend_form_no_longer_shortens(app: Flask, bind) -> None:
    browser = operator(app)
    view = bind(ttl=dt.timedelta(hours=72))
    browser.post(f"/admin/bindings/{view.id}/extend", {"hours": "24", "reason": REASON})
    assert expiry(app, view.id) == view.expires_at
    assert "Nothing changed: that would shorten" in browser.text(f"/admin/bindings/{view.id}")


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"how": "extend_by", "hours": "lots"}, "hours"),
        ({"how": "extend_by", "hours": "0"}, "hours"),
        ({"how": "set_to", "until": "tomorrow"}, "until"),
        ({"how": "sideways"}, "how"),
    ],
)
def test_bad_forms_name_the_field_and_change_nothing(
    app: Flask, bind, form: dict[str, str], field: str
) -> None:
    browser = operator(app)
    view = bind()
    reply = browser.post(f"/admin/bindings/{view.id}/expiry/preview", {**form, "reason": REASON})
    assert reply.status_code == 303
    assert f"{field}: " in browser.text(f"/admin/bindings/{view.id}")
    assert expiry(app, view.id) == view.expires_at


@pytest.mark.parametrize("role", ["viewer", "security"])
def test_only_operators_change_expiry(app: Flask, bind, role: str) -> None:
    make_admin(app, "someone", role)
    browser = Console(app)
    browser.login("someone")
    if role == "security":
        browser.enroll(services_of(app).clock())
    view = bind()
    form = {"how": "grace", "reason": REASON}
    assert browser.post(f"/admin/bindings/{view.id}/expiry/preview", form).status_code == 403
    assert browser.post(f"/admin/bindings/{view.id}/expiry", form).status_code == 403
