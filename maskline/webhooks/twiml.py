"""TwiML answers. The connect answer comes from a prepared template (hot path);
everything else from twilio's own builders.

``tests/unit/test_twiml.py`` proves the template gives the same XML as
twilio's ``VoiceResponse`` for the same inputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.sax.saxutils import escape

from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

EXTENSION_ACTION = "/webhooks/twilio/voice/extension"
WHISPER_PATH = "/webhooks/twilio/voice/whisper"
RECORDING_CALLBACK_PATH = "/webhooks/twilio/voice/recording"

_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
# Attribute order as twilio's builder writes it (sorted by name).
_CONNECT = (
    _XML_DECLARATION + '<Response><Dial answerOnBridge="true" callerId={caller_id} timeLimit="{time_limit}">'
    "<Number>{number}</Number></Dial></Response>"
)
# ElementTree escapes these in attribute values, besides & < >.
_ATTR_ENTITIES = {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#09;"}


def _attr(value: str) -> str:
    return '"' + escape(value, _ATTR_ENTITIES) + '"'


def connect(*, relay: str, number: str, time_limit: int) -> str:
    """``<Dial callerId=relay ...><Number>number</Number></Dial>``.

    The caller ID is the relay number by construction: this function has no
    other caller-ID input, so no path can show a party's own number.
    """
    return _CONNECT.format(caller_id=_attr(relay), time_limit=int(time_limit), number=escape(number))


@dataclass(frozen=True)
class Prompts:
    """What maskline says, in one language."""

    extension: str
    wrong_extension: str
    goodbye: str
    rejected: str
    apology: str
    recording: str


PROMPTS: dict[str, Prompts] = {
    "en-US": Prompts(
        extension="Please enter the extension.",
        wrong_extension="That extension is not valid. Please try once more.",
        goodbye="Sorry, we could not connect your call. Goodbye.",
        rejected="Sorry, this number cannot connect your call. Goodbye.",
        apology="Sorry, we cannot connect your call right now. Please try again later. Goodbye.",
        recording="This call will be recorded.",
    ),
    # Chinese punctuation is full width, as a speech engine expects it.
    "zh-CN": Prompts(
        extension="请输入分机号。",
        wrong_extension="分机号无效，请再试一次。",  # noqa: RUF001
        goodbye="抱歉，无法为您接通。再见。",  # noqa: RUF001
        rejected="抱歉，该号码无法为您接通。再见。",  # noqa: RUF001
        apology="抱歉，暂时无法为您接通，请稍后再试。再见。",  # noqa: RUF001
        recording="本次通话将被录音。",
    ),
}


class Voice:
    """Spoken answers in the configured language and voice."""

    def __init__(
        self, *, language: str, voice: str, extension_prompt: str | None = None, path_prefix: str = ""
    ) -> None:
        self.language = language
        self.extension_action = path_prefix + EXTENSION_ACTION
        self.whisper_url = path_prefix + WHISPER_PATH
        self.recording_callback = path_prefix + RECORDING_CALLBACK_PATH
        self.voice = voice
        prompts = PROMPTS[language]
        self.prompts = prompts
        self.extension_prompt = extension_prompt or prompts.extension
        # The fixed answers never change: render them once.
        self.rejected = self._say_and_hang_up(prompts.rejected)
        self.goodbye = self._say_and_hang_up(prompts.goodbye)
        self.apology = self._say_and_hang_up(prompts.apology)
        self.silent_goodbye = str(_hang_up())
        # Played to the called party before the calls are joined.
        whisper = VoiceResponse()
        whisper.say(prompts.recording, voice=voice, language=language)
        self.whisper = str(whisper)

    def _say_and_hang_up(self, text: str) -> str:
        response = VoiceResponse()
        response.say(text, voice=self.voice, language=self.language)
        response.hangup()
        return str(response)

    def connect_recorded(self, *, relay: str, number: str, time_limit: int, call_sid: str) -> str:
        """A connect that records both legs, announced to both sides.

        The caller hears the announcement before the dial; the called party
        hears it through ``<Number url>`` before the calls are joined. The
        caller ID is the relay number, as in :func:`connect`.
        """
        response = VoiceResponse()
        response.say(self.prompts.recording, voice=self.voice, language=self.language)
        dial = response.dial(
            caller_id=relay,
            answer_on_bridge=True,
            time_limit=int(time_limit),
            record="record-from-answer-dual",
            recording_status_callback=f"{self.recording_callback}?ref={call_sid}",
            recording_status_callback_event="completed absent",
            recording_status_callback_method="POST",
        )
        dial.number(number, url=self.whisper_url, method="POST")
        return str(response)

    def gather(self, *, digits: int, attempt: int, retry: bool = False) -> str:
        """Ask for ``digits`` DTMF digits; the answer comes back as ``attempt``."""
        response = VoiceResponse()
        gather = response.gather(
            input="dtmf",
            num_digits=digits,
            action=f"{self.extension_action}?attempt={attempt}",
            method="POST",
        )
        text = f"{self.prompts.wrong_extension} {self.extension_prompt}" if retry else self.extension_prompt
        gather.say(text, voice=self.voice, language=self.language)
        # No digits before the timeout: Twilio falls through to here.
        response.say(self.prompts.goodbye, voice=self.voice, language=self.language)
        response.hangup()
        return str(response)


def _hang_up() -> VoiceResponse:
    response = VoiceResponse()
    response.hangup()
    return response


# Characters XML 1.0 cannot carry, not even escaped: one in a forwarded body
# or media URL would make the whole answer unreadable to Twilio.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def message(
    *, to: str, relay: str, body: str, media: list[str] | None = None, action: str | None = None
) -> str:
    """``<Message to=to from=relay>body</Message>`` (with ``<Media>`` if forwarded).

    ``action`` receives the forwarded message's status callbacks. Characters
    XML cannot carry are dropped from the sender's body and media URLs.
    """
    body = _NOT_XML.sub("", body)
    media = [_NOT_XML.sub("", url) for url in media] if media else media
    response = MessagingResponse()
    msg = response.message(body if not media else None, to=to, from_=relay, action=action)
    if media:
        msg.body(body)
        for url in media:
            msg.media(url)
    return str(response)


def reply(body: str) -> str:
    """A message back to the sender only (Twilio fills in to and from)."""
    response = MessagingResponse()
    response.message(body)
    return str(response)


EMPTY_MESSAGING = str(MessagingResponse())
EMPTY_VOICE = str(VoiceResponse())

__all__ = [
    "EMPTY_MESSAGING",
    "EMPTY_VOICE",
    "EXTENSION_ACTION",
    "PROMPTS",
    "RECORDING_CALLBACK_PATH",
    "WHISPER_PATH",
    "Voice",
    "connect",
    "message",
    "reply",
]
