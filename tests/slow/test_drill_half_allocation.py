"""Drill: allocations that died halfway, reconciled by the sweep and the worker.

An allocation claims its relay number in Redis first and commits its SQL row
second; a crash between the two leaves one without the other. The drill
builds both states directly on a throwaway PostgreSQL and Redis: a Redis
claim with no SQL row (it must stop routing and go) and a SQL row with no
routes (it must route again). ``maskline bindings sweep`` and ``maskline
worker --once``, run as the real commands, each reconcile both.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from maskline.numbers.interfaces import BindingView
from maskline.numbers.models import Binding
from maskline.numbers.routes import Party, epoch, short_index, unpack_token
from maskline.numbers.services import new_binding_id
from maskline.wiring import Services
from tests.e2e.conftest import Cli
from tests.slow.conftest import ThrowawayPostgres, ThrowawayRedis
from tests.slow.drills import BUYER, MERCHANT, axb, drill_cli, in_process

pytestmark = pytest.mark.slow

# The parties of the allocation that died after its claim: nothing in SQL knows them.
GHOST_BUYER, GHOST_MERCHANT = "+14155550166", "+12125550166"


@dataclass
class Drill:
    cli: Cli
    services: Services
    kept: BindingView  # committed in SQL; its routes are what gets lost


@pytest.fixture
def drill(
    throwaway_postgres: ThrowawayPostgres, throwaway_redis: ThrowawayRedis, tmp_path: Path
) -> Iterator[Drill]:
    cli = drill_cli(throwaway_postgres, throwaway_redis, tmp_path)
    with in_process(cli) as services:
        yield Drill(cli=cli, services=services, kept=axb(services, "o-kept", BUYER, MERCHANT))


def claim_without_a_row(d: Drill) -> str:
    """What an allocation that died after its Redis claim leaves: a claim, no SQL row.

    Its vault tokens were rolled back with the row, so they name nothing.
    """
    services, now = d.services, dt.datetime.now(dt.UTC)
    binding_id = new_binding_id()
    parties = [
        Party(
            index=short_index(services.vault.index_of(e164)),
            role=role,
            token=unpack_token(secrets.token_bytes(15)),
        )
        for role, e164 in (("buyer", GHOST_BUYER), ("merchant", GHOST_MERCHANT))
    ]
    claimed = services.numbers.routes.claim(
        d.kept.relay_number,
        binding_id=binding_id,
        version=1,
        expires=epoch(now + dt.timedelta(hours=1)),
        mode="axb",
        parties=parties,
        now=epoch(now),
        cooldown=int(services.settings.cooldown.total_seconds()),
        cap=services.settings.max_bindings_per_number,
    )
    assert claimed.outcome == "ok"
    return binding_id


def lose_the_routes_of_the_row(d: Drill) -> None:
    """What an allocation whose claim was lost after its commit leaves: a SQL row, no routes."""
    bindings = d.services.numbers.bindings
    with d.services.db.session() as session:
        row = session.get(Binding, d.kept.id)
        assert row is not None
        indexes = bindings.party_indexes(session, row)
    d.services.numbers.routes.release(
        d.kept.relay_number, binding_id=d.kept.id, extension=None, indexes=indexes
    )


def claimed_ids(d: Drill) -> set[str]:
    return set(d.services.numbers.routes.entries(d.kept.relay_number)[1])


def build_both_orphans(d: Drill) -> str:
    """Both half-written states on the kept binding's relay number; returns the orphan claim's id."""
    orphan = claim_without_a_row(d)
    lose_the_routes_of_the_row(d)
    assert claimed_ids(d) == {orphan}
    router = d.services.numbers.router
    # Half-written, routing is wrong both ways: the ghost routes, the real binding does not.
    assert router.resolve(d.kept.relay_number, GHOST_MERCHANT).binding_id == orphan
    assert router.resolve(d.kept.relay_number, MERCHANT).action == "reject"
    return orphan


def assert_reconciled(d: Drill) -> None:
    """Only the committed binding is claimed, and only its parties route."""
    assert claimed_ids(d) == {d.kept.id}
    router = d.services.numbers.router
    kept = router.resolve(d.kept.relay_number, MERCHANT)
    assert (kept.action, kept.binding_id, kept.target_role) == ("connect", d.kept.id, "buyer")
    assert router.resolve(d.kept.relay_number, GHOST_MERCHANT).action == "reject"


def test_maskline_bindings_sweep_reconciles_both_halves(drill: Drill) -> None:
    build_both_orphans(drill)
    swept = drill.cli.out("bindings", "sweep", "--grace", "0")
    assert "restored 1, orphans released 1" in swept
    assert_reconciled(drill)


def test_the_worker_reconciles_both_halves(drill: Drill) -> None:
    build_both_orphans(drill)
    # The worker's own grace (a claim a moment before its commit is no orphan) applies here.
    ran = drill.cli.run("worker", "--once")
    assert "restored 1, orphans released 1" in ran.stdout
    assert_reconciled(drill)
