"""The Twilio Proxy face's URLs under the outbound guard: refused when set
(400 naming the field), and an intercept whose URL is refused blocks the
call whatever ``intercept_fail_closed`` says (the attack: point the
intercept at an internal address, and have the call connect anyway)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import update
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from maskline import services_of
from maskline.compat.twilio.callbacks import post_form
from maskline.compat.twilio.intercept import Interceptor
from maskline.compat.twilio.models import ProxyService
from maskline.outbound import OutboundPolicy
from tests.compat_twilio_helpers import FakeTwilioMessages, app_serving, credentials, twilio_with_messages
from tests.integration.conftest import AUTH_TOKEN, BUYER, MERCHANT, X1, AppMaker, Twilio
from tests.receiver import Receiver, receiving
from tests.twilio_server import ACCOUNT_SID

PUBLIC = "https://relay.example.com"


@pytest.fixture
def app(make_app: AppMaker) -> Iterator[Flask]:
    fake: FakeTwilioMessages
    with twilio_with_messages(AUTH_TOKEN) as fake:
        yield make_app(public_url=PUBLIC, twilio_account_sid=ACCOUNT_SID, twilio_api_url=fake.url)


@pytest.fixture
def client(app: Flask) -> Iterator[Client]:
    with app_serving(app) as url:
        yield credentials(app, "shop-a").client(url)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as listening:
        yield listening


def _intercepted_session(client: Client, url: str) -> tuple[Any, Any]:
    service = client.proxy.v1.services.create(unique_name="intercepted", intercept_callback_url=url)
    client.proxy.v1.services(service.sid).phone_numbers.create(phone_number=X1)
    session = client.proxy.v1.services(service.sid).sessions.create()
    participants = client.proxy.v1.services(service.sid).sessions(session.sid).participants
    first = participants.create(identifier=BUYER)
    participants.create(identifier=MERCHANT)
    return service, participants(first.sid).fetch()  # its proxy identifier comes with the second


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("callback_url", "https://169.254.169.254/latest/meta-data/"),
        ("intercept_callback_url", "https://10.0.0.1/intercept"),
        ("out_of_session_callback_url", "https://100.64.0.1/oos"),
        ("intercept_callback_url", "https://[::ffff:10.0.0.1]/intercept"),
    ],
)
def test_internal_callback_urls_are_refused_naming_the_field(client: Client, field: str, url: str) -> None:
    with pytest.raises(TwilioRestException) as refused:
        client.proxy.v1.services.create(unique_name="x", **{field: url})

    wire_name = "".join(part.capitalize() for part in field.split("_"))
    assert refused.value.status == 400 and f"{wire_name}:" in refused.value.msg, refused.value.msg
    assert client.proxy.v1.services.list() == []


def _interceptor(app: Flask) -> Interceptor:
    hooks = app.extensions["maskline.webhooks"].service.interceptors
    (interceptor,) = [i for i in hooks if isinstance(i, Interceptor)]
    return interceptor


def test_an_intercept_that_resolves_to_loopback_in_production_blocks_the_call(
    app: Flask, client: Client, receiver: Receiver
) -> None:
    _service, first = _intercepted_session(client, receiver.url("/intercept"))  # not fail-closed
    # As production sends: loopback is refused once resolved, whatever was accepted when set.
    _interceptor(app)._send = functools.partial(post_form, policy=OutboundPolicy())

    assert Twilio(app, base=PUBLIC).call(BUYER, first.proxy_identifier).dialed is None
    assert receiver.received == []


def test_an_intercept_url_stored_before_the_guard_blocks_the_call(app: Flask, client: Client) -> None:
    service, first = _intercepted_session(client, "https://intercept.example.com/x")
    with services_of(app).db.session() as session:  # as if set by an older version
        session.execute(
            update(ProxyService)
            .where(ProxyService.sid == service.sid)
            .values(intercept_callback_url="https://169.254.169.254/latest")
        )

    assert Twilio(app, base=PUBLIC).call(BUYER, first.proxy_identifier).dialed is None
