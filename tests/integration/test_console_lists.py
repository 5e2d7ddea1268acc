"""The console's lists: keyset pages with totals, filters, prefix search, CSV exports."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable

import pytest
from flask import Flask
from sqlalchemy import select

from maskline import services_of
from maskline.admin import listing, paging
from maskline.audit.interfaces import AuditEntry
from maskline.audit.models import Alert, AuditRecord
from maskline.numbers.models import Binding
from maskline.webhooks.models import Interaction
from tests.integration.admin_helpers import Console, make_admin
from tests.integration.conftest import BUYER, MERCHANT, X1, X2, Twilio, without_party_digits

_ROW_ID = re.compile(r'href="/admin/bindings/(bd_[a-z2-7]{16})"')


def logged_in(app: Flask, name: str, role: str) -> Console:
    make_admin(app, name, role)
    browser = Console(app)
    assert browser.login(name).status_code == 303
    if role == "security":
        assert browser.enroll(services_of(app).clock()).status_code == 303
    return browser


def binding_id(n: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz234567"
    return "bd_" + "".join(letters[(n >> (5 * i)) % 32] for i in range(16))


def add_bindings(
    app: Flask, count: int, *, order: Callable[[int], str] = lambda n: f"SO2026{n:04d}"
) -> set[str]:
    """``count`` bindings on X1, in groups of seven with the same creation time (ties)."""
    services = services_of(app)
    now = services.clock()
    ids = set()
    with services.db.session() as session:
        for n in range(count):
            created = now - dt.timedelta(minutes=n // 7)
            session.add(
                Binding(
                    id=binding_id(n),
                    owner="shop-a",
                    order_id=order(n),
                    mode="axb",
                    relay_number=X1,
                    extension=None,
                    allow_any=False,
                    status="active",
                    expires_at=now + dt.timedelta(days=1),
                    created_at=created,
                    version=1,
                )
            )
            ids.add(binding_id(n))
    return ids


def walk(browser: Console, first: str) -> tuple[list[str], list[str]]:
    """Every binding id, following Older links from ``first``; and the pages' totals."""
    seen: list[str] = []
    totals: list[str] = []
    url: str | None = first
    while url:
        page = browser.text(url)
        seen += _ROW_ID.findall(page)
        totals += re.findall(r'class="total">([^<]+)<', page)
        older = re.search(r'rel="next" href="([^"]+)"', page)
        url = older.group(1).replace("&amp;", "&") if older else None
    return seen, totals


# -- paging ----------------------------------------------------------------------


def test_a_relay_number_with_132_bindings_pages_through_all_of_them_once(app: Flask) -> None:
    ids = add_bindings(app, 132)
    browser = logged_in(app, "vera", "viewer")
    seen, totals = walk(browser, "/admin/bindings?q=%2B14155550100")
    assert len(seen) == 132 and set(seen) == ids  # none skipped, none twice, despite ties
    assert totals == ["50 of 132", "50 of 132", "32 of 132"]
    assert "132 binding(s) by relay number" in browser.text("/admin/bindings?q=%2B14155550100")


