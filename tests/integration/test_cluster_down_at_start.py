"""An app built while its Redis Cluster is down: it starts, degraded.

redis-py's cluster client and the rate limiter's cluster storage both ask a
node for the slot map as they are made. Neither may be made while the app
is built, or ``maskline serve`` could not start during a cluster outage.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from config import Settings, with_overrides
from maskline import create_app, services_of
from maskline.clock import FixedClock
from maskline.wiring import Services
from tests.integration.api_helpers import ApiClient, make_key
from tests.integration.conftest import AUTH_TOKEN, BUYER, MERCHANT, X1, Twilio

# Nothing listens on port 1: every node of this "cluster" is down.
DOWN_CLUSTER = "redis+cluster://127.0.0.1:1,127.0.0.1:1"


@pytest.fixture
def down(services: Services, settings: Settings, clock: FixedClock) -> Iterator[Flask]:
    app = create_app(
        with_overrides(settings, redis_url=DOWN_CLUSTER, twilio_auth_token=AUTH_TOKEN), clock=clock
    )
    yield app
    services_of(app).close()


def test_readyz_says_redis_is_unavailable(down: Flask) -> None:
    response = down.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"] == {"database": "ok", "redis": "unavailable"}


def test_a_call_gets_the_apology(down: Flask) -> None:
    answer = Twilio(down).call(MERCHANT, X1)
    assert answer.status == 200 and answer.dialed is None and "Sorry" in answer.said


def test_binding_creation_answers_503_and_the_rate_limiter_fails_open(down: Flask) -> None:
    api = ApiClient(down, make_key(down, "shop-a"))
    reply = api.post(
        "/v1/bindings", {"order_id": "o-1", "mode": "axb", "parties": {"buyer": BUYER, "merchant": MERCHANT}}
    )
    assert reply.status == 503 and int(reply.headers["Retry-After"]) >= 1


def test_reading_a_binding_answers_503(down: Flask) -> None:
    api = ApiClient(down, make_key(down, "shop-a"))
    assert api.get("/v1/bindings/bd_aaaaaaaaaaaaaaaa").status == 503
