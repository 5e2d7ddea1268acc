"""Who changed what: API keys' changes in the audit chain, with no party number in it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, text

from maskline import services_of
from maskline.audit.listeners import BindingAuditor
from maskline.clock import FixedClock
from maskline.numbers.interfaces import BindRequest
from maskline.wiring import Services
from tests.conftest import add_relay_numbers
from tests.integration.api_helpers import ApiClient, make_key
from tests.integration.conftest import BUYER, COURIER, MERCHANT, PARTY_NUMBERS, AppMaker
from tests.twilio_server import ACCOUNT_SID, FakeTwilio, twilio_serving

AXB = {"order_id": "o-1", "mode": "axb", "parties": {"buyer": BUYER, "merchant": MERCHANT}}
AXE = {"order_id": "o-2", "mode": "axe", "parties": {"buyer": BUYER}, "allow": [COURIER]}


def forms(e164: str) -> list[str]:
    """A US number as people and programs write it."""
    national = e164[2:]
    area, exchange, line = national[:3], national[3:6], national[6:]
    return [
        e164,
        e164[1:],
        national,
        f"({area}) {exchange}-{line}",
        f"{area}-{exchange}-{line}",
        f"{area} {exchange} {line}",
        f"{area}.{exchange}.{line}",
    ]


def dump(services: Services) -> str:
    """Every column of every audit record, as text."""
    with services.db.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM audit_log ORDER BY seq")).all()
    return "\n".join(" | ".join(str(value) for value in row) for row in rows)


def records(services: Services) -> list[dict[str, Any]]:
    with services.db.engine.connect() as conn:
        rows = conn.execute(text("SELECT actor, action, subject, reason, data FROM audit_log ORDER BY seq"))
        return [{**row._asdict(), "data": json.loads(row.data)} for row in rows]


def key_id(api: ApiClient) -> str:
    assert api.key is not None
    return api.key.split("_")[1]


def create(api: ApiClient, body: dict[str, Any]) -> dict[str, Any]:
    reply = api.post("/v1/bindings", body)
    assert reply.status == 201, reply.text
    return dict(reply.body)


def test_bind_update_and_unbind_through_the_api_are_recorded_as_the_key(app: Flask, api: ApiClient) -> None:
    services = services_of(app)
    actor = f"apikey:{key_id(api)}"

    binding = create(api, AXB)
    shorten = {"ttl_seconds": 7200, "allow_shorten": True}
    assert api.patch(f"/v1/bindings/{binding['id']}", shorten).status == 200
    assert api.delete(f"/v1/bindings/{binding['id']}").status == 200

    rows = records(services)
    assert [(r["actor"], r["action"], r["subject"]) for r in rows] == [
        (actor, "binding.created", binding["id"]),
        (actor, "binding.updated", binding["id"]),
        (actor, "binding.unbound", binding["id"]),
    ]
    created, updated, unbound = (r["data"] for r in rows)
    assert {k: created[k] for k in ("owner", "order_id", "mode", "relay_number", "expires_at")} == {
        "owner": "shop-a",
        "order_id": "o-1",
        "mode": "axb",
        "relay_number": binding["relay_number"],
        "expires_at": binding["expires_at"],
    }
    assert created["roles"] == ["buyer", "merchant"]
    expected = (services.clock() + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert updated["changes"] == {"expires_at": expected, "previous_expires_at": binding["expires_at"]}
    assert unbound["ended_at"] == services.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
    with services.db.session() as session:
        assert services.audit.verify(session).summary() == "OK 3 records"


def test_each_key_is_named_as_the_actor_of_its_own_changes(
    app: Flask, api: ApiClient, other_api: ApiClient
) -> None:
    create(api, AXB)
    create(other_api, {**AXB, "parties": {"buyer": "+14155550177", "merchant": "+12125550188"}})

    actors = [r["actor"] for r in records(services_of(app))]
    assert actors == [f"apikey:{key_id(api)}", f"apikey:{key_id(other_api)}"]
    assert key_id(api) != key_id(other_api)


def test_refused_requests_leave_no_record(app: Flask, api: ApiClient, other_api: ApiClient) -> None:
    binding = create(api, AXB)
    before = len(records(services_of(app)))

    assert api.patch(f"/v1/bindings/{binding['id']}", {"ttl_seconds": -5}).status == 422
    assert other_api.delete(f"/v1/bindings/{binding['id']}").status == 404
    assert api.post("/v1/bindings", {**AXB, "mode": "axc"}).status == 422

    assert len(records(services_of(app))) == before


def test_no_party_number_nor_vault_token_is_in_the_audit_table(app: Flask, api: ApiClient) -> None:
    services = services_of(app)
    axb = create(api, AXB)
    axe = create(api, AXE)
    path = f"/v1/bindings/{axe['id']}"
    assert api.patch(path, {"allow": [COURIER, "+13125550199"], "status": "delivered"}).status == 200
    link = api.call("PUT", f"{path}/waybills/SF1234567", {"carrier": "fastship"})
    assert link.status == 201
    assert api.delete(f"/v1/bindings/{axb['id']}").status == 200
    with services.db.session() as session:
        tokens = [services.vault.lookup(session, number) for number in (BUYER, MERCHANT, COURIER)]

    table = dump(services)
    assert [r["action"] for r in records(services)] == [
        "binding.created",
        "binding.created",
        "binding.updated",
        "waybill.linked",
        "binding.unbound",
    ]
    leaks = [form for number in PARTY_NUMBERS for form in forms(number) if form in table]
    assert leaks == []
    assert all(token and token not in table for token in tokens)
    updated = records(services)[2]["data"]["changes"]
    assert updated["allow"] == 2 and updated["delivered"] is True


def test_a_waybill_link_is_recorded_once_and_a_relink_names_the_old_binding(
    app: Flask, api: ApiClient
) -> None:
    first = create(api, AXE)
    second = create(api, {**AXE, "order_id": "o-3", "parties": {"buyer": "+14155550177"}})
    for binding in (first, first, second):  # the repeat changes nothing
        reply = api.call("PUT", f"/v1/bindings/{binding['id']}/waybills/SF1", {"carrier": "fastship"})
        assert reply.status in (200, 201)

    links = [r for r in records(services_of(app)) if r["action"] == "waybill.linked"]
    assert [(r["subject"], r["data"]["previous_binding_id"]) for r in links] == [
        (first["id"], None),
        (second["id"], first["id"]),
    ]
    assert links[0]["actor"] == f"apikey:{key_id(api)}"
    assert links[0]["data"]["carrier"] == "fastship"


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with twilio_serving() as fake:
        yield fake


def test_a_click_to_call_is_recorded_by_role_before_twilio_is_asked(
    make_app: AppMaker, fake_twilio: FakeTwilio
) -> None:
    app = make_app(
        public_url="https://relay.example.com", twilio_account_sid=ACCOUNT_SID, twilio_api_url=fake_twilio.url
    )
    api = ApiClient(app, make_key(app, "shop-a"))
    binding = create(api, AXB)

    reply = api.post(f"/v1/bindings/{binding['id']}/calls", {"from_role": "merchant"})

    assert reply.status == 201, reply.text
    call = records(services_of(app))[-1]
    assert (call["actor"], call["action"], call["subject"]) == (
        f"apikey:{key_id(api)}",
        "call.requested",
        binding["id"],
    )
    assert call["data"] == {
        "owner": "shop-a",
        "from_role": "merchant",
        "to_role": "buyer",
        "relay_number": binding["relay_number"],
    }
    assert not any(form in dump(services_of(app)) for number in PARTY_NUMBERS for form in forms(number))


def test_changes_without_an_actor_are_not_recorded(app: Flask, api: ApiClient, clock: FixedClock) -> None:
    """maskline's own doing (a bind with no actor, the sweeper's expiry) is not an audit record;
    the expiry is in the record of the bind that set it."""
    services = services_of(app)
    numbers = services.numbers
    quiet = numbers.bindings.bind(
        BindRequest(
            order_id="o-9",
            mode="axb",
            parties={"buyer": "+14155550177", "merchant": MERCHANT},
            ttl=dt.timedelta(hours=1),
        )
    )
    audited = create(api, {**AXB, "ttl_seconds": 3600})
    clock.advance(hours=2)

    report = numbers.sweeper.run_once(clock(), orphan_grace=0)

    assert report.expired == 2
    assert numbers.bindings.get(quiet.id).status == "expired"
    assert [(r["action"], r["subject"]) for r in records(services)] == [("binding.created", audited["id"])]
    assert records(services)[0]["data"]["expires_at"] == audited["expires_at"]


def test_an_unbind_after_expiry_by_a_key_is_recorded_as_expired(
    app: Flask, api: ApiClient, clock: FixedClock
) -> None:
    binding = create(api, {**AXB, "ttl_seconds": 60})
    clock.advance(minutes=5)

    assert api.delete(f"/v1/bindings/{binding['id']}").status == 200

    assert [r["action"] for r in records(services_of(app))] == ["binding.created", "binding.expired"]


def test_the_auditor_is_the_last_listener(app: Flask) -> None:
    listeners = services_of(app).numbers.bindings._listeners

    owner = getattr(listeners[-1], "__self__", None)
    assert isinstance(owner, BindingAuditor)


def test_an_audited_bind_costs_three_statements_more(services: Services, numbers: Any) -> None:
    """The ORM path (SQLite): the chain's head row taken, its hash set, the new
    record. On PostgreSQL the record is part of the bind's one write: no
    statement more (see test_bind_cost.py for that write)."""
    add_relay_numbers(services, "+14155550100", "+14155550101")
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if not statement.startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE")):
            seen.append(statement)

    writes: list[str] = []
    bind_sql = numbers.bind_sql
    if bind_sql is not None:
        real = bind_sql.write

        def spy(statement: str, params: Any) -> Any:  # observed, still run
            writes.append(statement)
            return real(statement, params)

        bind_sql.write = spy

    numbers.bindings.bind(
        BindRequest(order_id="o-0", mode="axb", parties={"buyer": "+14155550170", "merchant": MERCHANT})
    )
    event.listen(services.db.engine, "before_cursor_execute", count)
    try:
        quiet = BindRequest(order_id="o-1", mode="axb", parties={"buyer": BUYER, "merchant": "+12125550180"})
        numbers.bindings.bind(quiet)
        plain = len(seen)
        seen.clear()
        audited = BindRequest(
            order_id="o-2",
            mode="axb",
            parties={"buyer": "+14155550171", "merchant": "+12125550181"},
            actor="cli:someone",
        )
        numbers.bindings.bind(audited)
    finally:
        event.remove(services.db.engine, "before_cursor_execute", count)
        if bind_sql is not None:
            del bind_sql.write

    if bind_sql is not None:
        assert (plain, len(seen), len(writes)) == (0, 0, 3)
        assert "INSERT INTO audit_log" in writes[-1]
        with services.db.session() as session:
            result = services.audit.verify(session)
        assert (result.ok, result.records) == (True, 1), result.summary()
        return
    assert len(seen) == plain + 3, seen
    assert "audit_log" in seen[-1]
