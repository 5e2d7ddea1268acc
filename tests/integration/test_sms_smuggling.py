# ruff: noqa: RUF001  (look-alike digits are the attack)
"""The red team's SMS bodies, sent as signed webhooks: none reaches the
other party with the number or the link in it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from maskline.webhooks.sms_redaction import normalise_digits
from tests.integration.conftest import MERCHANT, Twilio
from tests.integration.test_webhooks_sms import message

KEYCAP = "\ufe0f\u20e3"


@pytest.mark.parametrize(
    "body",
    [
        "3,1,0,5,5,5,0,1,2,3",
        "310*555*0123",
        "3a1a0a5a5a5a0a1a2a3",
        "一三八一二三四五六七八",
        "".join(d + KEYCAP for d in "3105550123"),
        "１３８００１３８０００",
    ],
)
def test_smuggled_numbers_are_redacted(twilio: Twilio, bind: Callable[..., Any], body: str) -> None:
    view = bind()

    forwarded = message(twilio.sms(MERCHANT, view.relay_number, f"call {body} now"))[2]

    assert forwarded == "call [phone removed] now"
    assert normalise_digits(forwarded) == ""


@pytest.mark.parametrize("body", ["evil.example/p", "go to evil。com", "ｅｖｉｌ．ｃｏｍ/x"])
def test_bare_domains_are_redacted(twilio: Twilio, bind: Callable[..., Any], body: str) -> None:
    view = bind()

    forwarded = message(twilio.sms(MERCHANT, view.relay_number, body))[2]

    assert "[link removed]" in forwarded and "evil" not in forwarded


def test_a_number_split_across_two_texts_is_not_forwarded_whole(
    twilio: Twilio, bind: Callable[..., Any]
) -> None:
    view = bind()
    first = message(twilio.sms(MERCHANT, view.relay_number, "my cell 312 555"))[2]
    second = message(twilio.sms(MERCHANT, view.relay_number, "0123 call me"))[2]
    assert "0123" not in second and "[phone removed]" in second
    assert normalise_digits(first + second) != "3125550123"
