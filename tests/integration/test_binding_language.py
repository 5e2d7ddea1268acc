"""Answers in the binding's own language (issue 18): set at bind time, read in
the connect's one statement, falling back to the deployment's language."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from maskline import services_of
from maskline.numbers.interfaces import InvalidRequest
from maskline.numbers.models import Binding
from tests.integration.api_helpers import ApiClient, make_key
from tests.integration.conftest import BUYER, MERCHANT, AppMaker, Twilio, sid

MEDIA = {"NumMedia": "1", "MediaUrl0": "https://api.twilio.com/media/ME1", "MediaContentType0": "image/jpeg"}


def test_a_chinese_binding_announces_recording_in_chinese_on_an_english_deployment(
    twilio: Twilio, bind: Callable[..., Any]
) -> None:
    view = bind(record=True, language="zh-CN")

    answer = twilio.call(MERCHANT, view.relay_number, sid())
    say = answer.find("Say")
    number = answer.find("Dial/Number")
    assert number is not None
    whisper = twilio.post(number.get("url", ""), {"CallSid": sid(), "From": view.relay_number, "To": BUYER})

    assert answer.dialed == (view.relay_number, BUYER)
    assert say is not None and say.text == "本次通话将被录音。" and say.get("language") == "cmn-CN"
    assert "本次通话将被录音" in whisper.said and whisper.dialed is None


def test_a_binding_without_a_language_speaks_the_deployment_s(
    twilio: Twilio, bind: Callable[..., Any]
) -> None:
    view = bind(record=True)

    answer = twilio.call(MERCHANT, view.relay_number, sid())

    assert "This call will be recorded." in answer.said


def test_an_english_binding_on_a_chinese_deployment_answers_in_english(
    make_app: AppMaker, bind: Callable[..., Any]
) -> None:
    twilio = Twilio(make_app(voice_language="zh-CN"))
    english = bind(language="en-US", order_id="o-1")

    refused = twilio.sms(MERCHANT, english.relay_number, "photo", **MEDIA)

    assert "cannot be forwarded" in refused.text


def test_sms_quota_replies_in_the_binding_s_language(make_app: AppMaker, bind: Callable[..., Any]) -> None:
    twilio = Twilio(make_app(sms_per_day=1))
    view = bind(language="zh-CN")
    assert BUYER in twilio.sms(MERCHANT, view.relay_number, "m0").text  # forwarded

    over = twilio.sms(MERCHANT, view.relay_number, "m1")

    assert "短信已达上限" in over.text


def test_call_quota_refusal_is_in_the_binding_s_language(
    make_app: AppMaker, bind: Callable[..., Any]
) -> None:
    twilio = Twilio(make_app(calls_per_hour=1))
    view = bind(language="zh-CN")
    assert twilio.call(MERCHANT, view.relay_number).dialed is not None

    refused = twilio.call(MERCHANT, view.relay_number)

    assert refused.dialed is None and "无法为您接通" in refused.said


def test_a_stranger_hears_the_deployment_s_language_whatever_the_binding_s(
    twilio: Twilio, bind: Callable[..., Any]
) -> None:
    # What a stranger hears must not tell which extension (or binding) exists.
    view = bind("axe", allow="any", language="zh-CN")
    call_sid = sid()
    twilio.call("+16175550165", view.relay_number, call_sid)

    wrong = twilio.key("+16175550165", view.relay_number, "999999", call_sid=call_sid)

    assert "not valid" in wrong.said


@pytest.mark.parametrize("language", ["fr-FR", "zh", "", "ZH-CN"])
def test_a_language_we_do_not_speak_is_refused_naming_the_field(app: Flask, language: str) -> None:
    api = ApiClient(app, make_key(app, "shop-a"))
    body = {"order_id": "o-1", "mode": "axb", "parties": {"buyer": BUYER, "merchant": MERCHANT}}

    refused = api.post("/v1/bindings", {**body, "language": language})

    assert refused.status == 422
    assert refused.body["error"]["fields"] == [
        {"field": "language", "reason": "must be en-US or zh-CN (or left out for the deployment's)"}
    ]
    with services_of(app).db.session() as session:
        assert session.query(Binding).count() == 0


def test_the_api_stores_and_shows_the_language(app: Flask) -> None:
    api = ApiClient(app, make_key(app, "shop-a"))
    body = {"order_id": "o-1", "mode": "axb", "parties": {"buyer": BUYER, "merchant": MERCHANT}}

    made = api.post("/v1/bindings", {**body, "language": "zh-CN"})
    shown = api.get(f"/v1/bindings/{made.body['id']}")

    assert made.status == 201 and made.body["language"] == "zh-CN" and shown.body["language"] == "zh-CN"
    with services_of(app).db.session() as session:
        assert session.get(Binding, made.body["id"]).language == "zh-CN"  # type: ignore[union-attr]


def test_the_service_refuses_an_unknown_language(app: Flask, bind: Callable[..., Any]) -> None:
    with pytest.raises(InvalidRequest) as refused:
        bind(language="de-DE")
    assert refused.value.field == "language"
