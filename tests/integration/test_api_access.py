"""/v1 access: keys (401), scopes (403), per-key rate limits (429), idempotency (replay, 409)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from maskline import services_of
from maskline.api.models import ApiKey, IdempotencyRecord
from maskline.api.views import EXTENSION_KEY
from maskline.numbers.models import Binding
from tests.integration.api_helpers import ApiClient, make_key
from tests.integration.conftest import BUYER, COURIER, MERCHANT, AppMaker

AXB = {"order_id": "o-1", "mode": "axb", "parties": {"buyer": BUYER, "merchant": MERCHANT}}


def bindings(app: Flask) -> int:
    with services_of(app).db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Binding)) or 0)


@pytest.mark.parametrize(
    "authorization", [None, "Bearer ", "Bearer ml_000000000000_" + "A" * 43, "Basic abc", "Bearer nonsense"]
)
def test_a_missing_or_unknown_key_is_401(app: Flask, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    reply = ApiClient(app, None).get("/v1/bindings", headers=headers)
    assert reply.status == 401 and reply.body["error"]["code"] == "unauthorized"


def test_a_wrong_secret_for_a_real_key_id_is_401(app: Flask, api: ApiClient) -> None:
    assert api.key is not None
    forged = api.key[:-4] + ("AAAA" if not api.key.endswith("AAAA") else "BBBB")
    assert ApiClient(app, forged).get("/v1/bindings").status == 401


def test_a_revoked_key_is_401(app: Flask, api: ApiClient) -> None:
    assert api.get("/v1/bindings").status == 200
    assert api.key is not None
    app.extensions[EXTENSION_KEY].keys.revoke(api.key.split("_")[1])
    assert api.get("/v1/bindings").status == 401


@pytest.mark.parametrize(
    ("scope", "method", "path"),
    [
        ("bindings:read", "POST", "/v1/bindings"),
        ("bindings:write", "GET", "/v1/bindings"),
        ("bindings:read", "GET", "/v1/pool"),
        ("waybills:read", "DELETE", "/v1/bindings/bd_x"),
    ],
)
def test_a_key_without_the_scope_is_403(app: Flask, scope: str, method: str, path: str) -> None:
    client = ApiClient(app, make_key(app, "shop-a", [scope]))
    reply = client.call(method, path, AXB if method == "POST" else None)
    assert reply.status == 403 and reply.body["error"]["code"] == "forbidden"
    assert bindings(app) == 0


def test_only_a_hash_of_the_key_is_stored(app: Flask, api: ApiClient) -> None:
    assert api.key is not None
    secret = api.key.split("_", 2)[2]
    with services_of(app).db.session() as session:
        rows = [(r.id, r.secret_hash, r.owner, r.name, r.scopes) for r in session.scalars(select(ApiKey))]
    assert rows and secret not in repr(rows)


def test_past_the_limit_the_key_gets_429_with_retry_after(make_app: AppMaker) -> None:
    app = make_app(api_rate_limits={"bindings:read": "2/minute", "bindings:write": "100/second"})
    client, other = ApiClient(app, make_key(app, "shop-a")), ApiClient(app, make_key(app, "shop-a"))
    assert [client.get("/v1/bindings").status for _ in range(3)] == [200, 200, 429]
    limited = client.get("/v1/bindings")
    assert limited.body["error"]["code"] == "rate_limited" and int(limited.headers["Retry-After"]) >= 1
    assert other.get("/v1/bindings").status == 200  # the limit is per key
    assert client.post("/v1/bindings", AXB).status == 201  # and per scope


def test_a_retry_with_the_same_idempotency_key_gets_the_first_answer(app: Flask, api: ApiClient) -> None:
    first = api.post("/v1/bindings", AXB, headers={"Idempotency-Key": "k-1"})
    again = api.post("/v1/bindings", AXB, headers={"Idempotency-Key": "k-1"})
    assert first.status == again.status == 201 and again.body == first.body
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert bindings(app) == 1


def test_the_same_idempotency_key_with_another_body_is_409(app: Flask, api: ApiClient) -> None:
    api.post("/v1/bindings", AXB, headers={"Idempotency-Key": "k-1"})
    other = {**AXB, "parties": {"buyer": BUYER, "merchant": COURIER}}
    reply = api.post("/v1/bindings", other, headers={"Idempotency-Key": "k-1"})
    assert reply.status == 409 and bindings(app) == 1
    assert reply.body["error"]["code"] == "idempotency_key_reused"


def test_idempotency_keys_are_scoped_to_the_owner(app: Flask, api: ApiClient, other_api: ApiClient) -> None:
    api.post("/v1/bindings", AXB, headers={"Idempotency-Key": "k-1"})
    other = {**AXB, "parties": {"buyer": COURIER, "merchant": MERCHANT}}
    reply = other_api.post("/v1/bindings", other, headers={"Idempotency-Key": "k-1"})
    assert reply.status == 201 and bindings(app) == 2


def test_a_failed_request_does_not_use_up_its_idempotency_key(app: Flask, api: ApiClient) -> None:
    bad = api.post("/v1/bindings", {**AXB, "mode": "abc"}, headers={"Idempotency-Key": "k-2"})
    assert bad.status == 422
    good = api.post(
        "/v1/bindings", {**AXB, "mode": "abc"} | {"mode": "axb"}, headers={"Idempotency-Key": "k-2"}
    )
    assert good.status == 201


def test_idempotency_records_hold_no_body_and_no_number(app: Flask, api: ApiClient) -> None:
    api.post("/v1/bindings", AXB, headers={"Idempotency-Key": "k-3"})
    with services_of(app).db.session() as session:
        rows = [(r.key, r.request_hash, r.response) for r in session.scalars(select(IdempotencyRecord))]
    digits = [n[2:] for n in (BUYER, MERCHANT)]
    assert len(rows) == 1 and not any(d in repr(rows) for d in digits)


def test_an_overlong_idempotency_key_is_422(api: ApiClient) -> None:
    reply = api.post("/v1/bindings", AXB, headers={"Idempotency-Key": "k" * 300})
    assert reply.status == 422 and reply.body["error"]["fields"][0]["field"] == "Idempotency-Key"


def test_the_api_never_answers_a_webhook_path_or_health_with_a_key_check(app: Flask, api: Any) -> None:
    assert app.test_client().get("/healthz").status_code == 200


def test_idempotency_records_are_purged_after_their_ttl(app: Flask, api: ApiClient, clock: Any) -> None:
    api.post("/v1/bindings", AXB, headers={"Idempotency-Key": "k-9"})
    store = app.extensions[EXTENSION_KEY].idempotency
    assert store.purge(clock()) == 0
    clock.advance(hours=25)
    assert store.purge(clock()) == 1
    with services_of(app).db.session() as session:
        assert session.scalars(select(IdempotencyRecord)).all() == []
