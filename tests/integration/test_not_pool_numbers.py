"""Calls and texts to a number that is not (or no longer) in the pool.

Twilio only sends maskline what is pointed at it, but an account number
pointed at maskline by mistake must route nowhere without starting a full
route rebuild per call; a pool number whose routes Redis lost must still
start one, and still fail closed meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from prometheus_client import REGISTRY

from maskline import services_of
from maskline.numbers.rebuild import RoutedNumbers
from maskline.numbers.router import Router
from maskline.wiring import Services
from tests.conftest import add_relay_numbers
from tests.integration.conftest import BUYER, MERCHANT, Twilio

NOT_IN_POOL = "+14155550199"  # valid, and nobody put it in the pool


def rejections(reason: str) -> float:
    return REGISTRY.get_sample_value("maskline_webhook_rejections_total", {"reason": reason}) or 0.0


def rebuilds(app: Flask) -> int:
    """Completed automatic rebuilds, after waiting for any one started."""
    rebuilder = services_of(app).numbers.rebuilder
    rebuilder.join()
    return rebuilder.runs


def test_a_call_to_a_number_outside_the_pool_is_refused_and_starts_no_rebuild(
    app: Flask, twilio: Twilio
) -> None:
    before = rejections("not_pool_number")
    answers = [twilio.call(MERCHANT, NOT_IN_POOL) for _ in range(3)]
    for answer in answers:
        assert answer.status == 200 and answer.dialed is None
        assert answer.find("Say") is not None and answer.find("Hangup") is not None
    assert rejections("not_pool_number") == before + 3
    assert rebuilds(app) == 0


def test_a_text_to_a_number_outside_the_pool_is_dropped_and_starts_no_rebuild(
    app: Flask, twilio: Twilio
) -> None:
    before = rejections("not_pool_number")
    answer = twilio.sms(MERCHANT, NOT_IN_POOL, "hello")
    assert answer.status == 200 and answer.find("Message") is None
    assert rejections("not_pool_number") == before + 1
    assert rebuilds(app) == 0


def test_a_retired_number_without_routes_starts_no_rebuild(app: Flask, twilio: Twilio) -> None:
    retired = "+14155550198"
    add_relay_numbers(services_of(app), retired, status="retired")
    services_of(app).redis.delete(f"ml:{{{retired}}}")  # a rebuild gives a retired number no marker
    answer = twilio.call(MERCHANT, retired)
    assert answer.dialed is None and answer.find("Hangup") is not None
    assert rebuilds(app) == 0


def test_a_pool_number_that_lost_its_routes_still_starts_the_rebuild(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    view = bind()
    services_of(app).redis.flushdb()  # Redis came back empty
    before = rejections("unavailable")
    lost = twilio.call(MERCHANT, view.relay_number)
    assert lost.status == 200 and lost.dialed is None  # fail closed: the apology
    assert rejections("unavailable") == before + 1
    assert rebuilds(app) == 1
    assert twilio.call(MERCHANT, view.relay_number).dialed == (view.relay_number, BUYER)


def test_a_number_added_to_the_pool_after_it_was_refused_routes(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    assert twilio.call(MERCHANT, NOT_IN_POOL).dialed is None
    add_relay_numbers(services_of(app), NOT_IN_POOL)
    view = bind(relay_numbers=frozenset({NOT_IN_POOL}))
    assert view.relay_number == NOT_IN_POOL
    assert twilio.call(MERCHANT, NOT_IN_POOL).dialed == (NOT_IN_POOL, BUYER)
    assert rebuilds(app) == 0


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_what_the_pool_says_is_remembered_for_a_while_either_way(services: Services, numbers: Any) -> None:
    ticks = Ticks()
    router = Router(
        db=services.db,
        vault=services.vault,
        routes=numbers.routes,
        rebuilder=numbers.rebuilder,
        routed=RoutedNumbers(db=services.db, ttl_seconds=30, monotonic=ticks),
    )
    assert router.resolve(NOT_IN_POOL, MERCHANT).reason == "not_pool_number"
    # Put in the pool behind the cache's back, without a marker: as if Redis had lost it.
    add_relay_numbers(services, NOT_IN_POOL)
    numbers.routes.client.delete(f"ml:{{{NOT_IN_POOL}}}")
    ticks.now += 29  # remembered: no query per request
    assert router.resolve(NOT_IN_POOL, MERCHANT).reason == "not_pool_number"
    assert numbers.rebuilder.runs == 0
    ticks.now += 2  # asked again: a pool number without routes, so Redis lost them
    assert router.resolve(NOT_IN_POOL, MERCHANT).reason == "unavailable"
    numbers.rebuilder.join()
    assert numbers.rebuilder.runs == 1
    assert router.resolve(NOT_IN_POOL, MERCHANT).reason == "no_binding"  # its marker is back
