"""POST /v1/bindings:batch: per-item answers in order, partial failures, one Idempotency-Key."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import func, select

from maskline import services_of
from maskline.numbers.models import Binding
from tests.integration.api_helpers import ApiClient, make_key
from tests.integration.conftest import BUYER, COURIER, MERCHANT, STRANGER, without_party_digits

AXB = {"order_id": "o-1", "mode": "axb", "parties": {"buyer": BUYER, "merchant": MERCHANT}}


def bindings(app: Flask) -> int:
    with services_of(app).db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Binding)) or 0)


def test_each_item_gets_the_single_endpoints_answer_in_order(api: ApiClient, app: Flask) -> None:
    items = [
        AXB,
        {**AXB, "order_id": "o-2", "parties": {"buyer": BUYER, "merchant": "+1 202"}},  # bad number
        {**AXB, "order_id": "o-3", "parties": {"buyer": COURIER, "merchant": STRANGER}},
    ]
    reply = api.post("/v1/bindings:batch", {"items": items})
    assert reply.status == 200, reply.text
    statuses = [r["status"] for r in reply.body["results"]]
    assert statuses == [201, 422, 201]
    first, bad, third = (r["body"] for r in reply.body["results"])
    assert first["order_id"] == "o-1" and third["order_id"] == "o-3"
    assert bad["error"]["fields"][0]["field"] == "parties.merchant"
    single = api.post("/v1/bindings", items[1])
    assert (single.status, single.body) == (422, bad)
    assert bindings(app) == 2
    assert without_party_digits(reply.text)


def test_an_exhausted_pool_fails_its_item_alone(api: ApiClient, app: Flask) -> None:
    # Two relay numbers: the same buyer can sit on each once.
    items = [{**AXB, "order_id": f"o-{i}", "parties": {"buyer": BUYER, "merchant": m}} for i, m in
             enumerate([MERCHANT, COURIER, STRANGER])]  # fmt: skip
    reply = api.post("/v1/bindings:batch", {"items": items})
    results = reply.body["results"]
    assert [r["status"] for r in results] == [201, 201, 409]
    assert results[2]["body"]["error"]["code"] == "pool_exhausted"
    assert bindings(app) == 2


def test_one_idempotency_key_covers_the_batch(api: ApiClient, app: Flask) -> None:
    items = [AXB, {**AXB, "order_id": "o-2", "parties": {"buyer": COURIER, "merchant": STRANGER}}]
    first = api.post("/v1/bindings:batch", {"items": items}, headers={"Idempotency-Key": "b-1"})
    again = api.post("/v1/bindings:batch", {"items": items}, headers={"Idempotency-Key": "b-1"})
    assert first.status == again.status == 200
    assert again.body == first.body and again.headers.get("Idempotent-Replayed") == "true"
    assert bindings(app) == 2
    other = api.post("/v1/bindings:batch", {"items": items[:1]}, headers={"Idempotency-Key": "b-1"})
    assert other.status == 409


def test_a_retried_batch_that_died_half_way_binds_only_what_had_not_committed(
    api: ApiClient, app: Flask
) -> None:
    from maskline.api.batch import item_key

    items = [AXB, {**AXB, "order_id": "o-2", "parties": {"buyer": COURIER, "merchant": STRANGER}}]
    # The first item alone, as a batch that died after it committed would leave it.
    done = api.post("/v1/bindings:batch", {"items": items[:1]}, headers={"Idempotency-Key": "b-0"})
    with services_of(app).db.session() as session:
        from maskline.api.models import IdempotencyRecord

        record = session.get(IdempotencyRecord, ("shop-a", item_key("b-0", 0)))
        assert record is not None
        # Carry the first item's record over to the retried batch's key.
        session.add(
            IdempotencyRecord(
                owner=record.owner,
                key=item_key("b-2", 0),
                request_hash=record.request_hash,
                status=record.status,
                response=record.response,
                created_at=record.created_at,
            )
        )
    retry = api.post("/v1/bindings:batch", {"items": items}, headers={"Idempotency-Key": "b-2"})
    assert [r["status"] for r in retry.body["results"]] == [201, 201]
    assert retry.body["results"][0]["body"]["id"] == done.body["results"][0]["body"]["id"]
    assert bindings(app) == 2


def test_the_envelope_is_checked_before_anything(api: ApiClient, app: Flask) -> None:
    for body, field in [
        ({"items": []}, "items"),
        ({"items": [AXB] * 101}, "items"),
        ({"item": [AXB]}, "item"),
        ([AXB], "items"),
    ]:
        reply = api.post("/v1/bindings:batch", body)
        assert reply.status == 422 and reply.body["error"]["fields"][0]["field"] == field
    assert bindings(app) == 0


def test_a_read_only_key_cannot_batch(app: Flask) -> None:
    read_only = ApiClient(app, make_key(app, "shop-a", ["bindings:read"]))
    assert read_only.post("/v1/bindings:batch", {"items": [AXB]}).status == 403
