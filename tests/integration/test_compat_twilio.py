"""The Twilio Proxy v1 face, driven by the unmodified ``twilio`` SDK against the
app served in this process (real PostgreSQL / Redis when configured, the
clock passed in). Calls arrive as signed webhooks; messages leave through a
fake Twilio REST server."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
from flask import Flask
from prometheus_client import REGISTRY
from sqlalchemy import select
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from maskline import services_of
from maskline.api.keys import ApiKeyService
from maskline.audit.models import AuditRecord
from maskline.compat.ratelimits import ScopedRateLimits
from maskline.compat.twilio.callbacks import CallbackWorker
from maskline.compat.twilio.credentials import open_token, rewrap_tokens, tokens_using
from maskline.compat.twilio.intercept import Interceptor
from maskline.compat.twilio.interfaces import derived_sid
from maskline.compat.twilio.models import ProxyParticipant, ProxySession, TwilioCredential
from maskline.numbers.interfaces import BindRequest
from maskline.numbers.models import Binding
from maskline.vault import keyring as kr
from tests.compat_twilio_helpers import (
    FakeTwilioMessages,
    app_serving,
    credentials,
    twilio_with_messages,
)
from tests.conftest import EPOCH
from tests.integration.conftest import (
    AUTH_TOKEN,
    BUYER,
    MERCHANT,
    X1,
    X2,
    AppMaker,
    Twilio,
    without_party_digits,
)
from tests.receiver import Receiver, receiving
from tests.twilio_server import ACCOUNT_SID

PUBLIC = "https://relay.example.com"
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilioMessages]:
    with twilio_with_messages(AUTH_TOKEN) as fake:
        yield fake


@pytest.fixture
def app(make_app: AppMaker, fake_twilio: FakeTwilioMessages) -> Flask:
    return make_app(public_url=PUBLIC, twilio_account_sid=ACCOUNT_SID, twilio_api_url=fake_twilio.url)


@pytest.fixture
def base_url(app: Flask) -> Iterator[str]:
    with app_serving(app) as url:
        yield url


@pytest.fixture
def client(app: Flask, base_url: str) -> Client:
    return credentials(app, "shop-a").client(base_url)


@pytest.fixture
def other(app: Flask, base_url: str) -> Client:
    return credentials(app, "shop-b").client(base_url)


@pytest.fixture
def service(client: Client) -> Any:
    created = client.proxy.v1.services.create(unique_name="orders")
    client.proxy.v1.services(created.sid).phone_numbers.create(phone_number=X1)
    return created


def bound(client: Client, service: Any, **session: Any) -> tuple[Any, Any, Any]:
    """A session with the buyer and the merchant as its participants."""
    created = client.proxy.v1.services(service.sid).sessions.create(**session)
    participants = client.proxy.v1.services(service.sid).sessions(created.sid).participants
    first = participants.create(identifier=BUYER)
    second = participants.create(identifier=MERCHANT)
    return created, participants(first.sid).fetch(), second


def refused(action: Any) -> TwilioRestException:
    with pytest.raises(TwilioRestException) as caught:
        action()
    return caught.value


# -- services and phone numbers -----------------------------------------------------------


def test_a_service_keeps_its_fields_in_twilio_s_format(client: Client) -> None:
    created = client.proxy.v1.services.create(
        unique_name="orders",
        default_ttl=600,
        geo_match_level="area-code",
        number_selection_behavior="avoid-sticky",
        callback_url="https://shop.example.com/cb",
        intercept_callback_url="https://shop.example.com/intercept",
        out_of_session_callback_url="https://shop.example.com/oos",
    )
    fetched = client.proxy.v1.services(created.sid).fetch()

    assert re.fullmatch(r"KS[0-9a-f]{32}", fetched.sid)
    assert (fetched.default_ttl, fetched.geo_match_level, fetched.number_selection_behavior) == (
        600,
        "area-code",
        "avoid-sticky",
    )
    assert fetched.intercept_callback_url == "https://shop.example.com/intercept"
    assert fetched.date_created == EPOCH and fetched.url == f"{PUBLIC}/twilio-proxy/v1/Services/{created.sid}"


def test_a_service_is_updated_and_deleted(client: Client, service: Any) -> None:
    updated = client.proxy.v1.services(service.sid).update(
        default_ttl=120, callback_url="https://x.example/cb"
    )

    assert (updated.default_ttl, updated.callback_url) == (120, "https://x.example/cb")
    assert client.proxy.v1.services(service.sid).delete() is True
    assert refused(client.proxy.v1.services(service.sid).fetch).status == 404


def test_a_unique_name_is_unique_per_owner(client: Client, other: Client, service: Any) -> None:
    error = refused(lambda: client.proxy.v1.services.create(unique_name="orders"))

    assert (error.status, error.code) == (409, 20409)
    assert other.proxy.v1.services.create(unique_name="orders").unique_name == "orders"


def test_pool_numbers_are_added_by_number_or_sid_and_reserved(client: Client, service: Any) -> None:
    numbers = client.proxy.v1.services(service.sid).phone_numbers
    by_sid = numbers.create(sid=derived_sid("phone_number", X2), is_reserved=True)

    assert (by_sid.phone_number, by_sid.is_reserved, by_sid.in_use) == (X2, True, 0)
    assert numbers(by_sid.sid).update(is_reserved=False).is_reserved is False
    assert sorted(n.phone_number for n in numbers.list()) == [X1, X2]
    assert numbers(by_sid.sid).delete() is True
    assert [n.phone_number for n in numbers.list()] == [X1]


@pytest.mark.parametrize(
    ("fields", "named"),
    [({"phone_number": "+14155550199"}, "PhoneNumber"), ({"sid": "PN" + "0" * 32}, "Sid"), ({}, "Sid")],
)
def test_a_number_outside_the_pool_is_refused(client: Client, service: Any, fields: Any, named: str) -> None:
    error = refused(lambda: client.proxy.v1.services(service.sid).phone_numbers.create(**fields))

    assert (error.status, error.code) == (400, 20001) and named in error.msg


# -- sessions and participants ------------------------------------------------------------


def test_a_participant_gets_its_proxy_identifier_at_creation(client: Client, service: Any) -> None:
    session = client.proxy.v1.services(service.sid).sessions.create(unique_name="o-1")
    participants = client.proxy.v1.services(service.sid).sessions(session.sid).participants
    first = participants.create(identifier=BUYER, friendly_name="buyer")

    assert first.proxy_identifier in (X1, X2)
    assert first.proxy_identifier_sid == derived_sid("phone_number", first.proxy_identifier)
    second = participants.create(identifier=MERCHANT)
    # The second shares the first's number; the first's identifier never changes.
    assert second.proxy_identifier == first.proxy_identifier
    assert participants(first.sid).fetch().proxy_identifier == first.proxy_identifier


def test_a_participant_already_in_the_session_is_80103(client: Client, service: Any) -> None:
    session = client.proxy.v1.services(service.sid).sessions.create()
    participants = client.proxy.v1.services(service.sid).sessions(session.sid).participants
    participants.create(identifier=BUYER)
    error = refused(lambda: participants.create(identifier=BUYER))
    assert (error.status, error.code) == (400, 80103) and BUYER[2:] not in error.msg
    assert len(participants.list()) == 1


def test_a_session_is_an_axb_binding_of_the_owner(app: Flask, client: Client, service: Any) -> None:
    session, first, _second = bound(client, service, unique_name="o-2")

    with services_of(app).db.session() as db:
        row = db.get(ProxySession, session.sid)
        assert row is not None and row.binding_id is not None
        binding = db.get(Binding, row.binding_id)
        assert binding is not None
        assert (binding.owner, binding.mode, binding.order_id) == ("shop-a", "axb", session.sid)
        assert binding.relay_number == first.proxy_identifier


def test_calls_route_between_participants_and_stop_when_closed(
    app: Flask, client: Client, service: Any
) -> None:
    session, first, _second = bound(client, service)
    twilio = Twilio(app, base=PUBLIC)

    assert twilio.call(BUYER, first.proxy_identifier).dialed == (first.proxy_identifier, MERCHANT)
    client.proxy.v1.services(service.sid).sessions(session.sid).update(status="closed")
    assert twilio.call(BUYER, first.proxy_identifier).dialed is None


def test_a_session_s_expiry_follows_ttl_and_closes_it(
    app: Flask, client: Client, service: Any, make_app: AppMaker
) -> None:
    session, first, _second = bound(client, service, ttl=300)

    assert session.date_expiry == EPOCH + dt.timedelta(seconds=300)
    make_app.clock.advance(seconds=301)
    fetched = client.proxy.v1.services(service.sid).sessions(session.sid).fetch()
    assert (fetched.status, fetched.closed_reason) == ("closed", "ttl")
    assert Twilio(app, base=PUBLIC).call(BUYER, first.proxy_identifier).dialed is None


def test_updating_the_ttl_extends_the_binding(app: Flask, client: Client, service: Any) -> None:
    session, _first, _second = bound(client, service, ttl=300)
    updated = client.proxy.v1.services(service.sid).sessions(session.sid).update(ttl=7200)

    assert updated.date_expiry == EPOCH + dt.timedelta(hours=2)
    with services_of(app).db.session() as db:
        binding_id = db.scalar(select(ProxySession.binding_id).where(ProxySession.sid == session.sid))
        binding = db.get(Binding, binding_id)
        assert binding is not None and binding.expires_at == EPOCH + dt.timedelta(hours=2)


def test_a_session_is_fetched_by_its_unique_name(client: Client, service: Any) -> None:
    session = client.proxy.v1.services(service.sid).sessions.create(unique_name="order-77")

    assert client.proxy.v1.services(service.sid).sessions("order-77").fetch().sid == session.sid


def test_a_closed_session_is_reopened_on_its_own_number(app: Flask, client: Client, service: Any) -> None:
    session, first, _second = bound(client, service)
    sessions = client.proxy.v1.services(service.sid).sessions
    twilio = Twilio(app, base=PUBLIC)
    sessions(session.sid).update(status="closed")
    assert twilio.call(BUYER, first.proxy_identifier).dialed is None

    # closed -> in-progress, as Proxy documents it: its own cool-down does not block its number.
    reopened = sessions(session.sid).update(status="in-progress", ttl=600)
    assert (reopened.status, reopened.closed_reason) == ("in-progress", None)
    assert reopened.date_expiry == EPOCH + dt.timedelta(seconds=600)
    assert twilio.call(BUYER, first.proxy_identifier).dialed == (first.proxy_identifier, MERCHANT)


def test_reopening_while_a_participant_is_on_the_number_elsewhere_is_80801(
    client: Client, service: Any, make_app: AppMaker
) -> None:
    session, first, _second = bound(client, service)
    sessions = client.proxy.v1.services(service.sid).sessions
    sessions(session.sid).update(status="closed")
    make_app.clock.advance(seconds=25 * 3600)  # past the cool-down: the number may take MERCHANT again
    again = sessions.create()
    participants = sessions(again.sid).participants
    participants.create(identifier=MERCHANT, proxy_identifier=first.proxy_identifier)
    participants.create(identifier="+13125550154")  # MERCHANT is live on that number again

    error = refused(lambda: sessions(session.sid).update(status="in-progress", ttl=600))
    assert (error.status, error.code) == (400, 80801)
    assert sessions(session.sid).fetch().status == "closed"


@pytest.mark.parametrize(("first", "then", "code"), [(None, "open", 80608), ("closed", None, 80607)])
def test_invalid_status_changes_are_proxy_s_codes(
    client: Client, service: Any, first: str | None, then: str | None, code: int
) -> None:
    session, _first, _second = bound(client, service)
    sessions = client.proxy.v1.services(service.sid).sessions
    if first:
        sessions(session.sid).update(status=first)
    error = refused(lambda: sessions(session.sid).update(status=then, ttl=600))
    assert (error.status, error.code) == (400, code)


def test_a_third_participant_is_refused(client: Client, service: Any) -> None:
    session, _first, _second = bound(client, service)
    participants = client.proxy.v1.services(service.sid).sessions(session.sid).participants

    error = refused(lambda: participants.create(identifier="+13125550154"))
    assert (error.status, error.code) == (400, 80609)
    assert error.msg.endswith("A Session may have at most 2 participants")
    assert len(participants.list()) == 2


def test_removing_a_participant_ends_the_binding(app: Flask, client: Client, service: Any) -> None:
    session, first, second = bound(client, service)
    participants = client.proxy.v1.services(service.sid).sessions(session.sid).participants

    assert participants(second.sid).delete() is True
    assert [p.sid for p in participants.list()] == [first.sid]
    assert Twilio(app, base=PUBLIC).call(BUYER, first.proxy_identifier).dialed is None


@pytest.mark.parametrize(
    ("create", "named"),
    [
        (lambda c: c.proxy.v1.services.create(unique_name="x", geo_match_level="city"), "GeoMatchLevel"),
        (lambda c: c.proxy.v1.services.create(unique_name="x", callback_url="ftp://x"), "CallbackUrl"),
        (lambda c: c.proxy.v1.services.create(unique_name="x", default_ttl=-1), "DefaultTtl"),
        (lambda c: c.proxy.v1.services.create(unique_name="x", chat_instance_sid="IS1"), "ChatInstanceSid"),
        (lambda c: c.proxy.v1.services.create(unique_name=""), "UniqueName"),
    ],
)
def test_bad_service_fields_are_refused_naming_them(client: Client, create: Any, named: str) -> None:
    error = refused(lambda: create(client))

    assert (error.status, error.code) == (400, 20001) and named in error.msg
    assert client.proxy.v1.services.list() == []


def test_a_session_is_created_with_its_participants(client: Client, service: Any) -> None:
    sessions = client.proxy.v1.services(service.sid).sessions
    session = sessions.create(
        unique_name="both",
        participants=[{"Identifier": BUYER, "FriendlyName": "buyer"}, {"Identifier": MERCHANT}],
    )

    first, second = sessions(session.sid).participants.list()
    assert first.friendly_name == "buyer" and first.proxy_identifier == second.proxy_identifier in (X1, X2)


@pytest.mark.parametrize(
    ("participants", "named"),
    [
        ([{"Identifier": BUYER}, {"Identifier": "12"}], "Participants[1].Identifier"),
        ([{"Identifier": BUYER}, {"Identifier": BUYER}], "Participants[1].Identifier"),
        ([{"FriendlyName": "x"}], "Participants[0].Identifier"),
        # X2 is a pool number, but not one of this Service's.
        ([{"Identifier": BUYER, "ProxyIdentifier": X2}], "Participants[0].ProxyIdentifier"),
        ([{"Identifier": BUYER, "ProxyIdentifierSid": "PN1"}], "Participants[0].ProxyIdentifierSid"),
        ([{"Identifier": BUYER}] * 3, "Participants"),
    ],
)
def test_a_session_whose_participants_cannot_join_is_not_created(
    app: Flask, client: Client, service: Any, participants: Any, named: str
) -> None:
    sessions = client.proxy.v1.services(service.sid).sessions
    error = refused(lambda: sessions.create(unique_name="bad", participants=participants))

    assert error.status == 400 and f"{named}:" in error.msg, error.msg
    assert sessions.list() == []
    with services_of(app).db.session() as db:
        assert db.scalars(select(Binding)).all() == []


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"mode": "video"}, "Mode"),
        ({"ttl": "soon"}, "Ttl"),
        ({"ttl": 60 * 60 * 24 * 365}, "Ttl"),
        ({"date_expiry": EPOCH - dt.timedelta(hours=1)}, "DateExpiry"),
        ({"ttl": 60, "date_expiry": EPOCH + dt.timedelta(hours=1)}, "Ttl"),
        ({"status": "closed"}, "Status"),
    ],
)
def test_bad_session_fields_are_refused_naming_them(
    client: Client, service: Any, fields: Any, named: str
) -> None:
    sessions = client.proxy.v1.services(service.sid).sessions
    error = refused(lambda: sessions.create(**fields))

    assert (error.status, error.code) == (400, 20001) and named in error.msg
    assert sessions.list() == []


@pytest.mark.parametrize(
    ("fields", "named", "code"),
    [
        ({"identifier": "not a number"}, "Identifier", 20001),
        ({"identifier": X2}, "Identifier", 20001),
        ({"identifier": BUYER, "proxy_identifier": "not a number"}, "ProxyIdentifier", 20001),
        # Proxy's "Phone Number Not Available": not a number of this Service.
        ({"identifier": BUYER, "proxy_identifier": X2}, "ProxyIdentifier", 80601),
        (
            {"identifier": BUYER, "proxy_identifier_sid": derived_sid("phone_number", X2)},
            "ProxyIdentifierSid",
            80601,
        ),
        (
            {
                "identifier": BUYER,
                "proxy_identifier": X1,
                "proxy_identifier_sid": derived_sid("phone_number", X2),
            },
            "ProxyIdentifierSid",
            80601,
        ),
    ],
)
def test_bad_participants_are_refused_naming_the_field(
    client: Client, service: Any, fields: Any, named: str, code: int
) -> None:
    session = client.proxy.v1.services(service.sid).sessions.create()
    participants = client.proxy.v1.services(service.sid).sessions(session.sid).participants
    error = refused(lambda: participants.create(**fields))

    assert (error.status, error.code) == (400, code) and f"{named}:" in error.msg
    assert participants.list() == []
    assert without_party_digits(error.msg)


# -- interactions -------------------------------------------------------------------------


def test_an_ended_interaction_is_deleted(app: Flask, client: Client, service: Any) -> None:
    session, first, _second = bound(client, service)
    twilio = Twilio(app, base=PUBLIC)
    call_sid = "CA" + "6" * 32
    twilio.call(BUYER, first.proxy_identifier, call_sid=call_sid)
    twilio.call_status(call_sid, "completed", duration=5)
    interactions = client.proxy.v1.services(service.sid).sessions(session.sid).interactions
    (interaction,) = interactions.list()

    assert interactions(interaction.sid).delete() is True
    assert interactions.list() == []
    error = refused(lambda: interactions(interaction.sid).delete())
    assert (error.status, error.code) == (404, 20404)


def test_a_call_is_an_interaction_of_its_session(app: Flask, client: Client, service: Any) -> None:
    session, first, second = bound(client, service)
    twilio = Twilio(app, base=PUBLIC)
    call_sid = "CA" + "5" * 32
    twilio.call(BUYER, first.proxy_identifier, call_sid=call_sid)
    twilio.call_status(call_sid, "completed", duration=17)

    (interaction,) = client.proxy.v1.services(service.sid).sessions(session.sid).interactions.list()
    assert (interaction.type, interaction.inbound_resource_sid, interaction.inbound_resource_type) == (
        "voice",
        call_sid,
        "Call",
    )
    assert (interaction.inbound_participant_sid, interaction.outbound_participant_sid) == (
        first.sid,
        second.sid,
    )
    assert interaction.sid == derived_sid("interaction", call_sid)
    fetched = client.proxy.v1.services(service.sid).sessions(session.sid).fetch()
    assert fetched.status == "in-progress" and fetched.date_last_interaction == EPOCH


def test_a_message_interaction_texts_the_participant_from_the_relay_number(
    client: Client, service: Any, fake_twilio: FakeTwilioMessages
) -> None:
    session, first, _second = bound(client, service)
    sent = (
        client.proxy.v1.services(service.sid)
        .sessions(session.sid)
        .participants(first.sid)
        .message_interactions.create(body="your order ships today")
    )

    (message,) = fake_twilio.messages
    assert (message["to"], message["from"], message["body"]) == (
        BUYER,
        first.proxy_identifier,
        "your order ships today",
    )
    assert message["form"]["StatusCallback"] == f"{PUBLIC}/webhooks/twilio/sms/status"
    assert (sent.type, sent.outbound_participant_sid, sent.outbound_resource_sid) == (
        "message",
        first.sid,
        message["sid"],
    )
    listed = client.proxy.v1.services(service.sid).sessions(session.sid).interactions.list()
    assert [i.sid for i in listed] == [sent.sid]


def test_twilio_s_status_of_a_message_interaction_updates_it(
    app: Flask, client: Client, service: Any, fake_twilio: FakeTwilioMessages
) -> None:
    session, first, _second = bound(client, service)
    mine = client.proxy.v1.services(service.sid).sessions(session.sid).participants(first.sid)
    sent = mine.message_interactions.create(body="ready for pickup")
    (message,) = fake_twilio.messages
    # As Twilio sends it: the message's own From (the relay number) and To.
    form = {
        "MessageSid": message["sid"],
        "MessageStatus": "delivered",
        "From": message["from"],
        "To": message["to"],
    }
    status = Twilio(app, base=PUBLIC).post("/webhooks/twilio/sms/status", form)

    assert status.status in (200, 204)
    (listed,) = mine.message_interactions.list()
    assert (listed.sid, listed.outbound_resource_status) == (sent.sid, "delivered")


def test_a_voice_only_session_takes_no_message(
    client: Client, service: Any, fake_twilio: FakeTwilioMessages
) -> None:
    session, first, _second = bound(client, service, mode="voice-only")
    messages = client.proxy.v1.services(service.sid).sessions(session.sid).participants(first.sid)

    error = refused(lambda: messages.message_interactions.create(body="hi"))
    assert (error.status, error.code) == (400, 20001) and "Mode" in error.msg
    assert fake_twilio.messages == []


def rejections(reason: str) -> float:
    return REGISTRY.get_sample_value("maskline_webhook_rejections_total", {"reason": reason}) or 0.0


@pytest.mark.parametrize(
    ("mode", "calls", "texts"),
    [("voice-only", True, False), ("message-only", False, True), ("voice-and-message", True, True)],
)
def test_a_session_s_mode_decides_which_inbound_traffic_it_carries(
    app: Flask, client: Client, service: Any, mode: str, calls: bool, texts: bool
) -> None:
    session, first, _second = bound(client, service, mode=mode)
    assert session.mode == mode
    twilio = Twilio(app, base=PUBLIC)
    before = rejections("intercepted")

    dialed = twilio.call(BUYER, first.proxy_identifier).dialed
    answer = twilio.sms(MERCHANT, first.proxy_identifier, "hello")
    again = twilio.call(MERCHANT, first.proxy_identifier).dialed  # the cached answer, both ways

    assert dialed == ((first.proxy_identifier, MERCHANT) if calls else None)
    assert again == ((first.proxy_identifier, BUYER) if calls else None)
    forwarded = answer.find("Message")
    assert (forwarded is not None) == texts
    if forwarded is not None:
        assert (forwarded.get("to"), forwarded.get("from")) == (BUYER, first.proxy_identifier)
    assert rejections("intercepted") == before + (0 if calls else 2) + (0 if texts else 1)


def test_a_binding_of_no_session_is_not_filtered_by_mode(app: Flask, client: Client, service: Any) -> None:
    bound(client, service, mode="voice-only")  # a restricted session elsewhere
    view = services_of(app).numbers.bindings.bind(
        BindRequest(order_id="o-plain", mode="axb", parties={"buyer": BUYER, "merchant": MERCHANT})
    )
    answer = Twilio(app, base=PUBLIC).sms(BUYER, view.relay_number, "hello")

    forwarded = answer.find("Message")
    assert forwarded is not None and forwarded.get("to") == MERCHANT


# -- rate limits --------------------------------------------------------------------------


def test_past_its_limit_a_key_gets_twilio_s_429_per_scope(make_app: AppMaker, fake_twilio: Any) -> None:
    app = make_app(
        public_url=PUBLIC,
        twilio_account_sid=ACCOUNT_SID,
        twilio_api_url=fake_twilio.url,
        api_rate_limits={"bindings:read": "2/hour", "bindings:write": "100/second", "calls:write": "1/hour"},
    )
    mine, theirs = credentials(app, "shop-a"), credentials(app, "shop-a")
    with app_serving(app) as base_url:
        client = mine.client(base_url)
        assert [s.sid for s in client.proxy.v1.services.list()] == []
        created = client.proxy.v1.services.create(unique_name="limited")
        assert client.proxy.v1.services(created.sid).fetch().sid == created.sid

        error = refused(lambda: client.proxy.v1.services(created.sid).fetch())
        assert (error.status, error.code) == (429, 20429) and error.msg.endswith(": Too Many Requests")
        raw = requests.get(
            f"{base_url}/twilio-proxy/v1/Services", auth=(mine.account_sid, mine.auth_token), timeout=10
        )
        assert raw.status_code == 429 and 1 <= int(raw.headers["Retry-After"]) <= 3600
        assert raw.json() == {
            "code": 20429,
            "message": "Too Many Requests",
            "more_info": "https://www.twilio.com/docs/errors/20429",
            "status": 429,
        }
        # Another scope of the same key, and another key, have budgets of their own.
        assert client.proxy.v1.services(created.sid).update(default_ttl=60).default_ttl == 60
        assert theirs.client(base_url).proxy.v1.services(created.sid).fetch().sid == created.sid


def test_a_rate_limit_store_that_is_down_lets_requests_through(
    app: Flask, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens on port 1: every count fails to reach its store.
    app.extensions["maskline.compat.twilio"].limits = ScopedRateLimits(
        storage_uri="redis://127.0.0.1:1/0", limits={"bindings:read": "1/hour"}, face="twilio"
    )
    with caplog.at_level("WARNING", logger="maskline.compat.ratelimits"):
        assert [client.proxy.v1.services.list() for _ in range(3)] == [[], [], []]
    assert [r.getMessage() for r in caplog.records].count(
        "twilio rate limit not counted: ConnectionError"
    ) == 3


# -- who may ------------------------------------------------------------------------------


def test_another_owner_finds_none_of_it(client: Client, other: Client, service: Any) -> None:
    session, first, _second = bound(client, service)
    theirs = other.proxy.v1.services(service.sid)

    for action in (
        theirs.fetch,
        theirs.sessions(session.sid).fetch,
        theirs.sessions(session.sid).participants(first.sid).fetch,
        lambda: theirs.sessions(session.sid).update(status="closed"),
        lambda: theirs.sessions(session.sid).participants(first.sid).message_interactions.create(body="x"),
    ):
        assert (refused(action).status, refused(action).code) == (404, 20404)
    assert client.proxy.v1.services(service.sid).sessions(session.sid).fetch().status == "open"


def test_a_key_without_the_scope_is_refused(app: Flask, base_url: str, service: Any) -> None:
    reader = credentials(app, "shop-a", ["bindings:read"]).client(base_url)

    assert reader.proxy.v1.services(service.sid).fetch().sid == service.sid
    error = refused(lambda: reader.proxy.v1.services.create(unique_name="nope"))
    assert (error.status, error.code) == (403, 20403)


def test_issuing_credentials_is_audited_without_the_token(app: Flask) -> None:
    issued = credentials(app, "shop-a")
    with services_of(app).db.session() as db:
        records = db.scalars(select(AuditRecord).order_by(AuditRecord.seq)).all()
        trail = [(r.action, r.subject, r.data) for r in records]

    assert [(action, subject) for action, subject, _data in trail] == [
        ("apikey.created", issued.key_id),
        ("apikey.twilio_credentials", issued.key_id),
    ]
    assert issued.account_sid in trail[1][2] and issued.auth_token not in repr(trail)


def test_deleting_a_service_ends_its_sessions_bindings(app: Flask, client: Client, service: Any) -> None:
    session, first, _second = bound(client, service)

    assert client.proxy.v1.services(service.sid).delete() is True
    assert Twilio(app, base=PUBLIC).call(BUYER, first.proxy_identifier).dialed is None
    with services_of(app).db.session() as db:
        assert db.get(ProxySession, session.sid) is None


def test_revoking_the_key_revokes_the_credentials(app: Flask, base_url: str) -> None:
    issued = credentials(app, "shop-a")
    client = issued.client(base_url)
    client.proxy.v1.services.create(unique_name="before")
    services = services_of(app)
    ApiKeyService(db=services.db, clock=services.clock, cache_seconds=0).revoke(issued.key_id)
    app.extensions["maskline.compat.twilio"].credentials._cache.clear()

    error = refused(lambda: client.proxy.v1.services.create(unique_name="after"))
    assert (error.status, error.code) == (401, 20003)


def test_only_a_hash_of_the_token_and_no_party_number_is_stored(
    app: Flask, client: Client, service: Any
) -> None:
    bound(client, service)
    with services_of(app).db.session() as db:
        stored = [repr(vars(row)) for row in db.scalars(select(ProxyParticipant))]
        stored += [repr(vars(row)) for row in db.scalars(select(TwilioCredential))]

    assert stored and all(without_party_digits(text) for text in stored)
    assert client.password not in " ".join(stored)


# -- the wire, raw -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "form", "status"),
    [
        ("GET", "/Services?PageSize=0", None, 400),
        ("GET", "/Services?PageSize=1001", None, 400),
        ("GET", "/Services?Page=-1", None, 400),
        ("GET", "/Services?Page=x", None, 400),
        ("GET", "/Services/KS%00", None, 404),
        ("GET", "/Services/{service}/Sessions/%00name", None, 404),
        ("GET", "/Services/{service}/Sessions/" + "n" * 300, None, 404),
        ("GET", "/Services/{service}/PhoneNumbers/PN%00", None, 404),
        ("GET", "/Services/{service}/Sessions/KC" + "0" * 32 + "/Interactions", None, 404),
        ("GET", "/ShortCodes", None, 404),
        ("POST", "/Services", {"UniqueName": "a\x00b"}, 400),
        ("POST", "/Services", {"UniqueName": "x" * 200}, 400),
        ("POST", "/Services", {"UniqueName": "x", "Bogus": "1"}, 400),
        ("POST", "/Services/{service}/Sessions", {"Ttl": "9" * 30}, 400),
        ("POST", "/Services/{service}/Sessions", {"DateExpiry": "9999-12-31T23:59:59+14:00"}, 400),
        ("POST", "/Services/{service}/Sessions", {"Participants": "not json"}, 400),
        ("POST", "/Services/{service}/PhoneNumbers", {"PhoneNumber": X1, "IsReserved": "maybe"}, 400),
    ],
)
def test_odd_requests_get_twilio_s_error_body_never_a_500(
    client: Client, base_url: str, service: Any, method: str, path: str, form: Any, status: int
) -> None:
    response = requests.request(
        method,
        base_url + "/twilio-proxy/v1" + path.format(service=service.sid),
        data=form,
        auth=(client.username, client.password),
        timeout=30,
    )

    body = response.json()
    assert (response.status_code, body["status"]) == (status, status), body
    assert set(body) == {"code", "message", "more_info", "status"}
    assert without_party_digits(body["message"])


def test_a_list_carries_twilio_s_meta_on_maskline_s_base_url(client: Client, base_url: str) -> None:
    for n in range(3):
        client.proxy.v1.services.create(unique_name=f"s-{n}")
    response = requests.get(
        base_url + "/twilio-proxy/v1/Services?PageSize=2&Page=0",
        auth=(client.username, client.password),
        timeout=30,
    )

    meta = response.json()["meta"]
    assert meta["key"] == "services" and (meta["page"], meta["page_size"]) == (0, 2)
    assert meta["next_page_url"] == f"{PUBLIC}/twilio-proxy/v1/Services?PageSize=2&Page=1"
    assert meta["first_page_url"] == f"{PUBLIC}/twilio-proxy/v1/Services?PageSize=2&Page=0"
    assert meta["previous_page_url"] is None
    assert all(STAMP.match(s["date_created"]) for s in response.json()["services"])


# -- callbacks ------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as started:
        yield started


def worker(app: Flask, **kw: Any) -> CallbackWorker:
    return CallbackWorker(services=services_of(app), jitter=lambda: 1.0, **kw)


def called_back(receiver: Receiver, token: str) -> list[dict[str, str]]:
    """The forms received, each checked to be signed as Twilio signs its callbacks."""
    forms = []
    for got in receiver.received:
        assert got.headers["Content-Type"] == "application/x-www-form-urlencoded"
        form = {k: v[-1] for k, v in parse_qs(got.body.decode()).items()}
        assert RequestValidator(token).validate(
            receiver.url("/proxy"), form, got.headers["X-Twilio-Signature"]
        )
        forms.append(form)
    return forms


@pytest.fixture
def calling_back(app: Flask, base_url: str, receiver: Receiver) -> tuple[Client, Any]:
    client = credentials(app, "shop-c").client(base_url)
    service = client.proxy.v1.services.create(unique_name="cb", callback_url=receiver.url("/proxy"))
    client.proxy.v1.services(service.sid).phone_numbers.create(phone_number=X1)
    return client, service


def test_a_finished_call_is_called_back_signed_with_the_auth_token(
    app: Flask, calling_back: tuple[Client, Any], receiver: Receiver, make_app: AppMaker
) -> None:
    client, service = calling_back
    session, first, second = bound(client, service)
    twilio = Twilio(app, base=PUBLIC)
    call_sid = "CA" + "7" * 32
    twilio.call(BUYER, first.proxy_identifier, call_sid=call_sid)
    twilio.call_status(call_sid, "completed", duration=9)

    report = worker(app).run_once(make_app.clock())

    # One per event, in order: the connect (the first webhook) and the final status.
    assert (report.queued, report.delivered) == (2, 2)
    connected, form = called_back(receiver, client.password)
    assert (connected["interactionSid"], connected["inboundResourceStatus"]) == (
        derived_sid("interaction", call_sid),
        "in-progress",
    )
    assert form["interactionSid"] == derived_sid("interaction", call_sid)
    assert (form["interactionSessionSid"], form["interactionAccountSid"]) == (session.sid, client.username)
    assert (form["inboundParticipantSid"], form["outboundParticipantSid"]) == (first.sid, second.sid)
    assert (form["interactionType"], form["outboundResourceStatus"]) == ("voice", "completed")
    assert without_party_digits(repr(form))


def test_a_closed_session_is_called_back_once(
    app: Flask, calling_back: tuple[Client, Any], receiver: Receiver, make_app: AppMaker
) -> None:
    client, service = calling_back
    session, _first, _second = bound(client, service)
    client.proxy.v1.services(service.sid).sessions(session.sid).update(status="closed")

    worker(app).run_once(make_app.clock())
    assert worker(app).run_once(make_app.clock()).queued == 0
    (form,) = called_back(receiver, client.password)
    assert (form["sessionSid"], form["sessionStatus"], form["sessionClosedReason"]) == (
        session.sid,
        "closed",
        "api",
    )


def test_an_expired_session_is_called_back(
    app: Flask, calling_back: tuple[Client, Any], receiver: Receiver, make_app: AppMaker
) -> None:
    client, service = calling_back
    session, _first, _second = bound(client, service, ttl=120)
    make_app.clock.advance(seconds=121)

    assert worker(app).run_once(make_app.clock()).delivered == 1
    (form,) = called_back(receiver, client.password)
    assert (form["sessionSid"], form["sessionStatus"], form["sessionClosedReason"]) == (
        session.sid,
        "closed",
        "ttl",
    )


def test_a_refused_callback_is_retried_later(
    app: Flask, calling_back: tuple[Client, Any], receiver: Receiver, make_app: AppMaker
) -> None:
    client, service = calling_back
    session, _first, _second = bound(client, service)
    client.proxy.v1.services(service.sid).sessions(session.sid).update(status="closed")
    receiver.answers = [500]

    first = worker(app).run_once(make_app.clock())
    soon = worker(app).run_once(make_app.clock.advance(seconds=10))
    later = worker(app).run_once(make_app.clock.advance(seconds=30))

    assert (first.retried, soon.delivered, later.delivered) == (1, 0, 1)
    assert len(called_back(receiver, client.password)) == 2


def test_callbacks_of_revoked_credentials_are_not_sent(
    app: Flask, calling_back: tuple[Client, Any], receiver: Receiver, make_app: AppMaker
) -> None:
    client, service = calling_back
    session, _first, _second = bound(client, service)
    client.proxy.v1.services(service.sid).sessions(session.sid).update(status="closed")
    services = services_of(app)
    with services.db.session() as db:
        key_id = db.scalar(
            select(TwilioCredential.key_id).where(TwilioCredential.account_sid == client.username)
        )
    ApiKeyService(db=services.db, clock=services.clock).revoke(key_id)

    assert worker(app).run_once(make_app.clock()).failed == 1
    assert receiver.received == []


# -- the intercept callback -------------------------------------------------------------------


def intercepting(client: Client, url: str, *, fail_closed: bool = False) -> Any:
    service = client.proxy.v1.services.create(unique_name="intercepted", intercept_callback_url=url)
    client.proxy.v1.services(service.sid).phone_numbers.create(phone_number=X1)
    if fail_closed:
        # maskline's own parameter, sent through the same client.
        response = client.request(
            "POST",
            f"https://proxy.twilio.com/v1/Services/{service.sid}",
            data={"InterceptFailClosed": "true"},
        )
        assert response.status_code == 200 and json.loads(response.text)["intercept_fail_closed"] is True
    return service


def test_an_intercept_answering_403_blocks_the_call(app: Flask, client: Client, receiver: Receiver) -> None:
    service = intercepting(client, receiver.url("/intercept"))
    session, first, second = bound(client, service)
    receiver.answers = [403]
    call_sid = "CA" + "9" * 32

    assert Twilio(app, base=PUBLIC).call(BUYER, first.proxy_identifier, call_sid=call_sid).dialed is None
    (got,) = receiver.received
    form = {k: v[-1] for k, v in parse_qs(got.body.decode()).items()}
    assert RequestValidator(client.password).validate(
        receiver.url("/intercept"), form, got.headers["X-Twilio-Signature"]
    )
    assert (form["inboundResourceSid"], form["interactionSessionSid"]) == (call_sid, session.sid)
    assert (form["inboundParticipantSid"], form["outboundParticipantSid"]) == (first.sid, second.sid)
    assert without_party_digits(repr(form))


def test_an_intercept_answering_200_lets_the_call_through(
    app: Flask, client: Client, receiver: Receiver
) -> None:
    service = intercepting(client, receiver.url("/intercept"))
    _session, first, _second = bound(client, service)

    assert Twilio(app, base=PUBLIC).call(MERCHANT, first.proxy_identifier).dialed == (
        first.proxy_identifier,
        BUYER,
    )
    assert len(receiver.received) == 1


def test_an_intercept_answering_403_blocks_the_text(app: Flask, client: Client, receiver: Receiver) -> None:
    service = intercepting(client, receiver.url("/intercept"))
    _session, first, _second = bound(client, service)
    receiver.answers = [403]

    answer = Twilio(app, base=PUBLIC).sms(BUYER, first.proxy_identifier, "hello")
    assert answer.find("Message") is None


@pytest.mark.parametrize(("fail_closed", "connected"), [(False, True), (True, False)])
def test_an_intercept_that_does_not_answer_in_time_fails_open_or_closed(
    app: Flask, client: Client, receiver: Receiver, fail_closed: bool, connected: bool
) -> None:
    service = intercepting(client, receiver.url("/intercept"), fail_closed=fail_closed)
    _session, first, _second = bound(client, service)
    hooks = app.extensions["maskline.webhooks"].service.interceptors
    (interceptor,) = [i for i in hooks if isinstance(i, Interceptor)]  # other faces add their own
    interceptor.timeout = 0.2
    hold = threading.Event()
    receiver.during = lambda: hold.wait(5)
    try:
        dialed = Twilio(app, base=PUBLIC).call(BUYER, first.proxy_identifier).dialed
    finally:
        hold.set()

    assert (dialed is not None) == connected


@pytest.mark.parametrize(("fail_closed", "connected"), [(False, True), (True, False)])
def test_an_unreachable_intercept_fails_open_or_closed(
    app: Flask, client: Client, fail_closed: bool, connected: bool
) -> None:
    with receiving() as gone:
        url = gone.url("/intercept")  # nothing listens there once the block ends
    service = intercepting(client, url, fail_closed=fail_closed)
    _session, first, _second = bound(client, service)

    assert (Twilio(app, base=PUBLIC).call(BUYER, first.proxy_identifier).dialed is not None) == connected


def test_sessions_without_an_intercept_url_are_not_intercepted(
    app: Flask, client: Client, service: Any, receiver: Receiver
) -> None:
    intercepting(client, receiver.url("/intercept"))  # another service intercepts
    _session, first, _second = bound(client, service)

    assert Twilio(app, base=PUBLIC).call(BUYER, first.proxy_identifier).dialed is not None
    assert receiver.received == []


def test_vault_rewrap_moves_the_sealed_tokens_to_the_primary_kek(app: Flask, keys_file: Path) -> None:
    issued = credentials(app, "shop-a")
    services = services_of(app)
    old_ring = kr.read_keyring_file(keys_file)
    old = old_ring.kek.primary
    ring, new = kr.with_added_version(old_ring, "kek")
    kr.write_keyring_file(keys_file, kr.with_primary(ring, "kek", new))

    assert tokens_using(services, old) == 1
    assert rewrap_tokens(services) == 1
    assert (tokens_using(services, old), tokens_using(services, new)) == (0, 1)
    assert open_token(services, issued.account_sid) == issued.auth_token


# -- interactions under way (from the first webhook, before any status callback) ----------


def test_a_call_is_listed_from_its_first_webhook_with_its_live_status(
    app: Flask, client: Client, service: Any
) -> None:
    """Twilio's Interaction resource lists a call as soon as it reaches Proxy,
    with ``inbound_resource_status`` the status of the inbound Call (Twilio's
    call statuses: ``in-progress`` once answered, which Proxy's TwiML does at
    once), and its final status later (Proxy API reference, Interaction)."""
    session, first, second = bound(client, service)
    sessions = client.proxy.v1.services(service.sid).sessions
    assert sessions(session.sid).fetch().status == "open"
    twilio = Twilio(app, base=PUBLIC)
    call_sid = "CA" + "7" * 32
    assert twilio.call(BUYER, first.proxy_identifier, call_sid=call_sid).status == 200
    # A Session is in-progress from its first interaction (Proxy's Session status).
    fetched = sessions(session.sid).fetch()
    assert (fetched.status, fetched.date_last_interaction) == ("in-progress", EPOCH)
    interactions = client.proxy.v1.services(service.sid).sessions(session.sid).interactions

    (live,) = interactions.list()
    assert live.sid == derived_sid("interaction", call_sid)
    assert (live.type, live.inbound_resource_sid, live.inbound_resource_status) == (
        "voice",
        call_sid,
        "in-progress",
    )
    assert (live.inbound_participant_sid, live.outbound_participant_sid) == (first.sid, second.sid)
    assert interactions(live.sid).fetch().inbound_resource_status == "in-progress"
    # Under way: not deleted (its status callback would write it again).
    error = refused(lambda: interactions(live.sid).delete())
    assert (error.status, error.code) == (409, 20409)

    twilio.call_status(call_sid, "completed", duration=9)
    (ended,) = interactions.list()
    assert (ended.sid, ended.inbound_resource_status, json.loads(ended.data)) == (
        live.sid,
        "completed",
        {"duration": 9},
    )
    assert interactions(ended.sid).delete() is True


def test_a_refused_call_is_no_live_interaction(app: Flask, client: Client, service: Any) -> None:
    session, first, _second = bound(client, service)
    twilio = Twilio(app, base=PUBLIC)
    twilio.call("+12025550143", first.proxy_identifier, call_sid="CA" + "8" * 32)  # no participant
    assert client.proxy.v1.services(service.sid).sessions(session.sid).interactions.list() == []


def test_live_interactions_are_one_sorted_set_per_binding_with_no_number(
    app: Flask, client: Client, service: Any
) -> None:
    session, first, _second = bound(client, service)
    Twilio(app, base=PUBLIC).call(BUYER, first.proxy_identifier, call_sid="CA" + "9" * 32)
    services = services_of(app)
    with services.db.session() as db:
        binding_id = db.scalar(select(ProxySession.binding_id).where(ProxySession.sid == session.sid))
    key = f"ml:{{{first.proxy_identifier}}}:lv:{binding_id}"
    members = services.redis.zrange(key, 0, -1)
    assert [m.decode() if isinstance(m, bytes) else m for m in members] == ["CA" + "9" * 32]
    assert 0 < services.redis.ttl(key) <= int(services.settings.webhook_dedupe_ttl.total_seconds())


@pytest.mark.parametrize("word", ["STOP", "stopall", "Unsubscribe", "END", "cancel", "QUIT"])
def test_an_opt_out_keyword_is_not_proxied_and_recorded_as_80901(
    app: Flask, client: Client, service: Any, word: str
) -> None:
    """Proxy's opt-out keywords (Twilio's "Opt-out keywords" page for Proxy:
    STOP, STOPALL, UNSUBSCRIBE, END, CANCEL, QUIT, ...) are not proxied to the
    other participant, and Twilio logs warning 80901, "Message matched a stop
    word ... not proxying" (Twilio error dictionary, 80901)."""
    session, first, _second = bound(client, service)
    twilio = Twilio(app, base=PUBLIC)
    answer = twilio.sms(BUYER, first.proxy_identifier, word, message_sid="SM" + "4" * 32)
    assert "<Message" not in answer.text  # nothing relayed to the merchant

    (interaction,) = client.proxy.v1.services(service.sid).sessions(session.sid).interactions.list()
    assert (interaction.type, interaction.inbound_resource_sid) == ("message", "SM" + "4" * 32)
    assert (interaction.inbound_participant_sid, interaction.inbound_resource_status) == (
        first.sid,
        "received",
    )
    assert (interaction.outbound_resource_sid, interaction.outbound_resource_status) == (None, None)
    assert json.loads(interaction.data)["errorCode"] == 80901


