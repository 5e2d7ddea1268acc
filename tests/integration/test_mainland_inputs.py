"""Mainland numbers through the API and the console's search: one parser, the region's reading."""

from __future__ import annotations

import pytest
from flask import Flask

from maskline import services_of
from maskline.admin import queries
from tests.integration.api_helpers import ApiClient, make_key
from tests.integration.conftest import AppMaker, add_relay_numbers

CN_RELAY = "+861065520100"
BUYER_NATIONAL, MERCHANT_NATIONAL = "13912340003", "021-6552 0143"


def cn_app(make_app: AppMaker, **settings: object) -> Flask:
    app = make_app(**settings)
    add_relay_numbers(services_of(app), CN_RELAY)
    return app


def bind_body(**extra: object) -> dict[str, object]:
    parties = {"buyer": BUYER_NATIONAL, "merchant": MERCHANT_NATIONAL}
    return {"order_id": "o-cn", "mode": "axb", "parties": parties, **extra}


def test_a_us_deployment_refuses_a_mainland_national_form_and_says_what_to_send(make_app: AppMaker) -> None:
    app = cn_app(make_app)
    reply = ApiClient(app, make_key(app, "shop-a")).post("/v1/bindings", bind_body())
    assert reply.status == 422
    (problem,) = [f for f in reply.body["error"]["fields"] if f["field"] == "parties.buyer"]
    assert "give region CN" in reply.text and "E.164" in reply.text
    assert "13912340003" not in reply.text and "139" not in reply.text and "6552" not in reply.text
    assert problem


def test_the_request_region_reads_mainland_national_forms(make_app: AppMaker) -> None:
    app = cn_app(make_app)
    reply = ApiClient(app, make_key(app, "shop-a")).post("/v1/bindings", bind_body(region="CN"))
    assert reply.status == 201, reply.text
    assert reply.body["relay_number"] == CN_RELAY and "13912340003" not in reply.text


def test_a_cn_deployment_reads_them_without_a_region(make_app: AppMaker) -> None:
    app = cn_app(make_app, default_region="CN")
    api = ApiClient(app, make_key(app, "shop-a"))
    assert api.post("/v1/bindings", bind_body()).status == 201
    refused = api.post(
        "/v1/bindings", bind_body(order_id="o-2", parties={"buyer": "95588", "merchant": "4001234567"})
    )
    assert refused.status == 422
    assert "95xxx" in refused.text and "400 service number" in refused.text
    assert "95588" not in refused.text and "4001234567" not in refused.text


@pytest.mark.parametrize(("region", "matched"), [("CN", "relay number"), ("US", "order id")])
def test_the_console_search_reads_a_national_number_in_the_deployment_region(
    make_app: AppMaker, region: str, matched: str
) -> None:
    app = cn_app(make_app)
    assert ApiClient(app, make_key(app, "shop-a")).post("/v1/bindings", bind_body(region="CN")).status == 201
    services = services_of(app)
    with services.db.session() as session:
        in_pool = queries.search(session, "010 6552 0100", now=services.clock(), region=region)
        not_in_pool = queries.search(session, "13912345678", now=services.clock(), region=region)
    assert in_pool.matched_by == matched and not_in_pool.matched_by == matched
    assert len(in_pool.rows) == (1 if region == "CN" else 0) and not not_in_pool.rows
