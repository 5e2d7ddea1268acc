"""Waybills: the order system links a tracking number; only the named carrier sees the contact."""

from __future__ import annotations

from typing import Any

from flask import Flask

from tests.integration.api_helpers import ApiClient, make_key
from tests.integration.conftest import BUYER, COURIER, MERCHANT, without_party_digits

AXE = {"order_id": "o-1", "mode": "axe", "parties": {"buyer": BUYER}, "allow": [COURIER]}


def axe_binding(api: ApiClient, **fields: Any) -> dict[str, Any]:
    reply = api.post("/v1/bindings", {**AXE, **fields})
    assert reply.status == 201, reply.text
    return dict(reply.body)


def courier(app: Flask, carrier: str = "fastship") -> ApiClient:
    return ApiClient(app, make_key(app, carrier, ["waybills:read"]))


def test_the_named_carrier_gets_relay_and_extension_only(app: Flask, api: ApiClient) -> None:
    binding = axe_binding(api)
    link = api.call("PUT", f"/v1/bindings/{binding['id']}/waybills/SF1234567", {"carrier": "fastship"})
    assert link.status == 201 and link.body == {
        "carrier": "fastship",
        "tracking_no": "SF1234567",
        "binding_id": binding["id"],
    }
    reply = courier(app).get("/v1/waybills/SF1234567/contact")
    assert reply.status == 200
    assert reply.body["relay_number"] == binding["relay_number"]
    assert reply.body["dial"] == f"{binding['relay_number']},{binding['extension']}"
    assert without_party_digits(reply.text)


def test_anyone_but_the_named_carrier_gets_404(app: Flask, api: ApiClient) -> None:
    binding = axe_binding(api)
    api.call("PUT", f"/v1/bindings/{binding['id']}/waybills/SF1", {"carrier": "fastship"})
    assert courier(app, "othership").get("/v1/waybills/SF1/contact").status == 404
    assert (
        ApiClient(app, make_key(app, "shop-a", ["waybills:read"])).get("/v1/waybills/SF1/contact").status
        == 404
    )
    assert courier(app).get("/v1/waybills/SF2/contact").status == 404


def test_the_contact_dies_with_the_binding(app: Flask, api: ApiClient) -> None:
    binding = axe_binding(api)
    api.call("PUT", f"/v1/bindings/{binding['id']}/waybills/SF1", {"carrier": "fastship"})
    api.delete(f"/v1/bindings/{binding['id']}")
    assert courier(app).get("/v1/waybills/SF1/contact").status == 404


def test_relinking_moves_the_waybill_to_the_new_binding(app: Flask, api: ApiClient) -> None:
    first = axe_binding(api)
    second = axe_binding(api, order_id="o-2", parties={"buyer": MERCHANT})
    api.call("PUT", f"/v1/bindings/{first['id']}/waybills/SF1", {"carrier": "fastship"})
    again = api.call("PUT", f"/v1/bindings/{second['id']}/waybills/SF1", {"carrier": "fastship"})
    assert again.status == 200 and again.body["binding_id"] == second["id"]
    assert courier(app).get("/v1/waybills/SF1/contact").body["relay_number"] == second["relay_number"]


def test_another_owner_cannot_take_over_a_linked_waybill(api: ApiClient, other_api: ApiClient) -> None:
    mine = axe_binding(api)
    theirs = axe_binding(other_api, parties={"buyer": MERCHANT})
    assert api.call("PUT", f"/v1/bindings/{mine['id']}/waybills/SF1", {"carrier": "fastship"}).status == 201
    reply = other_api.call("PUT", f"/v1/bindings/{theirs['id']}/waybills/SF1", {"carrier": "fastship"})
    assert reply.status == 409
    assert other_api.call("PUT", f"/v1/bindings/{mine['id']}/waybills/SF2", {"carrier": "x"}).status == 404


def test_bad_waybills_get_422_naming_the_field(api: ApiClient) -> None:
    axb = api.post(
        "/v1/bindings", {"order_id": "o", "mode": "axb", "parties": {"buyer": BUYER, "merchant": MERCHANT}}
    )
    reply = api.call("PUT", f"/v1/bindings/{axb.body['id']}/waybills/bad%20no", {"carrier": ""})
    assert reply.status == 422
    assert {f["field"] for f in reply.body["error"]["fields"]} == {"tracking_no", "carrier", "binding"}