def test_an_ordinary_text_is_still_proxied(app: Flask, client: Client, service: Any) -> None:
    _session, first, _second = bound(client, service)
    answer = Twilio(app, base=PUBLIC).sms(BUYER, first.proxy_identifier, "please stop by at 5")
    assert "<Message" in answer.text


def test_each_status_of_an_interaction_is_called_back_in_order(
    app: Flask,
    calling_back: tuple[Client, Any],
    receiver: Receiver,
    make_app: AppMaker,
    fake_twilio: FakeTwilioMessages,
) -> None:
    """Twilio calls a Service's ``callback_url`` "when the interaction status
    changes" (Proxy API reference, Service ``callback_url``): a message's
    ``sent`` and then ``delivered`` are two callbacks, not one."""
    client, service = calling_back
    session, first, _second = bound(client, service)
    mine = client.proxy.v1.services(service.sid).sessions(session.sid).participants(first.sid)
    sent = mine.message_interactions.create(body="ready for pickup")
    (message,) = fake_twilio.messages
    twilio = Twilio(app, base=PUBLIC)
    for status in ("sent", "delivered"):
        form = {
            "MessageSid": message["sid"],
            "MessageStatus": status,
            "From": message["from"],
            "To": message["to"],
        }
        twilio.post("/webhooks/twilio/sms/status", form)

    report = worker(app).run_once(make_app.clock())
    assert (report.queued, report.delivered) == (2, 2)
    statuses = [
        (form["interactionSid"], form["outboundResourceStatus"])
        for form in called_back(receiver, client.password)
    ]
    assert statuses == [(sent.sid, "sent"), (sent.sid, "delivered")]
    assert worker(app).run_once(make_app.clock()).queued == 0  # each event once
    assert services_of(app).redis.xlen("ml:proxy:events") == 0  # the worker trimmed what it queued


