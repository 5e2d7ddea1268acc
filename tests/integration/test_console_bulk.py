"""Bulk extend and unbind from the console: review, confirm, one audit record per binding."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from flask import Flask
from sqlalchemy import select

from maskline import services_of
from maskline.audit.models import AuditRecord
from maskline.numbers.interfaces import BindingView, BindRequest
from maskline.numbers.models import Binding
from tests.integration.admin_helpers import Console
from tests.integration.test_console_lists import binding_id, logged_in

REASON = "carrier delayed the whole route"


def bind_many(app: Flask, count: int, *, owner: str = "default") -> list[BindingView]:
    """``count`` live axb bindings of ``owner``, each with its own two parties."""
    bindings = services_of(app).numbers.bindings
    return [
        bindings.bind(
            BindRequest(
                order_id=f"SO2026-{n}",
                owner=owner,
                mode="axb",
                parties={"buyer": f"+1312555{n + 200:04d}", "merchant": f"+1212555{n + 200:04d}"},
            )
        )
        for n in range(count)
    ]


def expiries(app: Flask, ids: list[str]) -> dict[str, dt.datetime]:
    with services_of(app).db.session() as session:
        return {b.id: b.expires_at for b in session.scalars(select(Binding).where(Binding.id.in_(ids)))}


def records(app: Flask, action: str) -> list[AuditRecord]:
    with services_of(app).db.session() as session:
        found = list(session.scalars(select(AuditRecord).where(AuditRecord.action == action)))
        session.expunge_all()
    return found


def review(browser: Console, ids: list[str], action: str, **form: str) -> str:
    data = {"action": action, "reason": REASON, **form}
    response = browser.client.post(
        "/admin/bindings/bulk",
        data={**data, "ids": ids, "csrf_token": browser.csrf()},
        base_url="https://localhost",
        headers={"Referer": "https://localhost/admin/"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def confirm(browser: Console, page: str) -> str:
    """Send the confirmation form as the page has it (hidden fields and all)."""
    form = page[page.index('action="/admin/bindings/bulk/apply"') :]
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form.split("</form>")[0])
    data: dict[str, list[str]] = {}
    for name, value in fields:
        data.setdefault(name, []).append(value.replace("&#43;", "+").replace("&#39;", "'"))
    response = browser.client.post(
        "/admin/bindings/bulk/apply",
        data=data,
        base_url="https://localhost",
        headers={"Referer": "https://localhost/admin/"},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def test_bulk_extend_shows_old_and_new_expiry_then_extends_each_with_its_own_record(app: Flask) -> None:
    views = bind_many(app, 3)
    ids = [v.id for v in views]
    before = expiries(app, ids)
    browser = logged_in(app, "olga", "operator")
    page = review(browser, ids, "extend", hours="48")
    assert expiries(app, ids) == before  # the review changes nothing
    assert page.count("→") == 3 and "Extend 3 binding(s)" in page
    done = confirm(browser, page)
    assert "Extended 3 of 3 binding(s)." in done
    after = expiries(app, ids)
    assert all(after[i] == before[i] + dt.timedelta(hours=48) for i in ids)
    updated = records(app, "binding.updated")
    assert sorted(r.subject for r in updated) == sorted(ids)
    assert {(r.actor, r.reason) for r in updated} == {("admin:olga", REASON)}
    (summary,) = records(app, "admin.bulk.extend")
    assert summary.reason == REASON and '"changed":3' in summary.data


def test_sending_the_confirmation_twice_does_not_extend_twice(app: Flask) -> None:
    ids = [v.id for v in bind_many(app, 2)]
    before = expiries(app, ids)
    browser = logged_in(app, "olga", "operator")
    page = review(browser, ids, "extend", hours="5")
    confirm(browser, page)
    again = confirm(browser, page)
    assert "Extended 0 of 2 binding(s)." in again and "changed since you reviewed it" in again
    assert all(expiries(app, ids)[i] == before[i] + dt.timedelta(hours=5) for i in ids)


def test_bulk_unbind_lists_what_ends_then_ends_each(app: Flask, bind) -> None:
    views = bind_many(app, 2)
    ids = [v.id for v in views]
    browser = logged_in(app, "olga", "operator")
    services_of(app).numbers.bindings.unbind(ids[1], actor="test", reason="ended before the review")
    page = review(browser, ids, "unbind")
    assert "ends now" in page and "unchanged: this binding has already ended" in page
    assert "Unbind 1 binding(s)" in page
    done = confirm(browser, page)
    assert "Unbound 1 of 1 binding(s)." in done
    with services_of(app).db.session() as session:
        assert session.get(Binding, ids[0]).status == "unbound"
    assert [r.subject for r in records(app, "binding.unbound") if r.actor == "admin:olga"] == [ids[0]]


def test_an_extend_past_the_maximum_is_skipped_and_said(app: Flask) -> None:
    ids = [v.id for v in bind_many(app, 1)]
    browser = logged_in(app, "olga", "operator")
    page = review(browser, ids, "extend", hours="2160")
    assert "days from now (the maximum)" in page and "None of the selected bindings can be changed." in page
    assert "/admin/bindings/bulk/apply" not in page


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"action": "extend", "hours": "5", "reason": REASON}, "ids"),  # nothing selected
        ({"ids": "bd_nope", "action": "extend", "hours": "5", "reason": REASON}, "ids"),
        ({"ids": "ID", "action": "shorten", "hours": "5", "reason": REASON}, "action"),
        ({"ids": "ID", "action": "extend", "hours": "-5", "reason": REASON}, "hours"),
        ({"ids": "ID", "action": "extend", "hours": "5", "reason": "ok"}, "reason"),
    ],
)
def test_a_bad_bulk_form_is_a_400_and_changes_nothing(app: Flask, form: dict[str, str], field: str) -> None:
    ids = [v.id for v in bind_many(app, 1)]
    before = expiries(app, ids)
    browser = logged_in(app, "olga", "operator")
    if form.get("ids") == "ID":
        form = {**form, "ids": ids[0]}
    for path in ("/admin/bindings/bulk", "/admin/bindings/bulk/apply"):
        response = browser.post(path, form)
        assert response.status_code == 400, path
        assert f"{field}: " in response.get_data(as_text=True)
    assert expiries(app, ids) == before


def test_more_than_a_page_at_once_is_refused(app: Flask) -> None:
    browser = logged_in(app, "olga", "operator")
    response = browser.client.post(
        "/admin/bindings/bulk",
        data={"ids": [binding_id(n) for n in range(51)], "action": "unbind", "reason": REASON}
        | {"csrf_token": browser.csrf()},
        base_url="https://localhost",
        headers={"Referer": "https://localhost/admin/"},
    )
    assert response.status_code == 400
    assert "select at most 50 bindings at a time" in response.get_data(as_text=True)


@pytest.mark.parametrize("role", ["viewer", "security"])
def test_only_operators_act_in_bulk(app: Flask, role: str) -> None:
    ids = [v.id for v in bind_many(app, 1)]
    browser = logged_in(app, "someone", role)
    form = {"ids": ids[0], "action": "unbind", "reason": REASON}
    assert browser.post("/admin/bindings/bulk/apply", form).status_code == 403
    assert 'name="ids"' not in browser.text("/admin/bindings?q=SO2026")
    with services_of(app).db.session() as session:
        assert session.get(Binding, ids[0]).status == "active"


def test_a_bulk_apply_without_its_csrf_token_fails(app: Flask) -> None:
    ids = [v.id for v in bind_many(app, 1)]
    browser = logged_in(app, "olga", "operator")
    form = {"ids": ids[0], "action": "unbind", "reason": REASON}
    assert browser.post("/admin/bindings/bulk/apply", form, token=False).status_code == 400
    with services_of(app).db.session() as session:
        assert session.get(Binding, ids[0]).status == "active"


def test_the_search_page_offers_live_results_for_selection(app: Flask) -> None:
    ids = [v.id for v in bind_many(app, 2)]
    services_of(app).numbers.bindings.unbind(ids[0], actor="test", reason="ended already here")
    browser = logged_in(app, "olga", "operator")
    page = browser.text("/admin/bindings?q=SO2026")
    assert f'name="ids" value="{ids[1]}"' in page and f'name="ids" value="{ids[0]}"' not in page
    assert 'action="/admin/bindings/bulk"' in page
