"""/v1/bindings: create, read, list, change, unbind; errors name fields and never echo numbers."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from maskline import services_of
from maskline.clock import FixedClock
from maskline.numbers.models import Binding
from tests.integration.api_helpers import ApiClient
from tests.integration.conftest import BUYER, COURIER, MERCHANT, STRANGER, X1, X2, without_party_digits

AXB = {"order_id": "o-1", "mode": "axb", "parties": {"buyer": BUYER, "merchant": MERCHANT}}
AXE = {"order_id": "o-2", "mode": "axe", "parties": {"buyer": BUYER}, "allow": [COURIER]}


def create(api: ApiClient, body: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    reply = api.post("/v1/bindings", {**(body or AXB), **fields})
    assert reply.status == 201, reply.text
    return dict(reply.body)


def test_create_answers_201_with_what_each_role_dials_and_no_number(api: ApiClient) -> None:
    reply = api.post("/v1/bindings", AXB)
    assert reply.status == 201
    body = reply.body
    assert body["relay_number"] in (X1, X2) and body["mode"] == "axb" and body["order_id"] == "o-1"
    assert body["dial"] == {"buyer": body["relay_number"], "merchant": body["relay_number"]}
    assert reply.headers["Location"] == f"/v1/bindings/{body['id']}"
    assert without_party_digits(reply.text)


def test_an_axe_binding_tells_callers_the_extension(api: ApiClient) -> None:
    body = create(api, AXE)
    assert body["extension"] and body["dial"]["caller"] == f"{body['relay_number']},{body['extension']}"


def test_every_bad_field_is_named_at_once_and_no_number_is_echoed(api: ApiClient) -> None:
    reply = api.post(
        "/v1/bindings",
        {
            "order_id": "",
            "mode": "abc",
            "parties": {"buyer": "+1 415 555 01", "Merchant!": MERCHANT},
            "ttl_seconds": 5,
            "fallback": "sms",
            "colour": "blue",
        },
    )
    assert reply.status == 422
    fields = {f["field"] for f in reply.body["error"]["fields"]}
    assert {"order_id", "mode", "parties.buyer", "ttl_seconds", "fallback", "colour"} <= fields
    assert any(f.startswith("parties.Merchant") for f in fields)
    assert "415 555 01" not in reply.text and without_party_digits(reply.text)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"mode": "axb", "parties": {"buyer": BUYER}}, "parties"),
        ({"parties": {f"r{i}": f"+1415555{i:04d}" for i in range(11)}}, "parties"),
        ({"ttl_seconds": 10**9}, "ttl_seconds"),
        ({"ttl_seconds": "3600"}, "ttl_seconds"),
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"record": "yes"}, "record"),
        ({"sms_policy": {"media": "maybe"}}, "sms_policy.media"),
        ({"parties": {"buyer": BUYER, "merchant": "+19005550100"}}, "parties.merchant"),
        ({"parties": {"buyer": BUYER, "merchant": X1}}, "parties.merchant"),
        ({"parties": {"buyer": BUYER, "merchant": BUYER}}, "parties.merchant"),
    ],
)
def test_invalid_fields_get_422_naming_the_field(api: ApiClient, change: dict[str, Any], field: str) -> None:
    reply = api.post("/v1/bindings", {**AXB, **change})
    assert reply.status == 422, reply.text
    assert field in {f["field"] for f in reply.body["error"]["fields"]}
    assert without_party_digits(reply.text)


@pytest.mark.parametrize(
    ("raw", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b'{"order_id": "o"}', "text/plain", 415),
        (b'{"order_id": "' + b"x" * 70_000 + b'"}', "application/json", 413),
    ],
)
def test_malformed_or_oversized_bodies(api: ApiClient, raw: bytes, content_type: str, status: int) -> None:
    reply = api.post("/v1/bindings", raw=raw, headers={"Content-Type": content_type})
    assert reply.status == status and reply.body["error"]["code"]


def test_a_failed_create_leaves_nothing_behind(api: ApiClient, app: Flask, redis_client: Any) -> None:
    services = services_of(app)
    before = set(redis_client.scan_iter("ml:*"))
    reply = api.post("/v1/bindings", {**AXB, "parties": {"buyer": BUYER, "merchant": "+1 202"}})
    assert reply.status == 422
    with services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Binding)) == 0
    assert set(redis_client.scan_iter("ml:*")) == before


def test_an_exhausted_pool_is_409_with_the_allocators_reason(api: ApiClient, app: Flask) -> None:
    create(api)
    create(api, order_id="o-9", parties={"buyer": BUYER, "merchant": COURIER})
    reply = api.post(
        "/v1/bindings", {**AXB, "order_id": "o-3", "parties": {"buyer": BUYER, "merchant": STRANGER}}
    )
    assert reply.status == 409 and "buyer" in reply.body["error"]["message"]
    assert reply.body["error"]["code"] == "pool_exhausted"
    with services_of(app).db.session() as session:
        assert session.scalar(select(func.count()).select_from(Binding)) == 2


def test_get_and_list_by_order_and_status_with_pages(api: ApiClient, clock: FixedClock) -> None:
    made = []
    for i, merchant in enumerate((MERCHANT, COURIER)):
        made.append(create(api, order_id=f"o-{i}", parties={"buyer": BUYER, "merchant": merchant}))
        clock.advance(seconds=1)  # newest first is by creation time
    assert api.get(f"/v1/bindings/{made[0]['id']}").body["id"] == made[0]["id"]
    first = api.get("/v1/bindings?limit=1")
    assert first.status == 200 and [b["id"] for b in first.body["data"]] == [made[1]["id"]]
    second = api.get(f"/v1/bindings?limit=1&cursor={first.body['next_cursor']}")
    assert [b["id"] for b in second.body["data"]] == [made[0]["id"]] and second.body["next_cursor"] is None
    assert [b["id"] for b in api.get("/v1/bindings?order_id=o-1").body["data"]] == [made[1]["id"]]
    api.delete(f"/v1/bindings/{made[0]['id']}")
    assert [b["id"] for b in api.get("/v1/bindings?status=active").body["data"]] == [made[1]["id"]]
    assert [b["id"] for b in api.get("/v1/bindings?status=unbound").body["data"]] == [made[0]["id"]]


@pytest.mark.parametrize("query", ["status=lost", "limit=0", "limit=x", "cursor=%%%"])
def test_bad_list_queries_get_422(api: ApiClient, query: str) -> None:
    assert api.get(f"/v1/bindings?{query}").status == 422


def test_another_owners_binding_is_404_everywhere(api: ApiClient, other_api: ApiClient) -> None:
    binding = create(api)
    path = f"/v1/bindings/{binding['id']}"
    assert other_api.get(path).status == 404
    assert other_api.patch(path, {"ttl_seconds": 3600}).status == 404
    assert other_api.delete(path).status == 404
    assert other_api.get(path + "/interactions").status == 404
    assert other_api.get("/v1/bindings").body["data"] == []
    assert api.get(path).body["status"] == "active"  # untouched


def test_patch_sets_the_expiry_from_now(api: ApiClient, clock: FixedClock) -> None:
    binding = create(api, ttl_seconds=3600)
    reply = api.patch(f"/v1/bindings/{binding['id']}", {"ttl_seconds": 7200})
    expected = (clock() + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert reply.status == 200 and reply.body["expires_at"] == expected


def test_delivered_ends_after_the_grace_and_cannot_be_extended(api: ApiClient, clock: FixedClock) -> None:
    binding = create(api, ttl_seconds=30 * 86400)
    reply = api.patch(f"/v1/bindings/{binding['id']}", {"status": "delivered"})
    grace_end = (clock() + dt.timedelta(hours=72)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert reply.status == 200 and reply.body["expires_at"] == grace_end and reply.body["delivered_at"]
    again = api.patch(f"/v1/bindings/{binding['id']}", {"ttl_seconds": 86400})
    assert again.status == 422 and again.body["error"]["fields"][0]["field"] == "ttl_seconds"


def test_patch_replaces_the_allow_list(api: ApiClient, app: Flask) -> None:
    binding = create(api, AXE)
    router = services_of(app).numbers.router
    relay, ext = binding["relay_number"], binding["extension"]
    assert api.patch(f"/v1/bindings/{binding['id']}", {"allow": [STRANGER]}).status == 200
    assert router.resolve(relay, STRANGER, ext).action == "connect"
    assert router.resolve(relay, COURIER, ext).action == "reject"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"allow": [COURIER]}, "allow"),
        ({"status": "lost"}, "status"),
        ({"ttl_seconds": 1}, "ttl_seconds"),
    ],
)
def test_bad_patches_get_422(api: ApiClient, body: dict[str, Any], field: str) -> None:
    binding = create(api)  # axb: no allow-list to change
    reply = api.patch(f"/v1/bindings/{binding['id']}", body)
    assert reply.status == 422 and field in {f["field"] for f in reply.body["error"]["fields"]}


def test_delete_unbinds_and_the_number_goes_dead(api: ApiClient, app: Flask) -> None:
    binding = create(api)
    reply = api.delete(f"/v1/bindings/{binding['id']}")
    assert reply.status == 200 and reply.body["status"] == "unbound"
    assert services_of(app).numbers.router.resolve(binding["relay_number"], MERCHANT).action == "reject"
    assert api.delete(f"/v1/bindings/{binding['id']}").body["status"] == "unbound"  # idempotent
    ended = api.patch(f"/v1/bindings/{binding['id']}", {"ttl_seconds": 3600})
    assert (ended.status, ended.body["error"]["code"]) == (409, "binding_ended")


def test_unknown_binding_is_404(api: ApiClient) -> None:
    assert api.get("/v1/bindings/bd_nosuchbinding").status == 404


def test_interactions_list_calls_by_role(api: ApiClient, twilio: Any) -> None:
    binding = create(api)
    call_sid = "CA" + "1" * 32
    twilio.call(MERCHANT, binding["relay_number"], call_sid)
    twilio.call_status(call_sid, "completed", 31)
    reply = api.get(f"/v1/bindings/{binding['id']}/interactions")
    assert reply.status == 200
    assert [(i["from_role"], i["to_role"], i["status"], i["duration"]) for i in reply.body["data"]] == [
        ("merchant", "buyer", "completed", 31)
    ]
    assert without_party_digits(reply.text)


def test_pool_lists_numbers_and_load(api: ApiClient) -> None:
    create(api)
    reply = api.get("/v1/pool")
    assert reply.status == 200
    loads = {n["number"]: n for n in reply.body["data"]}
    assert set(loads) == {X1, X2} and sum(n["live_bindings"] for n in loads.values()) == 1


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/bindings/bd_%00", None),
        ("DELETE", "/v1/bindings/bd_%00abc", None),
        ("GET", "/v1/bindings?order_id=o%00", None),
        ("POST", "/v1/bindings", {**AXB, "order_id": "o\x00-1"}),
    ],
)
def test_nul_bytes_are_refused_not_a_server_error(
    api: ApiClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    reply = api.call(method, path, body)
    assert reply.status in (404, 422), reply.text
