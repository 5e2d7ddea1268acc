"""/v1's rate limits without Flask-Limiter: one count per request, the
``X-RateLimit-*`` headers on every answer of a limited endpoint, 429 before
403, and counters under the keys Flask-Limiter used."""

from __future__ import annotations

import time

from flask import Flask

from maskline.api.ratelimit import ScopeLimits
from tests.integration.api_helpers import ApiClient, make_key
from tests.integration.conftest import BUYER, MERCHANT, AppMaker

AXB = {"order_id": "o-1", "mode": "axb", "parties": {"buyer": BUYER, "merchant": MERCHANT}}


def test_every_answer_of_a_limited_endpoint_carries_the_headers(make_app: AppMaker) -> None:
    app = make_app(api_rate_limits={"bindings:read": "3/minute", "bindings:write": "5/second;50/minute"})
    client = ApiClient(app, make_key(app, "shop-a"))
    created = client.post("/v1/bindings", AXB)
    assert created.status == 201
    # Of the smallest window, after this request's hit.
    assert created.headers["X-RateLimit-Limit"] == "5"
    assert created.headers["X-RateLimit-Remaining"] == "4"
    assert int(created.headers["X-RateLimit-Reset"]) >= int(time.time())
    invalid = client.post("/v1/bindings", {**AXB, "mode": "abc"})
    assert invalid.status == 422 and invalid.headers["X-RateLimit-Remaining"] == "3"
    reads = [client.get("/v1/bindings") for _ in range(4)]
    assert [r.status for r in reads] == [200, 200, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in reads] == ["2", "1", "0", "0"]
    limited = reads[-1]
    assert limited.body == {
        "error": {"code": "rate_limited", "message": "rate limit exceeded: 3 per 1 minute"}
    }
    assert 1 <= int(limited.headers["Retry-After"]) <= 61
    assert "X-RateLimit-Limit" not in client.get("/health").headers  # outside /v1's scopes


def test_the_limit_is_checked_before_the_scope(make_app: AppMaker) -> None:
    app = make_app(api_rate_limits={"bindings:read": "1/minute"})
    client = ApiClient(app, make_key(app, "shop-a", ["bindings:write"]))
    assert [client.get("/v1/bindings").status for _ in range(2)] == [403, 429]


def test_an_unknown_key_is_not_counted(app: Flask) -> None:
    reply = ApiClient(app, None).get("/v1/bindings")
    assert reply.status == 401 and "X-RateLimit-Limit" not in reply.headers


def test_counters_keep_flask_limiters_keys_and_the_first_breach_stops_the_count() -> None:
    limits = ScopeLimits(storage_uri="memory://", limits={"s": "2/second;3/minute"})
    assert [w.breached for w in (limits.hit("key:k1", "s") for _ in range(2))] == [False, False]
    third = limits.hit("key:k1", "s")
    assert third is not None and third.breached and str(third.limit) == "2 per 1 second"
    storage = limits._limiter.storage
    assert storage.get("LIMITER/ml:rl/key:k1/s/2/1/second") == 3
    assert storage.get("LIMITER/ml:rl/key:k1/s/3/1/minute") == 2  # not counted past the breach
    assert limits.hit("key:k1", "other") is None  # a scope without limits


def test_a_store_that_cannot_be_reached_lets_the_request_through() -> None:
    limits = ScopeLimits(storage_uri="redis://127.0.0.1:1/0", limits={"s": "1/second"})
    assert limits.hit("key:k1", "s") is None
