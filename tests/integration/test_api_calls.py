"""POST /v1/bindings/{id}/calls: click-to-call through a local server playing Twilio's REST API.

Twilio calls the initiator from the relay number; the signed bridge webhook
then dials the other party with the relay number as caller ID; the status
callback stores the interaction. Errors never carry a party number.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from maskline import services_of
from maskline.clock import FixedClock
from maskline.webhooks.models import Interaction
from tests.e2e.conftest import free_port
from tests.integration.api_helpers import ApiClient, make_key
from tests.integration.conftest import (
    AUTH_TOKEN,
    BUYER,
    COURIER,
    MERCHANT,
    STRANGER,
    AppMaker,
    Twilio,
    sid,
    without_party_digits,
)
from tests.twilio_server import ACCOUNT_SID, FakeTwilio, twilio_serving

PUBLIC = "https://relay.example.com"
BRIDGE = f"{PUBLIC}/webhooks/twilio/voice/bridge?ref="
AXB = {"order_id": "o-1", "mode": "axb", "parties": {"buyer": BUYER, "merchant": MERCHANT}}


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    with twilio_serving() as fake:
        fake.auth_token = AUTH_TOKEN
        yield fake


def twilio_app(make_app: AppMaker, fake: FakeTwilio, **overrides: Any) -> Flask:
    settings = {"public_url": PUBLIC, "twilio_account_sid": ACCOUNT_SID, "twilio_api_url": fake.url}
    return make_app(**{**settings, **overrides})


@pytest.fixture
def app(make_app: AppMaker, fake_twilio: FakeTwilio) -> Flask:
    return twilio_app(make_app, fake_twilio)


@pytest.fixture
def twilio(app: Flask) -> Twilio:
    return Twilio(app, base=PUBLIC)


def create(api: ApiClient, body: dict[str, Any] | None = None) -> dict[str, Any]:
    reply = api.post("/v1/bindings", body or AXB)
    assert reply.status == 201, reply.text
    return dict(reply.body)


def place(api: ApiClient, binding: dict[str, Any], from_role: str = "merchant") -> dict[str, Any]:
    reply = api.post(f"/v1/bindings/{binding['id']}/calls", {"from_role": from_role})
    assert reply.status == 201, reply.text
    return dict(reply.body)


def answer(twilio: Twilio, fake: FakeTwilio, call_sid: str, *, url: str | None = None) -> Any:
    """Twilio fetching the call's URL once the initiator answers (From is the relay number)."""
    call = next(c for c in fake.calls if c["sid"] == call_sid)
    twilio.calls[call_sid] = (call["from"], call["to"])  # sent again with its status callbacks
    path = (url or call["form"]["Url"]).removeprefix(PUBLIC)
    return twilio.post(
        path, {"CallSid": call_sid, "From": call["from"], "To": call["to"], "Direction": "outbound-api"}
    )


def interactions(app: Flask) -> list[Interaction]:
    with services_of(app).db.session() as session:
        return list(session.scalars(select(Interaction)))


def test_twilio_is_asked_to_call_the_initiator_from_the_relay_number(
    api: ApiClient, fake_twilio: FakeTwilio
) -> None:
    binding = create(api)
    reply = api.post(f"/v1/bindings/{binding['id']}/calls", {"from_role": "merchant"})
    assert reply.status == 201
    assert reply.body["from_role"] == "merchant" and reply.body["to_role"] == "buyer"
    assert reply.body["status"] == "queued" and without_party_digits(reply.text)
    [call] = fake_twilio.calls
    assert reply.body["sid"] == call["sid"]
    form = call["form"]
    assert (form["To"], form["From"]) == (MERCHANT, binding["relay_number"])
    assert form["Url"].startswith(BRIDGE) and form["Method"] == "POST"
    assert form["StatusCallback"] == f"{PUBLIC}/webhooks/twilio/voice/status"
    assert BUYER not in repr(form)
    assert [r.authorised for r in fake_twilio.requests] == [True]


