"""The Twilio Proxy face's out-of-session callback: a call or text to a
Service's number that no live session routes is told to the Service's
``out_of_session_callback_url`` (queued on the webhook path, sent signed by
the worker), with the caller masked; the caller still gets maskline's refusal.
Real PostgreSQL / Redis when configured; the clock is passed in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from flask import Flask
from sqlalchemy import select
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from maskline import services_of
from maskline.compat.twilio.callbacks import CallbackWorker, post_form
from maskline.compat.twilio.models import ProxyCallback
from maskline.compat.twilio.outofsession import OutOfSession
from maskline.compat.twilio.services import mask_identifier
from maskline.numbers.interfaces import BindRequest
from maskline.outbound import OutboundPolicy
from tests.compat_twilio_helpers import app_serving, credentials
from tests.integration.conftest import (
    BUYER,
    MERCHANT,
    STRANGER,
    X1,
    X2,
    AppMaker,
    Twilio,
    without_party_digits,
)
from tests.receiver import Receiver, receiving

PUBLIC = "https://relay.example.com"

# The test receiver listens on loopback, which testing allows.
LOCAL = OutboundPolicy.for_settings(production=False)


@pytest.fixture
def app(make_app: AppMaker) -> Flask:
    return make_app(public_url=PUBLIC)


@pytest.fixture
def client(app: Flask) -> Iterator[Client]:
    with app_serving(app) as url:
        yield credentials(app, "shop-a").client(url)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as started:
        yield started


@pytest.fixture
def service(client: Client, receiver: Receiver) -> Any:
    created = client.proxy.v1.services.create(
        unique_name="oos", out_of_session_callback_url=receiver.url("/oos")
    )
    client.proxy.v1.services(created.sid).phone_numbers.create(phone_number=X1)
    return created


def sent(app: Flask, make_app: AppMaker, receiver: Receiver, token: str) -> list[dict[str, str]]:
    """Run the worker; the forms it sent, each checked to be signed as Twilio signs."""
    CallbackWorker(services=services_of(app), jitter=lambda: 1.0).run_once(make_app.clock())
    forms = []
    for got in receiver.received:
        form = {k: v[-1] for k, v in parse_qs(got.body.decode()).items()}
        assert RequestValidator(token).validate(receiver.url("/oos"), form, got.headers["X-Twilio-Signature"])
        forms.append(form)
    return forms


def queued(app: Flask) -> list[ProxyCallback]:
    with services_of(app).db.session() as db:
        return list(db.scalars(select(ProxyCallback)))


def test_a_stranger_s_call_is_called_back_masked_and_still_refused(
    app: Flask, make_app: AppMaker, client: Client, service: Any, receiver: Receiver
) -> None:
    twilio = Twilio(app, base=PUBLIC)
    call_sid = "CA" + "e" * 32
    answer = twilio.call(STRANGER, X1, call_sid=call_sid)
    twilio.call(STRANGER, X1, call_sid=call_sid)  # Twilio retries: told once

    assert answer.dialed is None and answer.said  # maskline's refusal, whatever the callback says
    (form,) = sent(app, make_app, receiver, client.password)
    assert (form["CallSid"], form["To"], form["From"]) == (call_sid, X1, mask_identifier(STRANGER))
    assert (form["AccountSid"], form["interactionServiceSid"]) == (client.username, service.sid)
    assert (form["inboundResourceType"], form["outOfSessionReason"]) == ("Call", "no-session")
    assert without_party_digits(repr(form))


def test_a_text_to_a_closed_session_names_the_session_but_not_the_body(
    app: Flask, make_app: AppMaker, client: Client, service: Any, receiver: Receiver
) -> None:
    sessions = client.proxy.v1.services(service.sid).sessions
    session = sessions.create(participants=[{"Identifier": BUYER}, {"Identifier": MERCHANT}])
    sessions(session.sid).update(status="closed")

    answer = Twilio(app, base=PUBLIC).sms(BUYER, X1, "call me on 415 555 0132")

    assert answer.find("Message") is None
    (form,) = sent(app, make_app, receiver, client.password)
    assert (form["MessageSid"][:2], form["inboundResourceType"]) == ("SM", "Message")
    assert form["outOfSessionReason"] in ("session-closed", "not-a-participant")
    assert form.get("interactionSessionSid") == session.sid
    assert "Body" not in form and without_party_digits(repr(form))


def test_a_live_session_s_calls_are_not_out_of_session(
    app: Flask, make_app: AppMaker, client: Client, service: Any, receiver: Receiver
) -> None:
    client.proxy.v1.services(service.sid).sessions.create(
        participants=[{"Identifier": BUYER}, {"Identifier": MERCHANT}]
    )

    assert Twilio(app, base=PUBLIC).call(BUYER, X1).dialed == (X1, MERCHANT)
    assert queued(app) == []


def test_numbers_of_no_service_with_the_url_are_not_called_back(
    app: Flask, client: Client, service: Any, receiver: Receiver
) -> None:
    other = client.proxy.v1.services.create(unique_name="quiet")
    client.proxy.v1.services(other.sid).phone_numbers.create(phone_number=X2)

    assert Twilio(app, base=PUBLIC).call(STRANGER, X2).dialed is None
    assert queued(app) == []


def test_without_any_out_of_session_url_a_refusal_costs_a_lookup(app: Flask, client: Client) -> None:
    listener = OutOfSession(services=services_of(app))
    view = services_of(app).numbers.bindings.bind(
        BindRequest(order_id="o-1", mode="axb", parties={"buyer": BUYER, "merchant": MERCHANT})
    )
    hooks = app.extensions["maskline.webhooks"].service
    hooks.rejections.append(listener)

    assert Twilio(app, base=PUBLIC).call(STRANGER, view.relay_number).dialed is None
    assert listener._by_relay == {} and queued(app) == []


def test_a_failing_listener_changes_nothing_for_the_caller(
    app: Flask, client: Client, service: Any, receiver: Receiver
) -> None:
    twilio = Twilio(app, base=PUBLIC)
    before = twilio.call(STRANGER, X1).text

    def broken(*_args: Any) -> None:
        raise RuntimeError("listener down")

    app.extensions["maskline.webhooks"].service.rejections.insert(0, broken)
    assert twilio.call(STRANGER, X1).text == before
    view = services_of(app).numbers.bindings.bind(
        BindRequest(order_id="o-2", mode="axb", parties={"buyer": BUYER, "merchant": MERCHANT})
    )
    assert twilio.call(BUYER, view.relay_number).dialed == (view.relay_number, MERCHANT)
    assert len(receiver.received) == 2  # the listeners after the broken one still ran


def answering(app: Flask, answer: dict[str, Any]) -> None:
    """The app's out-of-session listener, with the customer's server answering ``answer``."""

    def send(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
        return post_form(url, body, headers, timeout, policy=LOCAL), json.dumps(answer).encode()

    hooks = app.extensions["maskline.webhooks"].service
    hooks.rejections[:] = [
        OutOfSession(services=services_of(app), send=send) if isinstance(listener, OutOfSession) else listener
        for listener in hooks.rejections
    ]


def test_an_auto_create_answer_connects_the_call_that_triggered_it(
    app: Flask, client: Client, service: Any, receiver: Receiver
) -> None:
    """Proxy's "online directory": the out-of-session callback is answered
    while the call waits, with auto-create JSON (Twilio's "Out-of-Session
    Callback Response Guide": TwiML or auto-create session JSON), and Proxy
    makes the session and connects that very call."""
    client.proxy.v1.services(service.sid).phone_numbers.create(phone_number=X2, is_reserved=True)
    answering(app, {"uniqueName": "dir-2", "ttl": 600, "participantIdentifier": MERCHANT})
    twilio = Twilio(app, base=PUBLIC)

    assert twilio.call(STRANGER, X2, call_sid="CA" + "a" * 32).dialed == (X2, MERCHANT)
    [got] = receiver.received  # asked once, while the call waited; nothing left for the worker
    assert b"_callerToken" not in got.body and without_party_digits(got.body.decode())
    assert queued(app) == []
    session = client.proxy.v1.services(service.sid).sessions("dir-2").fetch()
    participants = client.proxy.v1.services(service.sid).sessions(session.sid).participants.list()
    assert [p.proxy_identifier for p in participants] == [X2, X2]
    assert twilio.call(MERCHANT, X2).dialed == (X2, STRANGER)


def test_a_text_that_triggers_auto_create_is_relayed(
    app: Flask, client: Client, service: Any, receiver: Receiver
) -> None:
    client.proxy.v1.services(service.sid).phone_numbers.create(phone_number=X2, is_reserved=True)
    answering(app, {"uniqueName": "dir-3", "participantIdentifier": MERCHANT})
    answer = Twilio(app, base=PUBLIC).sms(STRANGER, X2, "is the bike still for sale?")
    message = answer.find("Message")
    assert message is not None and message.get("to") == MERCHANT


def test_an_auto_create_answer_the_worker_reads_makes_the_directory_session_on_the_reserved_number(
    app: Flask, make_app: AppMaker, client: Client, service: Any, receiver: Receiver
) -> None:
    client.proxy.v1.services(service.sid).phone_numbers.create(phone_number=X2, is_reserved=True)
    twilio = Twilio(app, base=PUBLIC)
    receiver.answers = [503]  # not answered while the call waits: queued for the worker
    assert twilio.call(STRANGER, X2, call_sid="CA" + "d" * 32).dialed is None
    answer = {"uniqueName": "dir-1", "ttl": 600, "mode": "voice-only", "participantIdentifier": MERCHANT}

    def send(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
        return post_form(url, body, headers, timeout, policy=LOCAL), json.dumps(answer).encode()

    CallbackWorker(services=services_of(app), send=send, jitter=lambda: 1.0).run_once(make_app.clock())
    _first, got = receiver.received
    assert b"_callerToken" not in got.body and without_party_digits(got.body.decode())

    session = client.proxy.v1.services(service.sid).sessions("dir-1").fetch()
    assert session.mode == "voice-only"
    participants = client.proxy.v1.services(service.sid).sessions(session.sid).participants.list()
    assert [p.proxy_identifier for p in participants] == [X2, X2]
    # The caller calls again and reaches the directory entry, and back; each sees X2.
    assert twilio.call(STRANGER, X2).dialed == (X2, MERCHANT)
    assert twilio.call(MERCHANT, X2).dialed == (X2, STRANGER)


def test_a_twiml_answer_creates_nothing(
    app: Flask, make_app: AppMaker, client: Client, service: Any, receiver: Receiver
) -> None:
    twilio = Twilio(app, base=PUBLIC)
    twilio.call(STRANGER, X1, call_sid="CA" + "c" * 32)

    def send(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, bytes]:
        return post_form(
            url, body, headers, timeout, policy=LOCAL
        ), b"<Response><Dial>+15005550006</Dial></Response>"

    CallbackWorker(services=services_of(app), send=send, jitter=lambda: 1.0).run_once(make_app.clock())
    assert len(receiver.received) == 1
    assert client.proxy.v1.services(service.sid).sessions.list() == []
