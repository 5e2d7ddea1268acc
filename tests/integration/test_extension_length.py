"""Extension length per relay number (issue 17): open (allow-any) bindings get
6-digit extensions on numbers whose extensions are all that long; a live
binding's length never changes; the Gather collects each number's own length."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from maskline import services_of
from maskline.numbers.interfaces import BindRequest, PoolExhausted
from maskline.numbers.rebuild import rebuild_routes
from maskline.numbers.routes import route_key
from tests.integration.conftest import BUYER, COURIER, STRANGER, X1, X2, Twilio, sid

OTHER_BUYER = "+14155550177"


def bind_other(app: Flask, **kw: Any) -> Any:
    """An axe binding of another buyer (one buyer is on a relay number once)."""
    request = BindRequest(order_id="o-9", mode="axe", parties={"buyer": OTHER_BUYER}, **kw)
    return services_of(app).numbers.bindings.bind(request)


def length_of(app: Flask, relay: str) -> int | None:
    value = services_of(app).redis.hget(route_key(relay), "d")
    return None if value is None else int(value)


def test_an_open_binding_gets_six_digits_and_sets_its_number_s_length(
    app: Flask, bind: Callable[..., Any]
) -> None:
    view = bind("axe", allow="any")

    assert view.extension is not None and len(view.extension) == 6 and view.extension[0] != "0"
    assert length_of(app, view.relay_number) == 6


def test_an_allow_listed_binding_keeps_the_deployment_s_length(app: Flask, bind: Callable[..., Any]) -> None:
    view = bind("axe")

    assert view.extension is not None and len(view.extension) == 4
    assert length_of(app, view.relay_number) == 4


def test_an_open_binding_passes_over_a_number_with_short_live_extensions(
    app: Flask, bind: Callable[..., Any]
) -> None:
    listed = bind("axe", prefer_relays=(X1,), order_id="o-1")
    assert listed.relay_number == X1

    opened = bind_other(app, allow="any", prefer_relays=(X1,))

    assert opened.relay_number == X2 and len(opened.extension or "") == 6
    assert length_of(app, X1) == 4  # the printed slip of o-1 keeps its four digits


def test_with_every_number_short_an_open_binding_is_refused_not_shortened(
    app: Flask, bind: Callable[..., Any]
) -> None:
    bind("axe", prefer_relays=(X1,), order_id="o-1")
    bind_other(app, allow=[COURIER], prefer_relays=(X2,))

    with pytest.raises(PoolExhausted):
        request = BindRequest(order_id="o-3", mode="axe", parties={"buyer": STRANGER}, allow="any")
        services_of(app).numbers.bindings.bind(request)


def test_an_allow_listed_binding_takes_a_number_s_longer_live_length(
    app: Flask, bind: Callable[..., Any]
) -> None:
    bind("axe", allow="any", prefer_relays=(X1,), order_id="o-1")

    listed = bind_other(app, allow=[COURIER], prefer_relays=(X1,))

    assert listed.relay_number == X1 and len(listed.extension or "") == 6


def test_a_number_changes_length_only_once_its_extensions_have_ended(
    app: Flask, bind: Callable[..., Any]
) -> None:
    opened = bind("axe", allow="any", prefer_relays=(X1,), order_id="o-1")
    services_of(app).numbers.bindings.unbind(opened.id)

    listed = bind_other(app, allow=[COURIER], prefer_relays=(X1,))

    assert listed.relay_number == X1 and len(listed.extension or "") == 4
    assert length_of(app, X1) == 4


def test_the_gather_collects_six_digits_and_the_extension_connects(
    twilio: Twilio, bind: Callable[..., Any]
) -> None:
    view = bind("axe", allow="any")
    call_sid = sid()

    gather = twilio.call(STRANGER, view.relay_number, call_sid).find("Gather")
    answer = twilio.key(STRANGER, view.relay_number, view.extension, call_sid=call_sid)

    assert gather is not None and gather.get("numDigits") == "6"
    assert answer.dialed == (view.relay_number, BUYER)


def test_a_four_digit_number_still_gathers_four(app: Flask, bind: Callable[..., Any]) -> None:
    twilio = Twilio(app)
    listed = bind("axe", prefer_relays=(X1,), order_id="o-1")
    bind_other(app, allow="any", prefer_relays=(X1,))  # goes to X2

    gather = twilio.call(COURIER, X1).find("Gather")
    other = twilio.call(COURIER, X2).find("Gather")

    assert listed.relay_number == X1
    assert gather is not None and gather.get("numDigits") == "4"
    assert other is not None and other.get("numDigits") == "6"


def test_a_rebuild_gives_each_number_the_length_of_its_live_extensions(
    app: Flask, bind: Callable[..., Any]
) -> None:
    view = bind("axe", allow="any")
    services = services_of(app)
    services.redis.flushdb()

    rebuild_routes(
        db=services.db,
        vault=services.vault,
        routes=services.numbers.routes,
        cooldown=services.settings.cooldown,
        now=services.clock(),
    )

    assert length_of(app, view.relay_number) == 6