def test_the_bridge_dials_the_other_party_from_the_relay_and_the_status_callback_stores_it(
    app: Flask, api: ApiClient, twilio: Twilio, fake_twilio: FakeTwilio, clock: FixedClock
) -> None:
    binding = create(api)
    call_sid = place(api, binding)["sid"]
    bridged = answer(twilio, fake_twilio, call_sid)
    assert bridged.status == 200 and bridged.dialed == (binding["relay_number"], BUYER)
    clock.advance(seconds=30)
    assert twilio.call_status(call_sid, "completed", 25).status == 200
    [row] = interactions(app)
    assert (row.sid, row.binding_id, row.owner, row.type, row.from_role, row.to_role) == (
        call_sid,
        binding["id"],
        "shop-a",
        "call",
        "merchant",
        "buyer",
    )
    assert (row.status, row.duration) == ("completed", 25)
    listed = api.get(f"/v1/bindings/{binding['id']}/interactions").body["data"]
    assert [(i["sid"], i["from_role"], i["to_role"]) for i in listed] == [(call_sid, "merchant", "buyer")]


def test_an_unanswered_click_to_call_is_still_an_interaction(
    app: Flask, api: ApiClient, twilio: Twilio, fake_twilio: FakeTwilio
) -> None:
    call_sid = place(api, create(api), from_role="buyer")["sid"]
    placed = fake_twilio.calls[-1]
    twilio.calls[call_sid] = (placed["from"], placed["to"])  # Twilio's status callbacks carry both
    twilio.call_status(call_sid, "no-answer")
    assert [(r.from_role, r.to_role, r.status) for r in interactions(app)] == [
        ("buyer", "merchant", "no-answer")
    ]


def test_a_retried_bridge_gets_the_same_answer_and_no_other_call_can_use_its_ref(
    api: ApiClient, twilio: Twilio, fake_twilio: FakeTwilio
) -> None:
    binding = create(api)
    call_sid = place(api, binding)["sid"]
    first = answer(twilio, fake_twilio, call_sid)
    assert answer(twilio, fake_twilio, call_sid).text == first.text
    url = fake_twilio.calls[0]["form"]["Url"]
    other = twilio.post(
        url.removeprefix(PUBLIC), {"CallSid": sid(), "From": binding["relay_number"], "To": STRANGER}
    )
    assert other.status == 200 and other.dialed is None and other.said
    twilio.call_status(call_sid, "completed", 9)
    assert answer(twilio, fake_twilio, call_sid).dialed is None  # a replay connects no one


def test_the_bridge_fails_closed(api: ApiClient, twilio: Twilio, fake_twilio: FakeTwilio) -> None:
    binding = create(api)
    relay = binding["relay_number"]
    unknown = twilio.post("/webhooks/twilio/voice/bridge?ref=" + "x" * 24, {"CallSid": sid(), "From": relay})
    assert unknown.status == 200 and unknown.dialed is None and unknown.said
    call_sid = place(api, binding)["sid"]
    assert api.delete(f"/v1/bindings/{binding['id']}").status == 200
    ended = answer(twilio, fake_twilio, call_sid)
    assert ended.status == 200 and ended.dialed is None and ended.said
    assert without_party_digits(unknown.text + ended.text)


def test_the_bridge_wants_twilios_signature(api: ApiClient, twilio: Twilio, fake_twilio: FakeTwilio) -> None:
    call_sid = place(api, create(api))["sid"]
    path = fake_twilio.calls[0]["form"]["Url"].removeprefix(PUBLIC)
    forged = twilio.post(
        path, {"CallSid": call_sid, "From": fake_twilio.calls[0]["from"]}, signature="forged"
    )
    assert forged.status == 403
    assert answer(twilio, fake_twilio, call_sid).dialed is not None  # the forgery used nothing up


def test_an_axe_binding_with_one_allowed_caller_calls_between_the_two(
    api: ApiClient, twilio: Twilio, fake_twilio: FakeTwilio
) -> None:
    binding = create(api, {"order_id": "o-2", "mode": "axe", "parties": {"buyer": BUYER}, "allow": [COURIER]})
    call_sid = place(api, binding, from_role="caller")["sid"]
    assert fake_twilio.calls[0]["form"]["To"] == COURIER
    assert answer(twilio, fake_twilio, call_sid).dialed == (binding["relay_number"], BUYER)


