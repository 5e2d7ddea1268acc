"""The prepared connect template gives exactly twilio's own XML."""

from __future__ import annotations

import pytest
from twilio.twiml.voice_response import VoiceResponse

from maskline.webhooks import twiml


def twilio_connect(*, relay: str, number: str, time_limit: int) -> str:
    response = VoiceResponse()
    dial = response.dial(caller_id=relay, answer_on_bridge=True, time_limit=time_limit)
    dial.number(number)
    return str(response)


@pytest.mark.parametrize(
    ("relay", "number", "time_limit"),
    [
        ("+14155550100", "+14155550132", 3600),
        ("+8613800138000", "+8613900139000", 60),
        ('+1"&<>', "+1&<>\"'", 14400),  # escaping, should odd input ever arrive
        ("+1\n\t\r", "sip:a@b;x=1", 120),
    ],
)
def test_connect_template_matches_twilio_builder(relay: str, number: str, time_limit: int) -> None:
    assert twiml.connect(relay=relay, number=number, time_limit=time_limit) == twilio_connect(
        relay=relay, number=number, time_limit=time_limit
    )


@pytest.mark.parametrize("language", sorted(twiml.PROMPTS))
def test_every_language_renders_its_answers(language: str) -> None:
    voice = twiml.Voice(language=language, voice="alice")
    for text in (voice.rejected, voice.goodbye, voice.apology, voice.gather(digits=4, attempt=1)):
        assert f'language="{language}"' in text and text.startswith("<?xml")


def test_gather_asks_for_digits_and_names_the_next_attempt() -> None:
    text = twiml.Voice(language="en-US", voice="alice", extension_prompt="Key the slip code").gather(
        digits=3, attempt=2, retry=True
    )
    assert 'numDigits="3"' in text and "attempt=2" in text and "Key the slip code" in text
    assert 'input="dtmf"' in text


def test_message_comes_from_the_relay_and_escapes_the_body() -> None:
    text = twiml.message(to="+14155550132", relay="+14155550100", body="a < b & c")
    assert 'from="+14155550100"' in text and 'to="+14155550132"' in text and "a &lt; b &amp; c" in text