def test_newer_goes_back_to_the_same_rows(app: Flask) -> None:
    add_bindings(app, 120)
    browser = logged_in(app, "vera", "viewer")
    first = browser.text("/admin/bindings?q=SO2026")
    second_url = re.search(r'rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = browser.text(second_url)
    third_url = re.search(r'rel="next" href="([^"]+)"', second).group(1).replace("&amp;", "&")
    third = browser.text(third_url)
    back_url = re.search(r'rel="prev" href="([^"]+)"', third).group(1).replace("&amp;", "&")
    assert _ROW_ID.findall(browser.text(back_url)) == _ROW_ID.findall(second)
    back_again = re.search(r'rel="prev" href="([^"]+)"', second).group(1).replace("&amp;", "&")
    assert _ROW_ID.findall(browser.text(back_again)) == _ROW_ID.findall(first)
    assert 'rel="prev"' not in first and 'rel="first"' in second


def test_keyset_pages_agree_with_one_sorted_read(app: Flask) -> None:
    add_bindings(app, 61)
    services = services_of(app)
    with services.db.session() as session:
        everything = [
            b.id
            for b in session.scalars(select(Binding).order_by(Binding.created_at.desc(), Binding.id.desc()))
        ]
        query = select(Binding)
        pages, cursor = [], paging.Cursor()
        while True:
            page = paging.page(
                session, query, listing.BINDINGS, cursor=cursor, convert=lambda b: b.id, size=7
            )
            pages.append(page)
            if not page.after:
                break
            cursor = paging.Cursor(after=page.after)
    assert [i for p in pages for i in p.rows] == everything
    assert {p.total for p in pages} == {61} and len(pages) == 9


def test_an_export_reads_every_row_in_batches(app: Flask) -> None:
    add_bindings(app, 23)
    services = services_of(app)
    rows = list(paging.every(services.db.session, select(Binding), listing.BINDINGS, batch=5))
    assert len(rows) == 23 and len({r.id for r in rows}) == 23


def test_an_order_id_or_tracking_number_is_found_by_its_beginning(app: Flask) -> None:
    add_bindings(app, 3, order=lambda n: f"SO2026-{n}")
    browser = logged_in(app, "vera", "viewer")
    assert len(_ROW_ID.findall(browser.text("/admin/bindings?q=SO2026"))) == 3
    # LIKE's wildcards are taken literally
    assert "0 binding(s)" in browser.text("/admin/bindings?q=SO%25")
    assert "0 binding(s)" in browser.text("/admin/bindings?q=S_2026")


def test_a_national_relay_number_finds_its_bindings(app: Flask) -> None:
    add_bindings(app, 2)
    browser = logged_in(app, "vera", "viewer")
    page = browser.text("/admin/bindings?q=(415)%20555-0100")
    assert "2 binding(s) by relay number" in page


def test_a_forged_page_cursor_is_a_clear_400(app: Flask) -> None:
    browser = logged_in(app, "vera", "viewer")
    for url in ("/admin/audit?after=xyz", "/admin/bindings?q=SO&before=AAAA", "/admin/pool?after=%00"):
        response = browser.get(url)
        assert response.status_code == 400, url
        assert "is not a page of this list" in response.get_data(as_text=True)


# -- filters -----------------------------------------------------------------------


def test_the_audit_log_filters_by_actor_action_and_time(app: Flask) -> None:
    services = services_of(app)
    clock = services.clock
    with services.db.session() as session:
        services.audit.append(session, AuditEntry(actor="admin:olga", action="binding.unbound", subject="s1"))
        services.audit.append(session, AuditEntry(actor="key:shop-a", action="binding.created", subject="s2"))
    clock.advance(days=2)
    with services.db.session() as session:
        services.audit.append(session, AuditEntry(actor="admin:olga", action="binding.updated", subject="s3"))
    browser = logged_in(app, "vera", "viewer")

    def subjects(query: str) -> list[str]:
        page = browser.text("/admin/audit?" + query)
        return [s for s in ("s1", "s2", "s3") if f"<td>{s}</td>" in page]

    assert subjects("actor=admin:olga") == ["s1", "s3"]
    assert subjects("action=binding.") == ["s1", "s2", "s3"]
    assert subjects("action=binding.created") == ["s2"]
    day = (clock() - dt.timedelta(days=2)).strftime("%Y-%m-%d")
    assert subjects(f"until={day}") == ["s1", "s2"]
    assert subjects(f"since={clock().strftime('%Y-%m-%d')}&actor=admin:") == ["s3"]


def test_interactions_filter_by_binding_relay_outcome_and_time_with_no_cap(app: Flask) -> None:
    ids = sorted(add_bindings(app, 2))
    services = services_of(app)
    now = services.clock()
    with services.db.session() as session:
        for n in range(130):
            session.add(
                Interaction(
                    sid=f"CA{n:032x}",
                    binding_id=ids[n % 2],
                    owner="shop-a",
                    type="call",
                    from_role="buyer",
                    to_role="merchant",
                    status="completed" if n % 3 else "no-answer",
                    duration=n,
                    started_at=now - dt.timedelta(hours=n),
                )
            )
    browser = logged_in(app, "vera", "viewer")
    assert "50 of 130" in browser.text("/admin/interactions")
    assert "50 of 65" in browser.text(f"/admin/interactions?binding={ids[0]}")
    assert "50 of 130" in browser.text("/admin/interactions?relay=415-555-0100")
    assert "0 of 0" in browser.text("/admin/interactions?relay=415-555-0101")  # X2: no bindings
    assert "44 of 44" in browser.text("/admin/interactions?outcome=no-answer")
    since = (now - dt.timedelta(hours=9, minutes=30)).strftime("%Y-%m-%dT%H:%M")
    assert "10 of 10" in browser.text(f"/admin/interactions?since={since}")


def test_alerts_filter_by_kind_and_state(app: Flask) -> None:
    services = services_of(app)
    now = services.clock()
    with services.db.session() as session:
        for n, kind in enumerate(["binding_burst", "binding_burst", "failed_logins"]):
            session.add(
                Alert(
                    alert_id=f"al_{n:024x}",
                    kind=kind,
                    subject=f"key:shop-{n}",
                    window_start=now,
                    count=5,
                    threshold=3,
                    detail=json.dumps({"window_seconds": 60}),
                    raised_at=now,
                    acknowledged_by="admin:olga" if n == 0 else None,
                    acknowledged_at=now if n == 0 else None,
                )
            )
    browser = logged_in(app, "vera", "viewer")
    assert "3 of 3" in browser.text("/admin/alerts")
    assert "2 of 2" in browser.text("/admin/alerts?kind=binding_burst")
    assert "1 of 1" in browser.text("/admin/alerts?kind=binding_burst&state=open")
    assert "1 of 1" in browser.text("/admin/alerts?state=acknowledged")
    assert "2 of 2" in browser.text("/admin/alerts?open=1")


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/admin/audit?since=last-week", "since"),
        ("/admin/audit?since=2026-12-09&until=2026-12-01", "until"),
        ("/admin/interactions?binding=bd_nope", "binding"),
        ("/admin/interactions?relay=%2B12125550143", "relay"),  # a party's number: not of the pool
        ("/admin/alerts?state=closed", "state"),
        ("/admin/pool?status=free", "status"),
        ("/admin/audit.csv?action=DROP%20TABLE", "action"),
    ],
)
def test_a_bad_filter_is_a_400_naming_the_field_never_a_500(app: Flask, url: str, field: str) -> None:
    browser = logged_in(app, "olga", "operator")
    response = browser.get(url)
    assert response.status_code == 400
    assert f"{field}: " in response.get_data(as_text=True)


