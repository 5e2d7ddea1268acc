"""Voice webhooks through Flask, signed as Twilio signs them, over real SQL and Redis."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from prometheus_client import REGISTRY
from sqlalchemy import update

from maskline import services_of
from maskline.clock import FixedClock
from maskline.numbers.route_copies import copies_key, copy_field
from maskline.numbers.routes import epoch
from maskline.vault.models import VaultEntry
from maskline.webhooks.services import DecisionStore
from tests.integration.conftest import BUYER, COURIER, MERCHANT, STRANGER, X1, X2, AppMaker, Twilio, sid


def count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(f"maskline_{name}_total", labels) or 0.0


@pytest.mark.parametrize(("caller", "target"), [(MERCHANT, BUYER), (BUYER, MERCHANT)])
def test_axb_connects_both_ways_with_the_relay_as_caller_id(
    twilio: Twilio, bind: Callable[..., Any], caller: str, target: str
) -> None:
    view = bind()
    answer = twilio.call(caller, view.relay_number)
    assert answer.status == 200
    assert answer.dialed == (view.relay_number, target)
    dial = answer.find("Dial")
    assert dial is not None and dial.get("answerOnBridge") == "true" and dial.get("timeLimit") == "3600"


def test_courier_keys_the_extension_and_reaches_the_buyer(twilio: Twilio, bind: Callable[..., Any]) -> None:
    view = bind("axe")
    call_sid = sid()
    gather = twilio.call(COURIER, view.relay_number, call_sid).find("Gather")
    assert gather is not None
    assert gather.get("numDigits") == "4" and gather.get("action", "").startswith(
        "/webhooks/twilio/voice/extension"
    )
    answer = twilio.key(COURIER, view.relay_number, view.extension, call_sid=call_sid)
    assert answer.dialed == (view.relay_number, BUYER)


def test_a_caller_not_on_the_allow_list_is_not_connected_by_the_right_extension(
    twilio: Twilio, bind: Callable[..., Any]
) -> None:
    view = bind("axe")
    call_sid = sid()
    twilio.call(STRANGER, view.relay_number, call_sid)
    first = twilio.key(STRANGER, view.relay_number, view.extension, call_sid=call_sid)
    assert first.dialed is None and first.find("Gather") is not None  # same as a wrong extension
    second = twilio.key(STRANGER, view.relay_number, view.extension, call_sid=call_sid, attempt=2)
    assert second.dialed is None and second.find("Gather") is None and second.find("Hangup") is not None


def test_wrong_extension_gets_one_more_try_then_goodbye(twilio: Twilio, bind: Callable[..., Any]) -> None:
    view = bind("axe")
    wrong = "0000" if view.extension != "0000" else "1111"
    call_sid = sid()
    retry = twilio.key(COURIER, view.relay_number, wrong, call_sid=call_sid)
    gather = retry.find("Gather")
    assert gather is not None and gather.get("action", "").endswith("attempt=2")
    assert "not valid" in retry.said
    goodbye = twilio.key(COURIER, view.relay_number, wrong, call_sid=call_sid, attempt=2)
    assert goodbye.find("Gather") is None and goodbye.find("Hangup") is not None


def test_too_many_wrong_extensions_lock_the_caller_out(make_app: AppMaker, bind: Callable[..., Any]) -> None:
    twilio = Twilio(make_app(extension_max_failures=3))
    view = bind("axe")
    before = count("extension_lockouts")
    for attempt in (1, 2, 1):
        twilio.key(STRANGER, view.relay_number, "9999", call_sid=sid(), attempt=attempt)
    assert count("extension_lockouts") == before + 1
    locked = twilio.call(STRANGER, view.relay_number)
    assert locked.find("Gather") is None and locked.find("Hangup") is not None
    # The courier, on another phone, is not locked out.
    assert twilio.call(COURIER, view.relay_number).find("Gather") is not None


def test_stranger_gets_a_polite_refusal_counted_by_reason(twilio: Twilio, bind: Callable[..., Any]) -> None:
    view = bind()
    before = count("webhook_rejections", reason="stranger")
    answer = twilio.call(STRANGER, view.relay_number)
    assert answer.dialed is None and "Sorry" in answer.said and answer.find("Hangup") is not None
    assert count("webhook_rejections", reason="stranger") == before + 1


def test_expired_binding_connects_no_one(twilio: Twilio, bind: Callable[..., Any], clock: FixedClock) -> None:
    import datetime as dt

    view = bind(ttl=dt.timedelta(hours=1))
    clock.advance(hours=1, seconds=1)
    assert twilio.call(BUYER, view.relay_number).dialed is None


def test_a_relay_number_calling_a_relay_number_is_refused(twilio: Twilio, bind: Callable[..., Any]) -> None:
    view = bind()
    other = X2 if view.relay_number == X1 else X1
    before = count("webhook_rejections", reason="relay_caller")
    assert twilio.call(other, view.relay_number).dialed is None
    assert count("webhook_rejections", reason="relay_caller") == before + 1


@pytest.mark.parametrize("signature", ["", "bm90IGEgc2lnbmF0dXJl"])
def test_missing_or_forged_signature_is_403(twilio: Twilio, bind: Callable[..., Any], signature: str) -> None:
    view = bind()
    answer = twilio.post(
        "/webhooks/twilio/voice",
        {"CallSid": sid(), "From": MERCHANT, "To": view.relay_number},
        signature=signature,
    )
    assert answer.status == 403 and BUYER not in answer.text


def test_signature_over_other_fields_is_403(twilio: Twilio, bind: Callable[..., Any]) -> None:
    view = bind()
    params = {"CallSid": sid(), "From": MERCHANT, "To": view.relay_number}
    signature = twilio.validator.compute_signature("http://localhost/webhooks/twilio/voice", params)
    answer = twilio.post("/webhooks/twilio/voice", {**params, "From": BUYER}, signature=signature)
    assert answer.status == 403


def test_a_retry_of_the_same_step_gets_the_same_answer(twilio: Twilio, bind: Callable[..., Any]) -> None:
    view = bind()
    call_sid = sid()
    first = twilio.call(MERCHANT, view.relay_number, call_sid)
    assert twilio.call(MERCHANT, view.relay_number, call_sid).text == first.text


def test_a_replay_after_the_call_completed_connects_no_one(twilio: Twilio, bind: Callable[..., Any]) -> None:
    view = bind()
    call_sid = sid()
    assert twilio.call(MERCHANT, view.relay_number, call_sid).dialed is not None
    twilio.call_status(call_sid, "completed", 42)
    assert twilio.call(MERCHANT, view.relay_number, call_sid).dialed is None


@pytest.mark.parametrize(
    ("overrides", "base", "headers", "status"),
    [
        ({"public_url": "https://relay.example.com/ml"}, "https://relay.example.com/ml", {}, 200),
        ({"public_url": "https://relay.example.com/ml"}, "http://localhost", {}, 403),
        (
            {"trust_proxy": True},
            "https://relay.example.com",
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "relay.example.com"},
            200,
        ),
        (
            {},
            "https://relay.example.com",
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "relay.example.com"},
            403,
        ),
    ],
)
def test_signature_is_checked_against_the_public_url(
    make_app: AppMaker,
    bind: Callable[..., Any],
    overrides: dict[str, Any],
    base: str,
    headers: dict[str, str],
    status: int,
) -> None:
    twilio = Twilio(make_app(**overrides), base=base)
    view = bind()
    params = {"CallSid": sid(), "From": MERCHANT, "To": view.relay_number}
    assert twilio.post("/webhooks/twilio/voice", params, headers=headers).status == status


def test_redis_unavailable_answers_an_apology_with_200(make_app: AppMaker, bind: Callable[..., Any]) -> None:
    make_app()
    view = bind()
    twilio = Twilio(make_app(redis_url="redis://127.0.0.1:1/0"))
    before = count("webhook_failures", endpoint="voice")
    answer = twilio.call(MERCHANT, view.relay_number)
    assert answer.status == 200 and answer.dialed is None and "try again later" in answer.said
    assert count("webhook_failures", endpoint="voice") == before + 1


def test_a_vault_entry_that_does_not_verify_ends_in_the_apology(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    view = bind()
    services = services_of(app)
    token = services.numbers.router.resolve(view.relay_number, MERCHANT).target_token
    with services.db.session() as session:
        session.execute(update(VaultEntry).where(VaultEntry.token == token).values(ciphertext=b"\x00" * 40))
    # Without its route copy, the connect reads the vault row (the fallback).
    services.webhook_backends.redis.hdel(copies_key(view.relay_number), copy_field(view.id))
    answer = twilio.call(MERCHANT, view.relay_number)
    assert answer.status == 200 and answer.dialed is None and "try again later" in answer.said


def test_calls_over_the_hourly_quota_are_refused_until_the_next_hour(
    make_app: AppMaker, bind: Callable[..., Any], clock: FixedClock
) -> None:
    twilio = Twilio(make_app(calls_per_hour=2))
    view = bind()
    assert [twilio.call(MERCHANT, view.relay_number).dialed is not None for _ in range(3)] == [
        True,
        True,
        False,
    ]
    clock.advance(hours=1)
    assert twilio.call(BUYER, view.relay_number).dialed is not None


def test_a_connects_quota_counters_live_to_the_end_of_their_window_and_a_minute(
    app: Flask, twilio: Twilio, bind: Callable[..., Any], clock: FixedClock
) -> None:
    view = bind()
    redis = services_of(app).webhook_backends.redis
    assert twilio.call(MERCHANT, view.relay_number).dialed is not None
    counters = sorted(k.decode() for k in redis.scan_iter(match=f"ml:{{{view.relay_number}}}:q:*"))
    assert [key.rsplit(":", 1)[1][0] for key in counters] == ["d", "h"]
    now = epoch(clock())
    left = {"d": 86400 - now % 86400 + 60, "h": 3600 - now % 3600 + 60}
    for key in counters:
        # Set when the window's first use creates the counter; a later use in
        # the same window leaves it (the same end of window).
        assert 0 < redis.ttl(key) <= left[key.rsplit(":", 1)[1][0]]
    clock.advance(minutes=10)
    assert twilio.call(MERCHANT, view.relay_number).dialed is not None
    for key in counters:
        assert int(redis.get(key)) == 2
        assert left[key.rsplit(":", 1)[1][0]] - 600 < redis.ttl(key) <= left[key.rsplit(":", 1)[1][0]]


def test_prompts_follow_the_configured_language(make_app: AppMaker, bind: Callable[..., Any]) -> None:
    twilio = Twilio(make_app(voice_language="zh-CN", voice_name="Polly.Zhiyu"))
    view = bind("axe")
    say = twilio.call(COURIER, view.relay_number).xml.find("Gather/Say")
    # Twilio lists its Mandarin Polly voice under cmn-CN (alice took zh-CN).
    assert say is not None and say.get("language") == "cmn-CN" and say.get("voice") == "Polly.Zhiyu"


@pytest.mark.parametrize("missing", ["CallSid", "To", "From"])
def test_a_signed_request_without_a_field_is_400(twilio: Twilio, missing: str) -> None:
    params = {"CallSid": sid(), "From": MERCHANT, "To": X1}
    del params[missing]
    assert twilio.post("/webhooks/twilio/voice", params).status == 400


def test_actions_carry_the_public_url_prefix(make_app: AppMaker, bind: Callable[..., Any]) -> None:
    twilio = Twilio(make_app(public_url="https://relay.example.com/ml"), base="https://relay.example.com/ml")
    view = bind("axe")
    gather = twilio.call(COURIER, view.relay_number).find("Gather")
    assert gather is not None and gather.get("action") == "/ml/webhooks/twilio/voice/extension?attempt=1"


@pytest.mark.parametrize("caller", ["anonymous", "client:alice", "sip:bob@example.com;transport=tls"])
def test_unidentifiable_callers_are_refused_politely(
    twilio: Twilio, bind: Callable[..., Any], caller: str
) -> None:
    view = bind()
    answer = twilio.call(caller, view.relay_number)
    assert answer.status == 200 and answer.dialed is None and answer.find("Hangup") is not None


def test_a_replay_after_redis_lost_its_data_still_connects_no_one(
    app: Flask, twilio: Twilio, bind: Callable[..., Any], redis_client: Any
) -> None:
    view = bind()
    call_sid = sid()
    assert twilio.call(MERCHANT, view.relay_number, call_sid).dialed is not None
    assert twilio.call_status(call_sid, "completed", 12).status == 200
    services = services_of(app)
    services.redis.flushdb()  # Redis loses everything, "this call is over" included
    assert services.numbers.rebuilder.trigger(wait=True)  # routes back from SQL, as after a loss
    replay = twilio.call(MERCHANT, view.relay_number, call_sid)
    assert replay.status == 200 and replay.dialed is None and BUYER not in replay.text
    assert twilio.call(MERCHANT, view.relay_number).dialed is not None  # a new call still connects


def test_a_retry_of_a_live_call_after_its_binding_was_unbound_connects_no_one(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    # The red team's replay: the call's end status never came, and the
    # stored <Dial> was handed out again after the order ended.
    view = bind()
    call_sid = sid()
    assert twilio.call(MERCHANT, view.relay_number, call_sid).dialed == (view.relay_number, BUYER)
    services_of(app).numbers.bindings.unbind(view.id, actor="test")
    replay = twilio.call(MERCHANT, view.relay_number, call_sid)
    assert replay.status == 200 and replay.dialed is None and BUYER not in replay.text


def test_a_replay_after_the_decision_record_expired_connects_no_one_once_the_binding_ended(
    app: Flask, twilio: Twilio, bind: Callable[..., Any], clock: FixedClock
) -> None:
    view = bind(ttl=dt.timedelta(hours=1))
    call_sid = sid()
    assert twilio.call(MERCHANT, view.relay_number, call_sid).dialed is not None
    services = services_of(app)
    # The record outlives the binding: at least the binding's life plus an hour.
    ttl = services.redis.ttl(DecisionStore.key(call_sid, view.relay_number))
    assert ttl >= services.settings.webhook_dedupe_ttl.total_seconds() - 5
    services.redis.delete(DecisionStore.key(call_sid, view.relay_number))  # as if it had expired
    clock.advance(seconds=2 * 3600)  # the binding has ended
    replay = twilio.call(MERCHANT, view.relay_number, call_sid)
    assert replay.dialed is None and BUYER not in replay.text


def test_a_decision_record_lives_as_long_as_a_long_binding(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    view = bind(ttl=dt.timedelta(days=30))
    call_sid = sid()
    assert twilio.call(MERCHANT, view.relay_number, call_sid).dialed is not None
    ttl = services_of(app).redis.ttl(DecisionStore.key(call_sid, view.relay_number))
    assert ttl > 29 * 86400  # not the 7-day de-dup TTL: a replay within the binding's life is refused
