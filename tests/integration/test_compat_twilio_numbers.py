"""The Twilio Proxy face's number choice and session life, driven by the
unmodified ``twilio`` SDK: a Service's PhoneNumbers are its sessions' pool
(reserved ones only when named), ``ProxyIdentifier`` / ``ProxyIdentifierSid``,
``number_selection_behavior``, ``geo_match_level``, a ``ttl`` counted from
the last interaction, and the session-mode check skipped while no session
restricts its mode. Real PostgreSQL / Redis when configured; the clock is
passed in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from maskline import services_of
from maskline.compat.twilio.callbacks import CallbackWorker
from maskline.compat.twilio.intercept import REFRESH, Interceptor
from maskline.compat.twilio.interfaces import derived_sid
from maskline.compat.twilio.models import ProxySession
from maskline.numbers.interfaces import BindingView, BindRequest
from maskline.numbers.models import Binding
from maskline.webhooks.interfaces import StepDecision
from tests.compat_twilio_helpers import FakeTwilioMessages, app_serving, credentials, twilio_with_messages
from tests.conftest import EPOCH, add_relay_numbers
from tests.integration.conftest import (
    AUTH_TOKEN,
    BUYER,
    COURIER,
    MERCHANT,
    STRANGER,
    X1,
    X2,
    AppMaker,
    Twilio,
    without_party_digits,
)
from tests.twilio_server import ACCOUNT_SID

PUBLIC = "https://relay.example.com"
# More relay numbers, in other places: New York (212), Boston (617), London.
NY, BOSTON, LONDON = "+12125550100", "+16175550100", "+442071838750"


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilioMessages]:
    with twilio_with_messages(AUTH_TOKEN) as fake:
        yield fake


@pytest.fixture
def app(make_app: AppMaker, fake_twilio: FakeTwilioMessages) -> Flask:
    app = make_app(public_url=PUBLIC, twilio_account_sid=ACCOUNT_SID, twilio_api_url=fake_twilio.url)
    add_relay_numbers(services_of(app), NY, BOSTON, LONDON)
    return app


@pytest.fixture
def client(app: Flask) -> Iterator[Client]:
    with app_serving(app) as url:
        yield credentials(app, "shop-a").client(url)


def service_with(client: Client, *numbers: str, reserved: tuple[str, ...] = (), **fields: Any) -> Any:
    created = client.proxy.v1.services.create(
        unique_name=f"s-{len(client.proxy.v1.services.list())}", **fields
    )
    for number in numbers:
        client.proxy.v1.services(created.sid).phone_numbers.create(
            phone_number=number, is_reserved=number in reserved
        )
    return created


def session_of(
    client: Client, service: Any, first: dict[str, Any], second: dict[str, Any], **fields: Any
) -> tuple[Any, Any, Any]:
    """A new session of ``service`` with two participants (the keyword arguments of each)."""
    session = client.proxy.v1.services(service.sid).sessions.create(**fields)
    participants = client.proxy.v1.services(service.sid).sessions(session.sid).participants
    one = participants.create(**first)
    two = participants.create(**second)
    return session, one, two


def refused(action: Any) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as caught:
        action()
    return caught.value


def bindings(app: Flask) -> list[Binding]:
    with services_of(app).db.session() as db:
        return list(db.scalars(select(Binding)))


def load(app: Flask, relay: str, *pairs: tuple[str, str]) -> list[BindingView]:
    """Bindings of other orders on ``relay`` (they make it the more loaded number)."""
    return [
        services_of(app).numbers.bindings.bind(
            BindRequest(
                order_id=f"load-{relay}-{i}",
                mode="axb",
                parties={"buyer": a, "merchant": b},
                relay_numbers=frozenset({relay}),
            )
        )
        for i, (a, b) in enumerate(pairs)
    ]


BUYER_2, MERCHANT_2, BUYER_3, MERCHANT_3 = "+14155550176", "+12125550187", "+14155550198", "+12125550109"


# -- a Service's numbers are its sessions' pool ----------------------------------------------


def test_sessions_bind_only_to_the_service_s_unreserved_numbers(app: Flask, client: Client) -> None:
    service = service_with(client, X1, X2, reserved=(X1,))
    _session, first, _second = session_of(client, service, {"identifier": BUYER}, {"identifier": MERCHANT})

    assert first.proxy_identifier == X2
    (binding,) = bindings(app)
    assert binding.relay_number == X2
    # The same pair again: X2 carries it already, and reserved X1 is not taken though free.
    error = refused(lambda: session_of(client, service, {"identifier": BUYER}, {"identifier": MERCHANT}))
    assert (error.status, error.code) == (400, 80208) and "PhoneNumbers:" in error.msg
    assert len(bindings(app)) == 1


def test_numbers_outside_the_service_are_never_taken(app: Flask, client: Client) -> None:
    service = service_with(client, NY)
    for buyer, merchant in ((BUYER, MERCHANT), (BUYER_2, MERCHANT_2), (BUYER_3, MERCHANT_3)):
        session_of(client, service, {"identifier": buyer}, {"identifier": merchant})

    assert {b.relay_number for b in bindings(app)} == {NY}


@pytest.mark.parametrize(
    ("numbers", "reserved", "code"),
    [((), (), 80205), ((X1, X2), (X1, X2), 80207)],
    ids=["no numbers", "only reserved numbers"],
)
def test_a_service_without_usable_numbers_refuses_sessions_with_proxy_s_code(
    app: Flask, client: Client, numbers: tuple[str, ...], reserved: tuple[str, ...], code: int
) -> None:
    service = service_with(client, *numbers, reserved=reserved)
    session = client.proxy.v1.services(service.sid).sessions.create()
    participants = client.proxy.v1.services(service.sid).sessions(session.sid).participants

    # The first participant gets its number at once: no number, no participant.
    error = refused(lambda: participants.create(identifier=BUYER))
    assert (error.status, error.code) == (400, code) and "PhoneNumbers:" in error.msg
    assert without_party_digits(error.msg)
    assert len(participants.list()) == 0 and bindings(app) == []


# -- ProxyIdentifier / ProxyIdentifierSid ----------------------------------------------------------


@pytest.mark.parametrize("by", ["proxy_identifier", "proxy_identifier_sid"])
def test_a_named_number_is_the_session_s_even_if_reserved(app: Flask, client: Client, by: str) -> None:
    service = service_with(client, X1, X2, reserved=(X2,))
    named = X2 if by == "proxy_identifier" else derived_sid("phone_number", X2)
    session, first, second = session_of(
        client, service, {"identifier": BUYER, by: named}, {"identifier": MERCHANT}
    )

    assert first.proxy_identifier == X2 == second.proxy_identifier  # told at once, as Twilio does
    assert first.proxy_identifier_sid == derived_sid("phone_number", X2)
    assert Twilio(app, base=PUBLIC).call(MERCHANT, X2).dialed == (X2, BUYER)
    participants = client.proxy.v1.services(service.sid).sessions(session.sid).participants
    assert {p.proxy_identifier for p in participants.list()} == {X2}


def test_both_participants_naming_the_same_number_is_fine(app: Flask, client: Client) -> None:
    service = service_with(client, X1, X2)
    _session, _first, second = session_of(
        client,
        service,
        {"identifier": BUYER, "proxy_identifier": X1},
        {"identifier": MERCHANT, "proxy_identifier_sid": derived_sid("phone_number", X1)},
    )

    assert second.proxy_identifier == X1


def test_participants_naming_different_numbers_are_refused(app: Flask, client: Client) -> None:
    service = service_with(client, X1, X2)
    session = client.proxy.v1.services(service.sid).sessions.create()
    participants = client.proxy.v1.services(service.sid).sessions(session.sid).participants
    participants.create(identifier=BUYER, proxy_identifier=X1)

    error = refused(lambda: participants.create(identifier=MERCHANT, proxy_identifier=X2))
    assert (error.status, error.code) == (400, 20001) and "ProxyIdentifier:" in error.msg
    assert len(participants.list()) == 1 and bindings(app) == []


def test_a_named_number_that_cannot_take_the_session_is_refused_not_replaced(
    app: Flask, client: Client
) -> None:
    service = service_with(client, X1, X2)
    session_of(client, service, {"identifier": BUYER, "proxy_identifier": X1}, {"identifier": MERCHANT})

    # The buyer is on X1 already; X2 is free, but it was not asked for.
    error = refused(
        lambda: session_of(
            client, service, {"identifier": BUYER, "proxy_identifier": X1}, {"identifier": COURIER}
        )
    )
    assert (error.status, error.code) == (400, 80208) and "ProxyIdentifier:" in error.msg
    assert [b.relay_number for b in bindings(app)] == [X1]


def test_a_session_created_with_participants_may_name_its_number(app: Flask, client: Client) -> None:
    service = service_with(client, X1, X2)
    session = client.proxy.v1.services(service.sid).sessions.create(
        participants=[{"Identifier": BUYER, "ProxyIdentifier": X2}, {"Identifier": MERCHANT}]
    )

    listed = client.proxy.v1.services(service.sid).sessions(session.sid).participants.list()
    assert [p.proxy_identifier for p in listed] == [X2, X2]


# -- number_selection_behavior -----------------------------------------------------------------------


def closed_earlier_on(app: Flask, client: Client, service: Any, relay: str, make_app: AppMaker) -> None:
    """A session of the pair on ``relay``, closed, then the cool-down passes."""
    session, _first, _second = session_of(
        client, service, {"identifier": BUYER, "proxy_identifier": relay}, {"identifier": MERCHANT}
    )
    client.proxy.v1.services(service.sid).sessions(session.sid).update(status="closed")
    make_app.clock.advance(seconds=services_of(app).settings.cooldown.total_seconds() + 60)


def test_prefer_sticky_gives_a_pair_the_number_of_their_last_session(
    app: Flask, client: Client, make_app: AppMaker
) -> None:
    service = service_with(client, X1, X2)  # prefer-sticky is the default
    closed_earlier_on(app, client, service, X2, make_app)
    load(app, X2, (COURIER, STRANGER))  # without stickiness, X1 (less loaded) would be chosen

    _session, first, _second = session_of(client, service, {"identifier": BUYER}, {"identifier": MERCHANT})
    assert first.proxy_identifier == _second.proxy_identifier == X2


def test_avoid_sticky_leaves_the_last_number_out_while_another_is_free(
    app: Flask, client: Client, make_app: AppMaker
) -> None:
    service = service_with(client, X1, X2, number_selection_behavior="avoid-sticky")
    closed_earlier_on(app, client, service, X2, make_app)
    load(app, X1, (COURIER, STRANGER))  # without avoiding, X2 (less loaded) would be chosen

    _session, _first, second = session_of(client, service, {"identifier": BUYER}, {"identifier": MERCHANT})
    assert second.proxy_identifier == X1


def test_avoid_sticky_takes_the_last_number_when_no_other_is_free(
    app: Flask, client: Client, make_app: AppMaker
) -> None:
    service = service_with(client, X1, X2, number_selection_behavior="avoid-sticky")
    closed_earlier_on(app, client, service, X2, make_app)
    load(app, X1, (BUYER, STRANGER))  # the buyer is on X1 now

    _session, _first, second = session_of(client, service, {"identifier": BUYER}, {"identifier": MERCHANT})
    assert second.proxy_identifier == X2


# -- geo_match_level ---------------------------------------------------------------------------------


@pytest.mark.parametrize("level", ["area-code", "overlay", "radius"])
def test_an_area_level_takes_a_number_in_a_participant_s_area_code(
    app: Flask, client: Client, level: str
) -> None:
    service = service_with(client, BOSTON, NY, geo_match_level=level)
    # MERCHANT, the first participant, is in 212: only NY matches; BUYER shares it.
    _session, first, second = session_of(client, service, {"identifier": MERCHANT}, {"identifier": BUYER})
    assert first.proxy_identifier == second.proxy_identifier == NY

    # Neither 415 nor 312 has a number in this Service.
    error = refused(lambda: session_of(client, service, {"identifier": BUYER_2}, {"identifier": COURIER}))
    assert (error.status, error.code) == (400, 80206) and "GeoMatchLevel:" in error.msg
    assert without_party_digits(error.msg)
    assert len(bindings(app)) == 1


def test_the_country_level_takes_a_number_in_the_participants_country(app: Flask, client: Client) -> None:
    service = service_with(client, LONDON, geo_match_level="country")
    error = refused(lambda: session_of(client, service, {"identifier": BUYER}, {"identifier": MERCHANT}))

    assert (error.status, error.code) == (400, 80203) and "GeoMatchLevel:" in error.msg
    client.proxy.v1.services(service.sid).phone_numbers.create(phone_number=BOSTON)
    _session, _first, second = session_of(client, service, {"identifier": BUYER}, {"identifier": MERCHANT})
    assert second.proxy_identifier == BOSTON


def test_a_named_number_is_not_held_to_the_geo_match_level(app: Flask, client: Client) -> None:
    service = service_with(client, BOSTON, geo_match_level="area-code")
    _session, _first, second = session_of(
        client, service, {"identifier": BUYER, "proxy_identifier": BOSTON}, {"identifier": MERCHANT}
    )

    assert second.proxy_identifier == BOSTON


# -- ttl counted from the last interaction -----------------------------------------------------------


def worker(app: Flask) -> CallbackWorker:
    return CallbackWorker(services=services_of(app), jitter=lambda: 1.0)


def call_at(app: Flask, relay: str, make_app: AppMaker, call_sid: str) -> None:
    twilio = Twilio(app, base=PUBLIC)
    assert twilio.call(BUYER, relay, call_sid=call_sid).dialed == (relay, MERCHANT)
    twilio.call_status(call_sid, "completed", duration=5)


def test_a_session_s_ttl_counts_from_its_last_interaction(
    app: Flask, client: Client, make_app: AppMaker
) -> None:
    service = service_with(client, X1)
    session, _first, second = session_of(
        client, service, {"identifier": BUYER}, {"identifier": MERCHANT}, ttl=300
    )
    make_app.clock.advance(seconds=200)
    call_at(app, X1, make_app, "CA" + "a" * 32)

    assert worker(app).run_once(make_app.clock()).extended == 1
    fetched = client.proxy.v1.services(service.sid).sessions(session.sid).fetch()
    assert fetched.date_expiry == EPOCH + dt.timedelta(seconds=500)
    make_app.clock.advance(seconds=250)  # past creation + ttl, within last interaction + ttl
    assert Twilio(app, base=PUBLIC).call(MERCHANT, X1).dialed == (X1, BUYER)
    make_app.clock.advance(seconds=60)
    assert Twilio(app, base=PUBLIC).call(MERCHANT, X1).dialed is None
    assert second.proxy_identifier == X1


def test_a_service_s_default_ttl_also_counts_from_the_last_interaction(
    app: Flask, client: Client, make_app: AppMaker
) -> None:
    service = service_with(client, X1, default_ttl=600)
    session, _first, _second = session_of(client, service, {"identifier": BUYER}, {"identifier": MERCHANT})
    make_app.clock.advance(seconds=100)
    call_at(app, X1, make_app, "CA" + "b" * 32)
    worker(app).run_once(make_app.clock())

    fetched = client.proxy.v1.services(service.sid).sessions(session.sid).fetch()
    assert fetched.date_expiry == EPOCH + dt.timedelta(seconds=700)
    assert worker(app).run_once(make_app.clock()).extended == 0  # done once


def test_a_date_expiry_and_a_closed_session_are_not_extended(
    app: Flask, client: Client, make_app: AppMaker
) -> None:
    service = service_with(client, X1, X2, default_ttl=600)
    fixed_at = EPOCH + dt.timedelta(seconds=300)
    fixed, _first, _second = session_of(
        client, service, {"identifier": BUYER}, {"identifier": MERCHANT}, date_expiry=fixed_at
    )
    closed, _one, _two = session_of(
        client, service, {"identifier": COURIER}, {"identifier": STRANGER}, ttl=300
    )
    make_app.clock.advance(seconds=100)
    call_at(app, _second.proxy_identifier, make_app, "CA" + "c" * 32)
    twilio = Twilio(app, base=PUBLIC)
    twilio.call(COURIER, _two.proxy_identifier, call_sid="CA" + "d" * 32)
    twilio.call_status("CA" + "d" * 32, "completed", duration=3)
    client.proxy.v1.services(service.sid).sessions(closed.sid).update(status="closed")

    assert worker(app).run_once(make_app.clock()).extended == 0
    sessions = client.proxy.v1.services(service.sid).sessions
    assert sessions(fixed.sid).fetch().date_expiry == fixed_at
    assert sessions(closed.sid).fetch().status == "closed"
    with services_of(app).db.session() as db:
        binding_id = db.scalar(select(ProxySession.binding_id).where(ProxySession.sid == fixed.sid))
        assert db.get(Binding, binding_id).expires_at == fixed_at  # type: ignore[union-attr]


# -- the session-mode check is skipped while no session restricts its mode ----------------------------


def test_the_mode_check_costs_nothing_until_a_session_restricts_its_mode(
    app: Flask, client: Client, make_app: AppMaker
) -> None:
    now = [0.0]
    interceptor = Interceptor(services=services_of(app), monotonic=lambda: now[0])
    plain = services_of(app).numbers.bindings.bind(
        BindRequest(order_id="o-plain", mode="axb", parties={"buyer": BUYER_2, "merchant": MERCHANT_2})
    )
    text = StepDecision(action="connect", binding_id=plain.id, from_role="buyer", target_role="merchant")

    assert interceptor("sms", text, "SM" + "1" * 32) is True
    assert interceptor._modes == {}  # no per-binding lookup was made
    # The app's own interceptor has looked too, and found no restricted session.
    forwarded = Twilio(app, base=PUBLIC).sms(BUYER_2, plain.relay_number, "hi").find("Message")
    assert forwarded is not None and forwarded.get("to") == MERCHANT_2

    service = service_with(client, X1)
    session_of(client, service, {"identifier": BUYER}, {"identifier": MERCHANT}, mode="voice-only")
    with services_of(app).db.session() as db:
        binding_id = db.scalar(select(ProxySession.binding_id).where(ProxySession.mode == "voice-only"))
    restricted = StepDecision(action="connect", binding_id=binding_id, from_role="participant1")
    # Another process learns of the first restricted session within REFRESH seconds...
    now[0] += REFRESH + 1
    assert interceptor("sms", restricted, "SM" + "2" * 32) is False
    assert interceptor("call", restricted, "CA" + "2" * 32) is True
    # ... and the process that made it, at once (the app's own interceptor).
    answer = Twilio(app, base=PUBLIC).sms(BUYER, X1, "hello")
    assert answer.find("Message") is None
