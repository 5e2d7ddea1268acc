"""SMS webhooks: forwarding with the relay as sender, policies, quotas, replays."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from maskline import services_of
from maskline.numbers.interfaces import InvalidRequest
from tests.integration.conftest import BUYER, COURIER, MERCHANT, STRANGER, AppMaker, Twilio, sid

MEDIA = {"NumMedia": "1", "MediaUrl0": "https://api.twilio.com/media/ME1"}


def message(answer: Any) -> tuple[str | None, str | None, str]:
    """(to, from, body) of the forwarded message."""
    msg = answer.find("Message")
    assert msg is not None, answer.text
    body = msg.find("Body")
    return msg.get("to"), msg.get("from"), (body.text if body is not None else msg.text) or ""


@pytest.mark.parametrize(("sender", "target"), [(MERCHANT, BUYER), (BUYER, MERCHANT)])
def test_message_is_forwarded_from_the_relay_number(
    twilio: Twilio, bind: Callable[..., Any], sender: str, target: str
) -> None:
    view = bind()
    answer = twilio.sms(sender, view.relay_number, "Your parcel is at the door")
    assert answer.status == 200
    assert message(answer) == (target, view.relay_number, "Your parcel is at the door")


def test_stranger_message_is_not_forwarded(twilio: Twilio, bind: Callable[..., Any]) -> None:
    view = bind()
    answer = twilio.sms(STRANGER, view.relay_number, "hello")
    assert answer.status == 200 and answer.xml.tag == "Response" and len(answer.xml) == 0


def test_on_an_axe_number_the_bound_party_reaches_the_most_recent_allowed_caller(
    twilio: Twilio, bind: Callable[..., Any]
) -> None:
    view = bind("axe")
    call_sid = sid()
    twilio.call(COURIER, view.relay_number, call_sid)
    twilio.key(COURIER, view.relay_number, view.extension, call_sid=call_sid)
    assert message(twilio.sms(BUYER, view.relay_number, "leave it by the door"))[0] == COURIER
    assert len(twilio.sms(STRANGER, view.relay_number, "hi").xml) == 0


@pytest.mark.parametrize(
    ("redact", "body", "expected"),
    [
        (frozenset({"phones", "links"}), "call me on (415) 555-0199", "call me on [phone removed]"),
        (
            frozenset({"phones", "links"}),
            "pay at https://evil.example.com/x now",
            "pay at [link removed] now",
        ),
        (frozenset({"phones", "links"}), "see www.shop.example.org", "see [link removed]"),
        (frozenset({"links"}), "call 415 555 0199", "call 415 555 0199"),
        (frozenset(), "https://x.example.com 4155550199", "https://x.example.com 4155550199"),
    ],
)
def test_redaction_policy_applies_to_forwarded_bodies(
    make_app: AppMaker, bind: Callable[..., Any], redact: frozenset[str], body: str, expected: str
) -> None:
    twilio = Twilio(make_app(sms_redact=redact))
    view = bind()
    assert message(twilio.sms(MERCHANT, view.relay_number, body))[2] == expected


def test_media_is_refused_by_default_with_a_reply_to_the_sender(
    twilio: Twilio, bind: Callable[..., Any]
) -> None:
    view = bind()
    to, _, body = message(twilio.sms(MERCHANT, view.relay_number, "photo", **MEDIA))
    assert to is None and "cannot be forwarded" in body


def test_media_is_forwarded_when_the_policy_says_so(make_app: AppMaker, bind: Callable[..., Any]) -> None:
    twilio = Twilio(make_app(sms_media="forward"))
    view = bind()
    answer = twilio.sms(MERCHANT, view.relay_number, "photo", **MEDIA)
    media = answer.find("Message/Media")
    assert message(answer)[0] == BUYER and media is not None and media.text == MEDIA["MediaUrl0"]


def test_messages_over_the_daily_quota_get_a_polite_refusal(
    make_app: AppMaker, bind: Callable[..., Any]
) -> None:
    twilio = Twilio(make_app(sms_per_day=2))
    view = bind()
    answers = [message(twilio.sms(MERCHANT, view.relay_number, f"m{i}")) for i in range(3)]
    assert [to for to, _, _ in answers] == [BUYER, BUYER, None]
    assert "limit" in answers[2][2]


def test_a_retry_gets_the_same_answer_and_a_replay_after_delivery_nothing(
    twilio: Twilio, bind: Callable[..., Any]
) -> None:
    view = bind()
    message_sid = sid("SM")
    first = twilio.sms(MERCHANT, view.relay_number, "hi", message_sid=message_sid)
    assert twilio.sms(MERCHANT, view.relay_number, "hi", message_sid=message_sid).text == first.text
    action = first.find("Message")
    assert action is not None
    status = twilio.post(action.get("action", ""), {"MessageSid": sid("SM"), "MessageStatus": "delivered"})
    assert status.status == 200
    assert len(twilio.sms(MERCHANT, view.relay_number, "hi", message_sid=message_sid).xml) == 0


def test_redis_unavailable_answers_an_empty_response(make_app: AppMaker, bind: Callable[..., Any]) -> None:
    make_app()
    view = bind()
    twilio = Twilio(make_app(redis_url="redis://127.0.0.1:1/0"))
    answer = twilio.sms(MERCHANT, view.relay_number, "hi")
    assert answer.status == 200 and len(answer.xml) == 0


def test_a_binding_can_turn_redaction_off_for_itself_only(twilio: Twilio, bind: Callable[..., Any]) -> None:
    own = bind(sms_redact=frozenset())
    default = bind(order_id="o-2")
    body = "call 415 555 0199 or see https://shop.example.com/t"
    assert message(twilio.sms(MERCHANT, own.relay_number, body))[2] == body
    redacted = message(twilio.sms(MERCHANT, default.relay_number, body))[2]
    assert "555 0199" not in redacted and "[link removed]" in redacted


def test_a_binding_can_redact_more_than_the_deployment(make_app: AppMaker, bind: Callable[..., Any]) -> None:
    twilio = Twilio(make_app(sms_redact=frozenset()))
    view = bind(sms_redact=frozenset({"phones"}))
    assert message(twilio.sms(MERCHANT, view.relay_number, "ring 415 555 0199"))[2] == "ring [phone removed]"


def test_a_binding_can_forward_media_where_the_deployment_refuses(
    twilio: Twilio, bind: Callable[..., Any]
) -> None:
    view = bind(sms_media="forward")
    answer = twilio.sms(MERCHANT, view.relay_number, "photo", **MEDIA)
    assert message(answer)[0] == BUYER and answer.find("Message/Media") is not None


def test_a_binding_can_refuse_media_where_the_deployment_forwards(
    make_app: AppMaker, bind: Callable[..., Any]
) -> None:
    twilio = Twilio(make_app(sms_media="forward"))
    view = bind(sms_media="refuse")
    to, _, body = message(twilio.sms(MERCHANT, view.relay_number, "photo", **MEDIA))
    assert to is None and "cannot be forwarded" in body


@pytest.mark.parametrize(
    ("field", "value"), [("sms_redact", frozenset({"emails"})), ("sms_media", "maybe"), ("record", "yes")]
)
def test_a_bad_binding_policy_is_refused_naming_the_field(
    bind: Callable[..., Any], field: str, value: Any
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        bind(**{field: value})
    assert caught.value.field == field


def test_the_binding_shows_its_own_policy(bind: Callable[..., Any]) -> None:
    view = bind(sms_redact=frozenset({"links"}), sms_media="forward", record=True)
    body = view.to_json()
    assert body["sms_policy"] == {"redact": ["links"], "media": "forward"} and body["record"] is True
    assert bind(order_id="o-2").to_json()["sms_policy"] == {"redact": None, "media": None}


def test_a_replayed_message_after_redis_lost_its_data_is_not_forwarded(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    view = bind()
    message_sid = sid("SM")
    first = twilio.sms(MERCHANT, view.relay_number, "hi", message_sid=message_sid)
    action = first.find("Message")
    assert action is not None
    twilio.post(action.get("action", ""), {"MessageSid": sid("SM"), "MessageStatus": "delivered"})
    services = services_of(app)
    services.redis.flushdb()
    assert services.numbers.rebuilder.trigger(wait=True)  # routes back from SQL, as after a loss
    replay = twilio.sms(MERCHANT, view.relay_number, "hi", message_sid=message_sid)
    assert replay.status == 200 and len(replay.xml) == 0
