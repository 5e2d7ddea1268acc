"""Drill: the app built while its Redis Cluster does not exist yet.

redis-py's cluster client and the rate limiter's cluster storage ask a node
for the slot map as they are made, so they are made on first use: the app
builds (``maskline serve`` starts), serves degraded while the cluster is
down, and once the cluster answers (empty) it becomes ready, rebuilds the
routes from SQL by itself, and binds and routes, with no restart.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask

from config import load_settings
from maskline import create_app, migrate, services_of
from maskline.clock import FixedClock
from maskline.db import make_engine
from maskline.numbers.models import RelayNumber
from maskline.numbers.regions import describe
from maskline.vault import keyring as kr
from tests.conftest import EPOCH
from tests.integration.api_helpers import ApiClient, make_key
from tests.integration.conftest import AUTH_TOKEN, BUYER, MERCHANT, Twilio
from tests.slow.cluster import PRIMARIES, ThrowawayCluster, distinct_free_ports
from tests.slow.conftest import ThrowawayPostgres

pytestmark = pytest.mark.slow

RELAYS = ("+14155550100", "+14155550101")
AXB = {"order_id": "o-1", "mode": "axb", "parties": {"buyer": BUYER, "merchant": MERCHANT}}
ATTEMPTS = 600  # bounded polling of real state, 0.05 s apart


def poll(ok: Callable[[], bool], what: str) -> None:
    for _ in range(ATTEMPTS):
        if ok():
            return
        time.sleep(0.05)  # polling, bounded by ATTEMPTS
    raise AssertionError(f"never happened: {what}")


@pytest.fixture
def not_yet_a_cluster() -> Iterator[tuple[ThrowawayCluster, list[int]]]:
    """A cluster whose ports are chosen, and nothing listening on them yet."""
    base = Path(tempfile.mkdtemp(prefix="maskline-cluster-"))
    cluster = ThrowawayCluster(base=base)
    try:
        yield cluster, distinct_free_ports(2 * PRIMARIES)
    finally:
        try:
            cluster.stop()
        finally:
            shutil.rmtree(base, ignore_errors=True)


def test_an_app_built_while_the_cluster_is_down_recovers_when_it_is_up(
    not_yet_a_cluster: tuple[ThrowawayCluster, list[int]],
    throwaway_postgres: ThrowawayPostgres,
    tmp_path: Path,
) -> None:
    cluster, ports = not_yet_a_cluster
    engine = make_engine(throwaway_postgres.url)
    migrate.upgrade(engine)
    engine.dispose()
    keys_file = tmp_path / "keys.json"
    kr.write_keyring_file(keys_file, kr.new_keyring(development=True))
    url = "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports[::2])
    settings = load_settings(
        {
            "env": "testing",
            "instance_path": tmp_path,
            "database_url": throwaway_postgres.url,
            "redis_url": url,
            "keys_file": keys_file,
            "default_region": "US",
            "twilio_auth_token": AUTH_TOKEN,
        },
        environ={},
    )
    app: Flask = create_app(settings, clock=FixedClock(EPOCH))  # the cluster is not there
    try:
        services = services_of(app)
        with services.db.session() as session:  # in SQL only: Redis cannot be told
            for e164 in RELAYS:
                country, area = describe(e164)
                session.add(
                    RelayNumber(
                        e164=e164, country=country, area=area, voice=True, sms=True, status="active",
                        created_at=services.clock(),
                    )
                )  # fmt: skip
        client = app.test_client()
        api = ApiClient(app, make_key(app, "shop-a"))
        twilio = Twilio(app)
        assert client.get("/readyz").status_code == 503
        assert api.post("/v1/bindings", AXB, headers={"Idempotency-Key": "k-1"}).status == 503
        assert twilio.call(MERCHANT, RELAYS[0]).dialed is None

        cluster.start(ports)  # up, and empty

        poll(lambda: client.get("/readyz").status_code == 200, "/readyz ready once the cluster is up")
        poll(
            lambda: api.post("/v1/bindings", AXB, headers={"Idempotency-Key": "k-1"}).status != 503,
            "binding creation once the cluster is up",
        )
        created = api.post("/v1/bindings", AXB, headers={"Idempotency-Key": "k-1"})
        assert created.status == 201, created
        relay = created.body["relay_number"]
        assert twilio.call(MERCHANT, relay).dialed == (relay, BUYER)
    finally:
        services_of(app).close()