@pytest.mark.parametrize("allow", ["any", [COURIER, STRANGER]])
def test_an_axe_binding_without_one_other_party_is_422(api: ApiClient, allow: Any) -> None:
    binding = create(api, {"order_id": "o-2", "mode": "axe", "parties": {"buyer": BUYER}, "allow": allow})
    reply = api.post(f"/v1/bindings/{binding['id']}/calls", {"from_role": "buyer"})
    assert reply.status == 422 and reply.body["error"]["fields"][0]["field"] == "binding_id"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "from_role"),
        ({"from_role": 7}, "from_role"),
        ({"from_role": "courier"}, "from_role"),
        ({"from_role": "buyer", "to": BUYER}, "to"),
    ],
)
def test_a_bad_body_is_422_naming_the_field(
    api: ApiClient, fake_twilio: FakeTwilio, body: dict[str, Any], field: str
) -> None:
    reply = api.post(f"/v1/bindings/{create(api)['id']}/calls", body)
    assert reply.status == 422 and field in {f["field"] for f in reply.body["error"]["fields"]}
    assert without_party_digits(reply.text) and fake_twilio.calls == []


def test_who_may_place_a_call(
    app: Flask, api: ApiClient, other_api: ApiClient, fake_twilio: FakeTwilio
) -> None:
    binding = create(api)
    path = f"/v1/bindings/{binding['id']}/calls"
    assert ApiClient(app, None).post(path, {"from_role": "buyer"}).status == 401
    reader = ApiClient(app, make_key(app, "shop-a", ["bindings:read", "bindings:write"]))
    denied = reader.post(path, {"from_role": "buyer"})
    assert denied.status == 403 and "calls:write" in denied.body["error"]["message"]
    assert other_api.post(path, {"from_role": "buyer"}).status == 404
    api.delete(f"/v1/bindings/{binding['id']}")
    assert api.post(path, {"from_role": "buyer"}).status == 409
    assert fake_twilio.calls == []


def test_click_to_call_counts_against_the_bindings_call_quota(
    make_app: AppMaker, fake_twilio: FakeTwilio
) -> None:
    app = twilio_app(make_app, fake_twilio, calls_per_hour=2)
    api, twilio = ApiClient(app, make_key(app, "shop-a")), Twilio(app, base=PUBLIC)
    binding = create(api)
    place(api, binding)
    assert twilio.call(BUYER, binding["relay_number"]).dialed is not None  # the second call this hour
    reply = api.post(f"/v1/bindings/{binding['id']}/calls", {"from_role": "buyer"})
    assert reply.status == 429 and reply.body["error"]["code"] == "call_quota_exceeded"
    assert "2 per hour" in reply.body["error"]["message"]
    assert len(fake_twilio.calls) == 1
    assert twilio.call(MERCHANT, binding["relay_number"]).dialed is None  # inbound is over quota too


def test_twilios_refusal_is_502_with_its_status_and_code_and_no_number(
    api: ApiClient, fake_twilio: FakeTwilio, redis_client: Any
) -> None:
    binding = create(api)
    fake_twilio.fail_next(400, 21211, f"The 'To' number {MERCHANT} is not a valid phone number.")
    reply = api.post(f"/v1/bindings/{binding['id']}/calls", {"from_role": "merchant"})
    assert reply.status == 502
    error = reply.body["error"]
    assert error["code"] == "twilio_error" and error["twilio"] == {"status": 400, "code": 21211}
    assert "21211" in error["message"] and "is not a valid phone number" in error["message"]
    assert without_party_digits(reply.text)
    assert list(redis_client.scan_iter("ml:br:*")) == []  # the unused bridge is gone


def test_twilio_out_of_reach_is_502_saying_no_call_was_placed(make_app: AppMaker) -> None:
    app = make_app(
        public_url=PUBLIC, twilio_account_sid=ACCOUNT_SID, twilio_api_url=f"http://127.0.0.1:{free_port()}"
    )
    api = ApiClient(app, make_key(app, "shop-a"))
    reply = api.post(f"/v1/bindings/{create(api)['id']}/calls", {"from_role": "buyer"})
    assert reply.status == 502 and reply.body["error"]["twilio"] == {"status": None, "code": None}
    assert "no call was placed" in reply.body["error"]["message"]


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"twilio_account_sid": None}, "MASKLINE_TWILIO_ACCOUNT_SID"),
        ({"public_url": None}, "MASKLINE_PUBLIC_URL"),
    ],
)
def test_without_configuration_it_is_503_naming_the_setting(
    make_app: AppMaker, fake_twilio: FakeTwilio, overrides: dict[str, Any], setting: str
) -> None:
    app = twilio_app(make_app, fake_twilio, **overrides)
    api = ApiClient(app, make_key(app, "shop-a"))
    reply = api.post(f"/v1/bindings/{create(api)['id']}/calls", {"from_role": "buyer"})
    assert reply.status == 503 and setting in reply.body["error"]["message"]
    assert fake_twilio.requests == []


