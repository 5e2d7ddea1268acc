"""Drill: Redis loses all its data (FLUSHALL) while calls come in.

test_webhooks_redis_down kills Redis and restarts it empty; here Redis stays
up and answers, but everything in it, the generation markers included, is
gone. What must hold: while the routes are missing a call gets the apology
(routing "unavailable"), never a refusal as if the number had no binding and
never a connection; the routes come back from SQL by themselves (the server
and the worker notice the loss) and with ``maskline routes rebuild``; then
every live binding routes again and no expired or unbound one does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest

from maskline.clock import FixedClock
from maskline.numbers.interfaces import BindingView, BindRequest, RouteDecision
from maskline.numbers.router import Router
from maskline.sim.carrier import CallResult, CarrierSimulator
from maskline.wiring import Services
from tests.e2e.conftest import Cli, serving
from tests.slow.conftest import ThrowawayPostgres, ThrowawayRedis
from tests.slow.drills import (
    APOLOGY,
    BUYER,
    COURIER,
    MERCHANT,
    STRANGER,
    Traffic,
    assert_apology,
    assert_refused,
    axb,
    carrier_for,
    drill_cli,
    in_process,
    running,
)

pytestmark = pytest.mark.slow

GONE_BUYER, GONE_MERCHANT = "+14155550177", "+12125550177"
OLD_BUYER, OLD_MERCHANT = "+14155550188", "+12125550188"


@dataclass
class Fleet:
    """One binding of each kind that routing must tell apart after a rebuild."""

    live: BindingView  # axb: BUYER and MERCHANT
    slip: BindingView  # axe: BUYER, COURIER allowed
    unbound: BindingView  # axb: GONE_*, ended by unbind (cooling down)
    expired: BindingView  # axb: OLD_*, made two days ago with a one-hour life


@pytest.fixture
def fleet_cli(throwaway_postgres: ThrowawayPostgres, throwaway_redis: ThrowawayRedis, tmp_path: Path) -> Cli:
    return drill_cli(throwaway_postgres, throwaway_redis, tmp_path)


@pytest.fixture
def fleet(fleet_cli: Cli) -> Fleet:
    now = dt.datetime.now(dt.UTC)
    # The clock is passed in: the expired binding is made in the past, not waited for.
    clock = FixedClock(now - dt.timedelta(days=2))
    with in_process(fleet_cli, clock=clock) as services:
        expired = axb(services, "o-old", OLD_BUYER, OLD_MERCHANT, ttl=dt.timedelta(hours=1))
        clock.now = now
        live = axb(services, "o-live", BUYER, MERCHANT)
        slip = services.numbers.bindings.bind(
            BindRequest(order_id="o-slip", mode="axe", parties={"buyer": BUYER}, allow=[COURIER])
        )
        gone = axb(services, "o-gone", GONE_BUYER, GONE_MERCHANT)
        unbound = services.numbers.bindings.unbind(gone.id)
    assert expired.expires_at < now and unbound.status == "unbound"
    return Fleet(live=live, slip=slip, unbound=unbound, expired=expired)


def flush(server: ThrowawayRedis) -> None:
    """Every key gone, generation markers included; the server stays up."""
    with server.client() as client:
        client.flushall()
        assert client.dbsize() == 0


# -- through the running server: the automatic rebuild ------------------------------


def merchant_calls(fleet: Fleet, carrier: CarrierSimulator) -> Traffic[CallResult]:
    """The merchant calling the live binding's relay number, over and over."""
    return Traffic(lambda _i: carrier.call(from_number=MERCHANT, to_number=fleet.live.relay_number))


def connected_after_an_apology(outcomes: list[CallResult]) -> bool:
    """The loss was seen (an apology), and after it a call connected again."""
    apologies = [i for i, r in enumerate(outcomes) if r.said == [APOLOGY]]
    return bool(apologies) and any(r.outcome == "connected" for r in outcomes[apologies[0] :])


def assert_clean_call(result: CallResult, fleet: Fleet) -> None:
    """The merchant reached the buyer from the relay number, or got the apology."""
    if result.outcome == "connected":
        assert (result.dialed, result.caller_id) == (BUYER, fleet.live.relay_number), result
    else:
        assert_apology(result)


