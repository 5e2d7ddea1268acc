"""/v1 when a backend fails: a 503 with Retry-After that leaves nothing behind,
Idempotency-Keys that a failed request cannot block, answers stored only with
their binding, and routes that binding creation itself has rebuilt."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from maskline import services_of
from maskline.api.interfaces import Conflict
from maskline.api.models import IdempotencyRecord
from maskline.api.views import EXTENSION_KEY
from maskline.numbers.bind_sql import Answer, AnswerNotPending
from maskline.numbers.interfaces import BindingView, BindRequest, RoutingUnavailable
from maskline.numbers.models import Binding
from tests.integration.api_helpers import ApiClient
from tests.integration.conftest import BUYER, COURIER, MERCHANT, X1, X2, AppMaker, without_party_digits

PARTIES = {"buyer": BUYER, "merchant": MERCHANT}
AXB = {"order_id": "o-1", "mode": "axb", "parties": PARTIES}
NOWHERE = "redis://127.0.0.1:1/0"  # nothing listens there: Redis is down


def binding_ids(app: Flask) -> list[str]:
    with services_of(app).db.session() as session:
        return list(session.scalars(select(Binding.id)))


def records(app: Flask) -> int:
    with services_of(app).db.session() as session:
        return int(session.scalar(select(func.count()).select_from(IdempotencyRecord)) or 0)


def test_with_redis_down_a_create_is_503_with_retry_after_and_leaves_nothing(
    app: Flask, make_app: AppMaker, api: ApiClient
) -> None:
    down = ApiClient(make_app(redis_url=NOWHERE), api.key)
    reply = down.post("/v1/bindings", AXB, headers={"Idempotency-Key": "k-1"})
    assert (reply.status, reply.body["error"]["code"]) == (503, "unavailable")
    assert int(reply.headers["Retry-After"]) >= 1
    assert without_party_digits(reply.text)
    assert binding_ids(app) == [] and records(app) == 0  # the key is free for the retry
    with services_of(app).db.session() as session:
        assert services_of(app).vault.lookup(session, BUYER) is None


def test_a_key_left_pending_by_a_request_that_died_does_not_block_its_retry(
    app: Flask, api: ApiClient
) -> None:
    store = app.extensions[EXTENSION_KEY].idempotency
    # The first attempt claimed the key, then lost its database before it could answer or release it.
    store.begin("shop-a", "k-1", store.fingerprint("POST", "/v1/bindings", json.dumps(AXB).encode()))
    first = api.post("/v1/bindings", AXB, headers={"Idempotency-Key": "k-1"})
    again = api.post("/v1/bindings", AXB, headers={"Idempotency-Key": "k-1"})
    assert (first.status, again.status, again.body) == (201, 201, first.body)
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert binding_ids(app) == [first.body["id"]]


def test_the_answer_commits_with_its_binding_and_only_once(app: Flask) -> None:
    services = services_of(app)
    store = app.extensions[EXTENSION_KEY].idempotency
    fingerprint = store.fingerprint("POST", "/v1/bindings", b"{}")
    store.begin("shop-a", "k-1", fingerprint)

    def answer(session: Session, view: BindingView) -> None:
        store.complete(session, "shop-a", "k-1", fingerprint, 201, {"id": view.id})

    bind = services.numbers.bindings.bind
    first = bind(BindRequest(order_id="o-1", mode="axb", parties=PARTIES), within=answer)
    # A second attempt with the key (taken over while the first ran) cannot answer too:
    # its binding is undone with its answer, and its Redis claim released.
    with pytest.raises(Conflict):
        bind(
            BindRequest(order_id="o-1", mode="axb", parties={"buyer": COURIER, "merchant": MERCHANT}),
            within=answer,
        )
    assert binding_ids(app) == [first.id]
    assert {bid for x in (X1, X2) for bid in services.numbers.routes.entries(x)[1]} == {first.id}


def test_an_answer_stored_by_the_bind_statement_commits_with_its_binding_and_only_once(app: Flask) -> None:
    """As above, with the answer also given for the one-statement path
    (PostgreSQL), which stores it in the bind's own statement."""
    services = services_of(app)
    store = app.extensions[EXTENSION_KEY].idempotency
    fingerprint = store.fingerprint("POST", "/v1/bindings", b"{}")
    store.begin("shop-a", "k-1", fingerprint)

    def within(session: Session, view: BindingView) -> None:
        store.complete(session, "shop-a", "k-1", fingerprint, 201, {"id": view.id})

    def answer(view: BindingView) -> Answer:
        return store.answer("shop-a", "k-1", fingerprint, 201, {"id": view.id})

    bind = services.numbers.bindings.bind
    first = bind(BindRequest(order_id="o-1", mode="axb", parties=PARTIES), within=within, answer=answer)
    with pytest.raises((Conflict, AnswerNotPending)):
        bind(
            BindRequest(order_id="o-1", mode="axb", parties={"buyer": COURIER, "merchant": MERCHANT}),
            within=within,
            answer=answer,
        )
    assert binding_ids(app) == [first.id]
    assert {bid for x in (X1, X2) for bid in services.numbers.routes.entries(x)[1]} == {first.id}
    with services.db.session() as session:
        stored = session.get(IdempotencyRecord, ("shop-a", "k-1"))
        assert stored is not None and (stored.status, json.loads(stored.response)) == (201, {"id": first.id})


