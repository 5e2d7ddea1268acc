"""Drill: PostgreSQL restarted while order systems create bindings and calls come in.

test_postgres_restart proves the vault and the pool under a restart, in
process; here the real server is driven over HTTP. What must hold: each
request in flight during the restart gets a clean answer (201, or a 503 with
a JSON error and Retry-After: never a 500, a traceback or a party number);
calls get connected or the apology; the server's pools reconnect by
themselves; and order systems that retry with their Idempotency-Key end up
with exactly one binding per order, the one their final answer names, even
when an attempt committed just before its connection died.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import func, select

from maskline.numbers.models import Binding
from maskline.sim.carrier import CallResult, CarrierSimulator
from maskline.wiring import Services
from tests.e2e.conftest import Cli, RunningServer, serving
from tests.slow.conftest import ThrowawayPostgres, ThrowawayRedis
from tests.slow.drills import (
    BUYER,
    MERCHANT,
    RELAYS,
    ApiClient,
    Reply,
    Traffic,
    api_client,
    assert_apology,
    assert_clean_503,
    assert_no_party_number,
    axb,
    buyer,
    carrier_for,
    drill_cli,
    in_process,
    merchant,
    running,
)

pytestmark = pytest.mark.slow

RETRIES = 600  # attempts per order, 0.05 s apart: a bound, not a measurement


@dataclass
class Deployment:
    cli: Cli
    server: RunningServer
    api: ApiClient
    carrier: CarrierSimulator
    services: Services
    relay: str


@pytest.fixture
def deployment(
    throwaway_postgres: ThrowawayPostgres, throwaway_redis: ThrowawayRedis, tmp_path: Path
) -> Iterator[Deployment]:
    cli = drill_cli(throwaway_postgres, throwaway_redis, tmp_path)
    with in_process(cli) as services:
        live = axb(services, "o-live", BUYER, MERCHANT)
        with serving(cli, tmp_path / "serve.log") as server:
            yield Deployment(
                cli, server, api_client(cli, server), carrier_for(server), services, live.relay_number
            )


@dataclass
class Order:
    """One order's create, retried with its key until it gets an answer that is not a 503."""

    number: int
    attempts: list[Reply] = field(default_factory=list)

    @property
    def final(self) -> Reply:
        return self.attempts[-1]


def place_order(api: ApiClient, i: int) -> Order:
    """Create order i's binding as a careful client does: same key, retry on 503."""
    order = Order(i)
    for _ in range(RETRIES):
        reply = api.create_binding(f"o-{i}", {"buyer": buyer(i), "merchant": merchant(i)}, key=f"key-{i}")
        order.attempts.append(reply)
        if reply.status != 503:
            return order
        time.sleep(0.05)  # the client's back-off, bounded by RETRIES
    return order


def assert_clean_attempts(order: Order) -> None:
    """Every attempt was a 201 or a clean 503, and none carried a party number."""
    for reply in order.attempts:
        assert_no_party_number(reply.text, [buyer(order.number), merchant(order.number)])
        if reply.status != 201:
            assert_clean_503(reply)
    assert order.final.status == 201, order.final


def assert_call(result: CallResult, relay: str) -> None:
    if result.outcome == "connected":
        assert (result.dialed, result.caller_id) == (BUYER, relay), result
    else:
        assert_apology(result)


def bindings_by_order(services: Services) -> dict[str, list[str]]:
    with services.db.session() as session:
        rows = session.execute(select(Binding.order_id, Binding.id)).all()
    found: dict[str, list[str]] = {}
    for order_id, binding_id in rows:
        found.setdefault(order_id, []).append(binding_id)
    return found


def test_a_restart_mid_traffic_fails_requests_cleanly_and_retries_bind_exactly_once(
    deployment: Deployment, throwaway_postgres: ThrowawayPostgres
) -> None:
    d = deployment
    orders: Traffic[Order] = Traffic(lambda i: place_order(d.api, i))
    calls: Traffic[CallResult] = Traffic(lambda _i: d.carrier.call(from_number=MERCHANT, to_number=d.relay))
    with running(orders, calls):
        orders.wait_for_more(3)
        throwaway_postgres.restart("immediate")  # a crash and a restart, while both keep going
        orders.wait_for_more(3)
        calls.wait_for_more(3)
    placed, answered = orders.stop(), calls.stop()

    for order in placed:
        assert_clean_attempts(order)
    for result in answered:
        assert_call(result, d.relay)
    assert any(reply.status == 503 for order in placed for reply in order.attempts)  # the restart was seen
    # One binding per order, the one the client was told about; nothing else.
    found = bindings_by_order(d.services)
    assert found == {"o-live": found["o-live"]} | {f"o-{o.number}": [o.final.json["id"]] for o in placed}
    assert "Traceback" not in d.server.log_text()
    assert_routes_reconcile(d)


def assert_routes_reconcile(d: Deployment) -> None:
    """Every binding has its routes; claims of attempts that did not commit are
    orphans, which ``maskline bindings sweep`` releases."""
    with d.services.db.session() as session:
        live = set(session.scalars(select(Binding.id).where(Binding.status == "active")))
        assert session.scalar(select(func.count()).select_from(Binding)) == len(live)
    routes = d.services.numbers.routes
    assert live <= {bid for relay in RELAYS for bid in routes.entries(relay)[1]}
    d.cli.run("bindings", "sweep", "--grace", "0")
    assert {bid for relay in RELAYS for bid in routes.entries(relay)[1]} == live
