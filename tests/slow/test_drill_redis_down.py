"""Drill: Redis down while order systems create bindings and calls come in.

test_webhooks_redis_down covers the webhooks (apology, then routes again);
here the API is driven too. What must hold while Redis is gone: binding
creation answers 503 with a JSON error and Retry-After, and leaves nothing
half-written: no SQL binding, no vault entry for its numbers, no Redis claim,
and its Idempotency-Key free for the retry. Webhooks answer with the
fallback. When Redis returns, with its data or empty, the service recovers
by itself: the retry creates the binding, calls connect, nobody runs a
command.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from maskline.api.models import IdempotencyRecord
from maskline.numbers.models import Binding
from maskline.sim.carrier import CarrierSimulator
from maskline.wiring import Services
from tests.e2e.conftest import Cli, RunningServer, serving
from tests.slow.conftest import ThrowawayPostgres, ThrowawayRedis
from tests.slow.drills import (
    BUYER,
    MERCHANT,
    RELAYS,
    ApiClient,
    Reply,
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
)

pytestmark = pytest.mark.slow

NEW_PARTIES = {"buyer": buyer(1), "merchant": merchant(1)}
RETRY_ATTEMPTS = 600  # bounded polling for the recovery


@dataclass
class Deployment:
    cli: Cli
    server: RunningServer
    api: ApiClient
    carrier: CarrierSimulator
    services: Services  # in this process, for looking at SQL and Redis
    relay: str  # the relay number of the live binding of BUYER and MERCHANT


@pytest.fixture
def deployment(
    throwaway_postgres: ThrowawayPostgres, throwaway_redis: ThrowawayRedis, tmp_path: Path
) -> Iterator[Deployment]:
    cli = drill_cli(throwaway_postgres, throwaway_redis, tmp_path)
    with in_process(cli) as services:
        live = axb(services, "o-live", BUYER, MERCHANT)
        with serving(cli, tmp_path / "serve.log") as server:
            yield Deployment(
                cli=cli,
                server=server,
                api=api_client(cli, server),
                carrier=carrier_for(server),
                services=services,
                relay=live.relay_number,
            )


def create(d: Deployment, key: str = "k-1") -> Reply:
    return d.api.create_binding("o-new", NEW_PARTIES, key=key)


def assert_nothing_half_written(d: Deployment) -> None:
    """No SQL row, no vault entry, no idempotency record for the failed create;
    Redis (once back) holds exactly SQL's live bindings."""
    with d.services.db.session() as session:
        assert session.scalar(select(func.count()).where(Binding.order_id == "o-new")) == 0
        assert session.scalar(select(func.count()).select_from(IdempotencyRecord)) == 0
        for number in NEW_PARTIES.values():
            assert d.services.vault.lookup(session, number) is None
        live = set(session.scalars(select(Binding.id).where(Binding.status == "active")))
    assert claims(d) == live


def claims(d: Deployment) -> set[str]:
    """Every binding id Redis holds routes for, over the whole pool."""
    return {bid for relay in RELAYS for bid in d.services.numbers.routes.entries(relay)[1]}


def assert_fallbacks_while_down(d: Deployment) -> None:
    """Binding creation: a clean 503 with no number. Webhooks: the apology, and 200s."""
    for reply in (create(d), create(d, key="k-2"), d.api.create_binding("o-new", NEW_PARTIES)):
        assert_clean_503(reply)
        assert_no_party_number(reply.text, [*NEW_PARTIES.values(), BUYER, MERCHANT])
    assert_apology(d.carrier.call(from_number=MERCHANT, to_number=d.relay))
    text = d.carrier.sms(from_number=BUYER, to_number=d.relay, body="hello?")
    assert (text.http_status, text.outcome, text.messages) == (200, "refused", [])
    assert d.carrier.call_status(call_sid="CA" + "a" * 32, from_number=MERCHANT, to_number=d.relay) == 200


def created_once_back(d: Deployment) -> Reply:
    """Retry the create (same key, bounded) until Redis is back; only 503s meanwhile."""
    for _ in range(RETRY_ATTEMPTS):
        reply = create(d)
        if reply.status != 503:
            return reply
        assert_clean_503(reply)
        time.sleep(0.05)  # polling for the recovery, bounded by RETRY_ATTEMPTS
    raise AssertionError("binding creation never recovered after Redis came back")


def assert_recovered(d: Deployment) -> None:
    """The retry with the same key creates the binding once; calls connect again."""
    first = created_once_back(d)
    assert first.status == 201, first
    assert_no_party_number(first.text, list(NEW_PARTIES.values()))
    again = create(d)
    assert (again.status, again.json["id"]) == (201, first.json["id"])
    assert again.headers.get("Idempotent-Replayed") == "true"
    call = d.carrier.call(from_number=MERCHANT, to_number=d.relay)
    assert (call.dialed, call.caller_id) == (BUYER, d.relay)
    new = d.carrier.call(from_number=NEW_PARTIES["merchant"], to_number=first.json["relay_number"])
    assert new.dialed == NEW_PARTIES["buyer"]
    with d.services.db.session() as session:
        assert session.scalar(select(func.count()).where(Binding.order_id == "o-new")) == 1


def test_redis_down_then_back_with_its_data(deployment: Deployment, throwaway_redis: ThrowawayRedis) -> None:
    with throwaway_redis.client() as client:
        client.save()  # the restart below loads this snapshot: a Redis that keeps its data
    throwaway_redis.kill()
    assert_fallbacks_while_down(deployment)
    throwaway_redis.start()
    assert_nothing_half_written(deployment)
    assert_recovered(deployment)


def test_redis_down_then_back_empty_binding_creation_recovers_without_any_call(
    deployment: Deployment, throwaway_redis: ThrowawayRedis
) -> None:
    throwaway_redis.kill()
    assert_clean_503(create(deployment))
    throwaway_redis.start()  # empty: no routes and no generation markers
    # No call comes in to notice the loss: binding creation itself must.
    assert_recovered(deployment)
    assert_nothing_half_written_but_the_new_binding(deployment)


def assert_nothing_half_written_but_the_new_binding(d: Deployment) -> None:
    """Redis holds exactly SQL's live bindings after the rebuild and the retry."""
    with d.services.db.session() as session:
        live = set(session.scalars(select(Binding.id).where(Binding.status == "active")))
    assert claims(d) == live and len(live) == 2