def test_the_pool_lists_its_numbers_with_live_bindings(app: Flask) -> None:
    add_bindings(app, 4)
    browser = logged_in(app, "vera", "viewer")
    page = browser.text("/admin/pool")
    assert "2 of 2" in page and re.search(r"\+14155550100</a></td>.*<td>4</td></tr>", page)
    assert "0 of 0" in browser.text("/admin/pool?status=retired")


# -- exports -----------------------------------------------------------------------


def test_an_export_streams_the_filtered_list_and_is_on_the_record_with_its_filter(app: Flask) -> None:
    add_bindings(app, 60)
    browser = logged_in(app, "olga", "operator")
    response = browser.get("/admin/bindings.csv?q=SO20260")
    assert response.status_code == 200 and response.is_streamed
    assert 'filename="maskline-bindings.csv"' in response.headers["Content-Disposition"]
    lines = response.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[0].startswith("Binding,Order,Owner,Mode,Relay number")
    assert len(lines) == 1 + 60  # all of them, not one page
    with services_of(app).db.session() as session:
        record = session.scalars(select(AuditRecord).where(AuditRecord.action == "admin.export")).one()
    assert (record.actor, record.subject) == ("admin:olga", "bindings")
    assert json.loads(record.data)["filter"] == {"q": "SO20260", "matched_by": "order id"}


