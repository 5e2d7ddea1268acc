"""Extension guessing with rotating caller IDs, as the red team ran it, and the
per-number lockdown that stops it without stopping the people who belong."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask

from maskline import services_of
from maskline.numbers.interfaces import BindRequest
from maskline.webhooks.steps import lockdown_key
from tests.integration.conftest import BUYER, COURIER, X1, Twilio, sid

TRY_LATER = "try again later"
OTHER_BUYER = "+14155550177"


def guesser(i: int) -> str:
    """The i-th of the attacker's caller IDs (never a party's)."""
    return f"+1312555{3000 + i:04d}"


def wrong_extension(real: str) -> str:
    return str((int(real) + 1) % 10 ** len(real)).zfill(len(real))


def guess(twilio: Twilio, caller: str, relay: str, digits: str) -> Any:
    call_sid = sid()
    twilio.call(caller, relay, call_sid)
    return twilio.key(caller, relay, digits, call_sid=call_sid)


def flood(twilio: Twilio, relay: str, real: str, calls: int) -> None:
    """``calls`` wrong extensions, each from a caller ID of its own."""
    for i in range(calls):
        twilio.key(guesser(i), relay, wrong_extension(real), call_sid=sid())


def test_guessing_from_many_caller_ids_locks_the_numbers_open_extensions(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    view = bind("axe", allow="any")
    relay, real = view.relay_number, view.extension
    limit = services_of(app).settings.extension_max_failures_per_number
    assert guess(twilio, guesser(900), relay, real).dialed == (relay, BUYER)  # before: open to anyone
    flood(twilio, relay, real, limit + 1)
    right = guess(twilio, guesser(901), relay, real)
    wrong = guess(twilio, guesser(902), relay, wrong_extension(real))
    assert right.dialed is None and TRY_LATER in right.said.lower()
    # The same words whether or not the extension exists: guessing learns nothing.
    assert wrong.said == right.said


def test_a_thousand_wrong_calls_cannot_stop_a_returning_courier_or_an_allow_listed_caller(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    # Two slips on one relay number: an open extension, and one whose
    # allow-list names the courier.
    slip = bind("axe", allow="any", order_id="o-slip", relay_numbers=frozenset({X1}))
    request = BindRequest(
        order_id="o-listed",
        mode="axe",
        parties={"buyer": OTHER_BUYER},
        allow=[COURIER],
        relay_numbers=frozenset({X1}),
    )
    listed = services_of(app).numbers.bindings.bind(request)
    relay = X1
    returning = guesser(999)
    assert guess(twilio, returning, relay, slip.extension).dialed == (relay, BUYER)  # called yesterday
    flood(twilio, relay, slip.extension, 1000)
    assert services_of(app).redis.exists(lockdown_key(relay))
    assert guess(twilio, returning, relay, slip.extension).dialed == (relay, BUYER)
    assert guess(twilio, COURIER, relay, listed.extension).dialed == (relay, OTHER_BUYER)
    assert guess(twilio, guesser(5000), relay, slip.extension).dialed is None


def test_a_lockdown_raises_an_alert_with_the_count(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    view = bind("axe", allow="any")
    services = services_of(app)
    limit = services.settings.extension_max_failures_per_number
    flood(twilio, view.relay_number, view.extension, limit + 1)
    services.alerts.drain()
    with services.db.session() as session:
        alerts = [a for a in services.alerts.recent(session) if a.kind == "extension_lockdown"]
    assert [a.subject for a in alerts] == [f"relay:{view.relay_number}"]
    assert alerts[0].detail["wrong_extensions"] == limit + 1


def test_a_few_wrong_extensions_lock_no_one_out_of_the_number(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    view = bind("axe", allow="any")
    limit = services_of(app).settings.extension_max_failures_per_number
    flood(twilio, view.relay_number, view.extension, limit)  # at the limit, not past it
    assert guess(twilio, guesser(7000), view.relay_number, view.extension).dialed == (
        view.relay_number,
        BUYER,
    )


def test_an_operator_can_lift_a_lockdown_early(app: Flask, twilio: Twilio, bind: Callable[..., Any]) -> None:
    view = bind("axe", allow="any")
    routes = services_of(app).numbers.routes
    flood(
        twilio,
        view.relay_number,
        view.extension,
        services_of(app).settings.extension_max_failures_per_number + 1,
    )
    assert routes.extension_lockdown_left(view.relay_number) > 0
    assert routes.lift_extension_lockdown(view.relay_number) is True
    assert routes.extension_lockdown_left(view.relay_number) == 0
    assert guess(twilio, guesser(8000), view.relay_number, view.extension).dialed == (
        view.relay_number,
        BUYER,
    )