def test_a_retried_click_to_call_with_its_idempotency_key_rings_once(
    api: ApiClient, fake_twilio: FakeTwilio
) -> None:
    binding = create(api)
    path = f"/v1/bindings/{binding['id']}/calls"
    first = api.post(path, {"from_role": "merchant"}, headers={"Idempotency-Key": "ring-1"})
    again = api.post(path, {"from_role": "merchant"}, headers={"Idempotency-Key": "ring-1"})
    assert first.status == again.status == 201 and again.body == first.body
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert len(fake_twilio.calls) == 1
    other = api.post(path, {"from_role": "buyer"}, headers={"Idempotency-Key": "ring-1"})
    assert other.status == 409 and len(fake_twilio.calls) == 1


def _dead_request(app: Flask, key: str, body: dict[str, Any], path: str, *, started: bool) -> Any:
    """A click-to-call that claimed ``key`` and died (its database went away)
    before it could answer: before asking Twilio, or (``started``) after."""
    from maskline.api.views import EXTENSION_KEY

    store = app.extensions[EXTENSION_KEY].idempotency
    lease = store.begin("shop-a", key, store.fingerprint("POST", path, json.dumps(body).encode()))
    if started:
        with services_of(app).db.session() as session:
            store.start(session, lease)
    return lease


def test_a_click_to_call_key_its_request_abandoned_before_dialling_is_taken_over_after_the_lease(
    app: Flask, api: ApiClient, fake_twilio: FakeTwilio, clock: FixedClock
) -> None:
    path = f"/v1/bindings/{create(api)['id']}/calls"
    body = {"from_role": "merchant"}
    _dead_request(app, "ring-1", body, path, started=False)
    early = api.post(path, body, headers={"Idempotency-Key": "ring-1"})
    assert early.status == 409 and "still being handled" in early.body["error"]["message"]
    clock.advance(minutes=3)
    retry = api.post(path, body, headers={"Idempotency-Key": "ring-1"})
    again = api.post(path, body, headers={"Idempotency-Key": "ring-1"})
    assert (retry.status, again.status, again.body) == (201, 201, retry.body)
    assert len(fake_twilio.calls) == 1


def test_a_click_to_call_key_abandoned_after_asking_twilio_never_rings_again(
    app: Flask, api: ApiClient, fake_twilio: FakeTwilio, clock: FixedClock
) -> None:
    path = f"/v1/bindings/{create(api)['id']}/calls"
    body = {"from_role": "merchant"}
    _dead_request(app, "ring-1", body, path, started=True)
    clock.advance(minutes=3)
    retry = api.post(path, body, headers={"Idempotency-Key": "ring-1"})
    assert retry.status == 409 and "may have been placed" in retry.body["error"]["message"]
    assert fake_twilio.calls == []
    fresh = api.post(path, body, headers={"Idempotency-Key": "ring-2"})
    assert fresh.status == 201 and len(fake_twilio.calls) == 1


def test_a_request_whose_key_was_taken_over_cannot_dial(
    app: Flask, api: ApiClient, clock: FixedClock
) -> None:
    from maskline.api.interfaces import Conflict
    from maskline.api.views import EXTENSION_KEY

    path = f"/v1/bindings/{create(api)['id']}/calls"
    store = app.extensions[EXTENSION_KEY].idempotency
    fingerprint = store.fingerprint("POST", path, b"{}")
    slow = store.begin("shop-a", "ring-1", fingerprint)
    clock.advance(minutes=3)
    taker = store.begin("shop-a", "ring-1", fingerprint)
    with services_of(app).db.session() as session, pytest.raises(Conflict, match="took it over"):
        store.start(session, slow)
    store.finish(slow, 503, {})  # the slow one gives up: the taker's hold stays
    with services_of(app).db.session() as session:
        store.start(session, taker)
    store.finish(taker, 502, {"error": {"code": "twilio_error"}}, keep=True)
    replay = store.begin("shop-a", "ring-1", fingerprint)
    assert (replay.status, replay.body) == (502, {"error": {"code": "twilio_error"}})