def test_binding_creation_on_a_redis_that_lost_its_data_starts_the_rebuild(
    app: Flask, api: ApiClient
) -> None:
    first = api.post("/v1/bindings", AXB)
    numbers = services_of(app).numbers
    services_of(app).redis.flushdb()  # Redis came back empty
    lost = api.post("/v1/bindings", {**AXB, "parties": {"buyer": COURIER, "merchant": MERCHANT}})
    assert lost.status == 503 and int(lost.headers["Retry-After"]) >= 1
    numbers.rebuilder.join()  # started by the failed claim, not by a call or the worker
    assert numbers.rebuilder.runs == 1
    assert (
        api.post("/v1/bindings", {**AXB, "parties": {"buyer": COURIER, "merchant": MERCHANT}}).status == 201
    )
    assert numbers.router.resolve(first.body["relay_number"], MERCHANT).binding_id == first.body["id"]


def test_a_claim_on_a_redis_that_is_down_starts_no_rebuild(
    app: Flask, make_app: AppMaker, api: ApiClient
) -> None:
    down = make_app(redis_url=NOWHERE)
    with pytest.raises(RoutingUnavailable):
        services_of(down).numbers.bindings.bind(BindRequest(order_id="o-1", mode="axb", parties=PARTIES))
    assert services_of(down).numbers.rebuilder.runs == 0


def test_with_the_bind_connection_cut_a_create_is_503_and_leaves_nothing(app: Flask, api: ApiClient) -> None:
    """PostgreSQL: the bind's own connection dies between its lookup and its
    write. The write's outcome is unknown to the bind (here: never sent), so
    it answers 503 and leaves its claim to the sweeper; the retry binds."""
    services = services_of(app)
    writer = services.numbers.bindings._writer
    if services.db.dialect != "postgresql":
        assert writer is None  # SQLite binds through the ORM
        return
    real = writer.lookup
    bind_sql = services.numbers.bind_sql

    def lookup_then_cut(indexes: Any, numbers: Any) -> Any:
        found = real(indexes, numbers)
        pid = bind_sql._connection().info.backend_pid
        with services.db.engine.begin() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        return found

    writer.lookup = lookup_then_cut
    try:
        reply = api.post("/v1/bindings", AXB)
    finally:
        del writer.lookup
    assert (reply.status, reply.body["error"]["code"]) == (503, "unavailable")
    assert without_party_digits(reply.text)
    assert binding_ids(app) == []
    again = api.post("/v1/bindings", AXB)
    assert again.status == 201 and binding_ids(app) == [again.body["id"]]
