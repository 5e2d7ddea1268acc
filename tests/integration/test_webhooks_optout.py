"""SMS opt-out words on the webhook path: never forwarded, recorded, and obeyed
until the sender opts back in (mainland and English words in every deployment)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from maskline import services_of
from maskline.webhooks.models import Interaction
from tests.integration.conftest import BUYER, MERCHANT, Twilio, sid


def forwarded(answer: Any) -> bool:
    return answer.find("Message") is not None and answer.find("Message").get("to") is not None


def statuses(app: Flask) -> list[str]:
    with services_of(app).db.session() as session:
        return [row.status for row in session.scalars(select(Interaction).order_by(Interaction.started_at))]


@pytest.mark.parametrize("word", ["退订", "TD", "T", "STOP", "unsubscribe", "Stop!"])
def test_an_opt_out_word_is_not_forwarded_and_stops_texts_to_its_sender(
    app: Flask, twilio: Twilio, bind: Callable[..., Any], word: str
) -> None:
    view = bind()
    assert not forwarded(twilio.sms(BUYER, view.relay_number, word))
    assert statuses(app) == ["opted_out"]
    dropped = twilio.sms(MERCHANT, view.relay_number, "your parcel is at the door")
    assert not forwarded(dropped)
    assert dropped.find("Message") is not None  # the merchant is told it was not delivered
    # The buyer can still write to the merchant.
    assert forwarded(twilio.sms(BUYER, view.relay_number, "thanks"))


def test_start_opts_back_in_and_is_forwarded_while_unstop_is_not(
    twilio: Twilio, bind: Callable[..., Any]
) -> None:
    view = bind()
    twilio.sms(BUYER, view.relay_number, "STOP")
    assert forwarded(twilio.sms(BUYER, view.relay_number, "START"))  # can be an ordinary answer
    assert forwarded(twilio.sms(MERCHANT, view.relay_number, "hello again"))
    twilio.sms(BUYER, view.relay_number, "TD")
    assert not forwarded(twilio.sms(BUYER, view.relay_number, "UNSTOP"))
    assert forwarded(twilio.sms(MERCHANT, view.relay_number, "and again"))


def test_a_sentence_with_stop_in_it_is_an_ordinary_text(twilio: Twilio, bind: Callable[..., Any]) -> None:
    view = bind()
    assert forwarded(twilio.sms(BUYER, view.relay_number, "please stop by the gate"))
    assert forwarded(twilio.sms(MERCHANT, view.relay_number, "ok"))


def test_a_retried_opt_out_stays_unforwarded(app: Flask, twilio: Twilio, bind: Callable[..., Any]) -> None:
    view = bind()
    message_sid = sid("SM")
    twilio.sms(BUYER, view.relay_number, "退订", message_sid=message_sid)
    assert not forwarded(twilio.sms(BUYER, view.relay_number, "退订", message_sid=message_sid))
    assert statuses(app) == ["opted_out"]


def test_the_opt_out_set_holds_no_number(app: Flask, twilio: Twilio, bind: Callable[..., Any]) -> None:
    view = bind()
    twilio.sms(BUYER, view.relay_number, "STOP")
    redis = services_of(app).redis
    members = redis.smembers(f"ml:{{{view.relay_number}}}:optout")
    assert len(members) == 1
    digits = BUYER.lstrip("+")
    assert all(digits.encode() not in m and digits[-10:].encode() not in m for m in members)