def test_calls_during_a_data_loss_get_the_apology_until_the_server_rebuilds_by_itself(
    fleet: Fleet, fleet_cli: Cli, throwaway_redis: ThrowawayRedis, tmp_path: Path
) -> None:
    with serving(fleet_cli, tmp_path / "serve.log") as server:
        carrier = carrier_for(server)
        traffic = merchant_calls(fleet, carrier)
        with running(traffic):
            traffic.wait_for_more(3)
            rebuilds = server.log_text().count("rebuilt routes for")  # the one at start-up
            flush(throwaway_redis)  # mid-traffic
            # Nobody runs a rebuild: the first call to find the marker gone starts one.
            traffic.wait_until(connected_after_an_apology)
        outcomes = traffic.stop()
        assert server.log_text().count("rebuilt routes for") > rebuilds
        for result in outcomes:
            assert_clean_call(result, fleet)
        assert_calls_match_sql(fleet, carrier)


def assert_calls_match_sql(fleet: Fleet, carrier: CarrierSimulator) -> None:
    """Live bindings connect (relay number as caller ID); expired, unbound and strangers reach no one."""
    live = fleet.live.relay_number
    merchant = carrier.call(from_number=MERCHANT, to_number=live)
    assert (merchant.dialed, merchant.caller_id) == (BUYER, live)
    assert carrier.call(from_number=BUYER, to_number=live).dialed == MERCHANT
    slip = fleet.slip
    courier = carrier.call(from_number=COURIER, to_number=slip.relay_number, digits=[slip.extension or ""])
    assert (courier.dialed, courier.caller_id) == (BUYER, slip.relay_number)
    for caller, relay in [
        (GONE_MERCHANT, fleet.unbound.relay_number),
        (GONE_BUYER, fleet.unbound.relay_number),
        (OLD_MERCHANT, fleet.expired.relay_number),
        (OLD_BUYER, fleet.expired.relay_number),
        (STRANGER, live),
    ]:
        assert_refused(carrier.call(from_number=caller, to_number=relay))


# -- from the command line: `maskline routes rebuild` and `maskline worker` ------------


def checking_router(services: Services) -> Router:
    """A router that only looks: no automatic rebuild of its own to mask a missing one."""
    return Router(db=services.db, vault=services.vault, routes=services.numbers.routes)


def assert_decisions_match_sql(router: Router, fleet: Fleet) -> None:
    """Live bindings connect; the unbound and the expired one are refused as such."""
    live = router.resolve(fleet.live.relay_number, MERCHANT)
    assert (live.action, live.binding_id, live.target_role) == ("connect", fleet.live.id, "buyer")
    slip = router.resolve(fleet.slip.relay_number, COURIER, fleet.slip.extension)
    assert (slip.action, slip.binding_id) == ("connect", fleet.slip.id)
    for caller, relay in [
        (GONE_MERCHANT, fleet.unbound.relay_number),
        (OLD_MERCHANT, fleet.expired.relay_number),
        (STRANGER, fleet.live.relay_number),
    ]:
        dead = router.resolve(relay, caller)
        assert dead.action == "reject" and dead.reason != "unavailable", dead


def test_maskline_routes_rebuild_and_the_worker_restore_live_bindings_only(
    fleet: Fleet, fleet_cli: Cli, throwaway_redis: ThrowawayRedis
) -> None:
    with in_process(fleet_cli) as services:
        router = checking_router(services)
        flush(throwaway_redis)
        # No marker: "unavailable", not "no binding", even for a caller with none.
        for caller in (MERCHANT, STRANGER):
            assert router.resolve(fleet.live.relay_number, caller) == RouteDecision.reject("unavailable")
        rebuilt = fleet_cli.out("routes", "rebuild")
        assert rebuilt.startswith("rebuilt routes for 3 relay numbers")
        assert_decisions_match_sql(router, fleet)

        flush(throwaway_redis)
        ran = fleet_cli.run("worker", "--once")
        assert "routing data missing for 3 numbers: rebuilding" in ran.stderr
        assert_decisions_match_sql(router, fleet)
