"""maskline on a Redis Cluster: three primaries, no replicas, on loopback.

(a) The numbers, webhook, API and alerts integration tests, run as they are
    against the cluster (a pytest subprocess with MASKLINE_TEST_REDIS_URL set
    to its ``redis+cluster://`` URL) and a throwaway PostgreSQL.
(b) Where the keys go: one binding's keys on one slot, held by the primary
    that owns ``{X}``'s slot; bindings on many relay numbers on every primary.
(c) The app over the cluster: bind through /v1, route a call end to end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from redis.cluster import RedisCluster, key_slot

from config import load_settings
from maskline import create_app, migrate, services_of
from maskline.clock import FixedClock
from maskline.db import make_engine
from maskline.numbers.interfaces import BindRequest, RoutingUnavailable
from maskline.numbers.routes import route_key
from maskline.vault import keyring as kr
from maskline.webhooks.services import DecisionStore
from maskline.webhooks.twiml import PROMPTS
from tests.conftest import EPOCH, add_relay_numbers
from tests.integration.api_helpers import ApiClient, make_key
from tests.integration.conftest import AUTH_TOKEN, BUYER, MERCHANT, STRANGER, Twilio, sid
from tests.slow.cluster import ThrowawayCluster, flush_all_primaries, running_cluster
from tests.slow.conftest import ThrowawayPostgres

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# The integration modules whose subject is Redis: routing, webhooks, the API
# (its rate limiter is on Redis too) and alerts (counted in Redis).
INTEGRATION_MODULES = [
    "test_route_store_contract.py",
    "test_pool.py",
    "test_pool_service.py",
    "test_bindings.py",
    "test_bind_cost.py",
    "test_sweeper.py",
    "test_allocation_race.py",
    "test_webhooks_voice.py",
    "test_webhooks_sms.py",
    "test_webhooks_status.py",
    "test_webhooks_recording.py",
    "test_webhook_backends.py",
    "test_not_pool_numbers.py",
    "test_api_access.py",
    "test_api_bindings.py",
    "test_api_calls.py",
    "test_api_waybills.py",
    "test_alerts.py",
    "test_alerts_webhooks.py",
    "test_carrier_simulator.py",
    # Owner caps take and give back a place on the owner's own slot there.
    "test_owner_limits.py",
    "test_extension_length.py",
    "test_binding_language.py",
]
RELAYS = [f"+1415555{n:04d}" for n in range(100, 130)]
APOLOGY = PROMPTS["en-US"].apology


@pytest.fixture(scope="module")
def cluster() -> Iterator[ThrowawayCluster]:
    with running_cluster() as running:
        yield running


@pytest.fixture
def client(cluster: ThrowawayCluster) -> Iterator[RedisCluster]:
    client = cluster.client()
    flush_all_primaries(client)
    yield client
    client.close()


def _node_clients(client: RedisCluster) -> dict[str, redis.Redis]:
    """A plain client per primary, by node name: what each node itself holds."""
    return {node.name: redis.Redis(host=node.host, port=node.port) for node in client.get_primaries()}


# -- (a) ------------------------------------------------------------------------


def test_integration_suites_pass_on_the_cluster(
    cluster: ThrowawayCluster, client: RedisCluster, throwaway_postgres: ThrowawayPostgres
) -> None:
    env = {
        **os.environ,
        "MASKLINE_TEST_REDIS_URL": cluster.url,
        "MASKLINE_TEST_DATABASE_URL": throwaway_postgres.url,
    }
    modules = [f"tests/integration/{name}" for name in INTEGRATION_MODULES]
    assert all((ROOT / m).exists() for m in modules), "an integration module was renamed: update the list"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-m", "not slow", *modules],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    tail = "\n".join((done.stdout + done.stderr).splitlines()[-150:])
    assert done.returncode == 0, f"integration tests failed on the cluster:\n{tail}"
    assert " passed" in done.stdout and " failed" not in done.stdout, tail
    # They ran here: every primary ran maskline's scripts.
    for name, node in _node_clients(client).items():
        stats = node.info("commandstats")
        assert stats.get("cmdstat_evalsha", {}).get("calls", 0) > 0, f"{name} ran no script"
        node.close()


def test_flushdb_as_the_test_fixtures_call_it_empties_every_primary(client: RedisCluster) -> None:
    # tests/conftest.py cleans Redis with client.flushdb(): redis-py sends
    # FLUSHDB to every primary of a cluster (KEYS and DBSIZE ask one node).
    for relay in RELAYS:
        client.hset(route_key(relay), "g", "1")
    nodes = _node_clients(client)
    try:
        assert all(node.dbsize() > 0 for node in nodes.values())
        client.flushdb()
        assert [node.dbsize() for node in nodes.values()] == [0] * len(nodes)
    finally:
        for node in nodes.values():
            node.close()


# -- (b) ------------------------------------------------------------------------


@pytest.fixture
def app(
    cluster: ThrowawayCluster, client: RedisCluster, throwaway_postgres: ThrowawayPostgres, tmp_path: Path
) -> Iterator[Flask]:
    engine = make_engine(throwaway_postgres.url)
    migrate.upgrade(engine)
    engine.dispose()
    keys_file = tmp_path / "keys.json"
    kr.write_keyring_file(keys_file, kr.new_keyring(development=True))
    settings = load_settings(
        {
            "env": "testing",
            "instance_path": tmp_path,
            "database_url": throwaway_postgres.url,
            "redis_url": cluster.url,
            "keys_file": keys_file,
            "default_region": "US",
            "twilio_auth_token": AUTH_TOKEN,
            # One binding per number: bindings spread over the relay numbers.
            "max_bindings_per_number": 1,
        },
        environ={},
    )
    app = create_app(settings, clock=FixedClock(EPOCH))
    add_relay_numbers(services_of(app), *RELAYS)
    yield app
    services_of(app).close()


def _bind(app: Flask, order: str, buyer: str, merchant: str) -> str:
    request = BindRequest(order_id=order, mode="axb", parties={"buyer": buyer, "merchant": merchant})
    return services_of(app).numbers.bindings.bind(request).relay_number


def test_a_bindings_keys_share_the_slot_of_its_relay_number(app: Flask, client: RedisCluster) -> None:
    relay = _bind(app, "o-1", BUYER, MERCHANT)
    call = sid()
    assert Twilio(app).call(BUYER, relay, call_sid=call).dialed == (relay, MERCHANT)
    tagged = [k for k in client.scan_iter(match="ml:*") if b"{" + relay.encode() + b"}" in k]
    assert route_key(relay).encode() in tagged and len(tagged) >= 3  # route hash + quota counters
    assert {key_slot(k) for k in tagged} == {key_slot(b"{" + relay.encode() + b"}")}
    assert client.exists(DecisionStore.key(call, relay))  # the call's decisions: on the relay's slot too


def test_a_bindings_routes_live_on_the_primary_owning_its_slot(app: Flask, client: RedisCluster) -> None:
    relay = _bind(app, "o-1", BUYER, MERCHANT)
    owner = client.get_node_from_key(route_key(relay))
    nodes = _node_clients(client)
    try:
        assert nodes[owner.name].hlen(route_key(relay)) >= 3  # generation, counters, two routes
        for name, node in nodes.items():
            held = set(node.scan_iter(match=route_key(relay)))
            assert held == ({route_key(relay).encode()} if name == owner.name else set())
    finally:
        for node in nodes.values():
            node.close()


def test_bindings_on_many_relay_numbers_spread_over_every_primary(app: Flask, client: RedisCluster) -> None:
    relays = {_bind(app, f"o-{i}", f"+1312555{i:04d}", f"+1212555{i:04d}") for i in range(len(RELAYS))}
    assert relays == set(RELAYS)  # one binding per number
    holders = {client.get_node_from_key(route_key(relay)).name for relay in relays}
    assert holders == {node.name for node in client.get_primaries()}
    nodes = _node_clients(client)
    try:
        for name, node in nodes.items():
            assert any(len(key) for key in node.scan_iter(match="ml:{*}")), f"{name} holds no binding"
    finally:
        for node in nodes.values():
            node.close()


# -- (c) ------------------------------------------------------------------------


def test_the_app_binds_and_routes_a_call_over_the_cluster(app: Flask) -> None:
    api = ApiClient(app, make_key(app, "shop-a"))
    reply = api.post(
        "/v1/bindings", {"order_id": "o-1", "mode": "axb", "parties": {"buyer": BUYER, "merchant": MERCHANT}}
    )
    assert reply.status == 201, reply.text
    relay = reply.body["relay_number"]
    assert "X-RateLimit-Limit" in reply.headers  # the limiter counts on the cluster
    twilio = Twilio(app)
    call = sid()
    assert twilio.call(BUYER, relay, call_sid=call).dialed == (relay, MERCHANT)
    assert twilio.call(MERCHANT, relay).dialed == (relay, BUYER)
    assert twilio.call(STRANGER, relay).dialed is None
    assert twilio.call_status(call, "completed", duration=30).status in (200, 204)
    assert twilio.call(BUYER, relay, call_sid=call).dialed is None  # a replay of a finished call
    assert app.test_client().get("/readyz").status_code == 200  # every primary answered PING


def test_a_call_to_a_number_whose_primary_hangs_reaches_no_one(
    cluster: ThrowawayCluster, app: Flask, client: RedisCluster
) -> None:
    # Last in this module: it leaves the cluster as it found it, but only
    # after the frozen primary is back and every node says cluster_state:ok.
    relay = _bind(app, "o-1", BUYER, MERCHANT)
    owner = client.get_node_from_key(route_key(relay))
    frozen = next(node for node in cluster.nodes if node.port == owner.port)
    frozen.freeze()
    try:
        answer = Twilio(app).call(BUYER, relay)
        assert answer.status == 200 and answer.dialed is None and APOLOGY in answer.said
        with pytest.raises(RoutingUnavailable):
            services_of(app).numbers.routes.resolve(relay, caller_index=b"\0" * 12, extension=None, now=1)
    finally:
        frozen.thaw()
        cluster.wait_until_ok()
    assert Twilio(app).call(BUYER, relay).dialed == (relay, MERCHANT)