def test_events_of_bindings_without_a_callback_url_are_not_streamed(
    app: Flask, client: Client, service: Any
) -> None:
    _session, first, _second = bound(client, service)  # a Service with no callback_url
    Twilio(app, base=PUBLIC).call(BUYER, first.proxy_identifier, call_sid="CA" + "3" * 32)
    assert services_of(app).redis.xlen("ml:proxy:events") == 0


def test_the_worker_drains_the_event_stream_a_batch_at_a_time(
    app: Flask,
    calling_back: tuple[Client, Any],
    receiver: Receiver,
    make_app: AppMaker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from maskline.compat.twilio import interaction_events

    monkeypatch.setattr(interaction_events, "BATCH", 1)
    client, service = calling_back
    _session, first, _second = bound(client, service)
    twilio = Twilio(app, base=PUBLIC)
    sids = ["CA" + digit * 32 for digit in "12"]
    for call_sid in sids:
        twilio.call(BUYER, first.proxy_identifier, call_sid=call_sid)

    assert worker(app).run_once(make_app.clock()).queued == 2
    forms = called_back(receiver, client.password)
    assert [(f["interactionSid"], f["inboundResourceStatus"]) for f in forms] == [
        (derived_sid("interaction", sid), "in-progress") for sid in sids
    ]
    assert services_of(app).redis.xlen("ml:proxy:events") == 0