def test_the_audit_export_holds_what_its_filter_selects(app: Flask) -> None:
    services = services_of(app)
    with services.db.session() as session:
        services.audit.append(session, AuditEntry(actor="admin:olga", action="binding.unbound", subject="s1"))
        services.audit.append(session, AuditEntry(actor="key:shop-a", action="binding.created", subject="s2"))
    browser = logged_in(app, "sec", "security")
    text = browser.get("/admin/audit.csv?actor=key:").get_data(as_text=True)
    assert ",s2," in text and ",s1," not in text
    with services.db.session() as session:
        data = session.scalars(select(AuditRecord.data).where(AuditRecord.action == "admin.export")).one()
    assert json.loads(data)["filter"] == {"actor": "key:"}


def test_a_party_number_typed_into_the_search_is_not_recorded_with_the_export(app: Flask) -> None:
    browser = logged_in(app, "olga", "operator")
    assert browser.get("/admin/bindings.csv?q=%2B12125550143").status_code == 200
    with services_of(app).db.session() as session:
        data = session.scalars(select(AuditRecord.data).where(AuditRecord.action == "admin.export")).one()
    assert without_party_digits(data) and "phone removed" in data


def test_a_viewer_may_read_but_not_export(app: Flask) -> None:
    browser = logged_in(app, "vera", "viewer")
    assert 'id="export"' not in browser.text("/admin/audit")
    for url in ("/admin/audit.csv", "/admin/interactions.csv", "/admin/bindings.csv?q=x", "/admin/pool.csv"):
        assert browser.get(url).status_code == 403, url


def test_no_export_holds_a_party_number(app: Flask, bind, twilio: Twilio) -> None:
    """Real traffic: calls, texts, an unbind with a reason; then dump every export."""
    view = bind(order_id="SO2026-77")
    twilio.call(BUYER, view.relay_number, call_sid="CA" + "1" * 32)
    twilio.call_status("CA" + "1" * 32, "completed", 30)  # the interaction is stored now
    twilio.sms(MERCHANT, view.relay_number, f"call me on {MERCHANT}")
    twilio.call("+16175550165", view.relay_number)  # a stranger: refused, maybe an alert
    operator = logged_in(app, "olga", "operator")
    operator.post(f"/admin/bindings/{view.id}/unbind", {"reason": "order cancelled by the buyer"})
    security = logged_in(app, "sec", "security")
    dumps = [
        operator.get(url).get_data(as_text=True)
        for url in (
            "/admin/bindings.csv?q=SO2026",
            f"/admin/bindings.csv?q={view.relay_number.replace('+', '%2B')}",
            "/admin/interactions.csv",
            "/admin/audit.csv",
            "/admin/alerts.csv",
            "/admin/pool.csv",
        )
    ]
    dumps.append(security.get("/admin/reveals.csv").get_data(as_text=True))
    assert view.id in dumps[0] and view.id in dumps[1] and view.id in dumps[2]
    assert X1 in dumps[5] and X2 in dumps[5]
    for dump in dumps:
        assert without_party_digits(dump), dump


def test_a_binding_page_links_to_its_whole_trail_and_all_its_interactions(app: Flask, bind) -> None:
    view = bind()
    other = bind("axe", order_id="o-2")
    operator = logged_in(app, "olga", "operator")
    for n in range(3):
        operator.post(
            f"/admin/bindings/{view.id}/extend", {"hours": str(5 + n), "reason": "waiting for pickup"}
        )
    operator.post(f"/admin/bindings/{other.id}/unbind", {"reason": "order cancelled"})
    page = operator.text(f"/admin/bindings/{view.id}")
    assert f'href="/admin/audit?subject={view.id}"' in page
    assert f'href="/admin/interactions?binding={view.id}"' in page
    trail = operator.text(f"/admin/audit?subject={view.id}")
    assert (
        trail.count(f"<td>{view.id}</td>") + trail.count(f">{view.id}</a></td>") >= 4
    )  # created + 3 extends
    assert other.id not in trail.split('id="audit"')[1]
    assert operator.get("/admin/audit?subject=%2B14155550132").status_code == 400  # ids only
