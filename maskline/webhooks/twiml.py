"""TwiML answers. The connect answer comes from a prepared template (hot path);
everything else from twilio's own builders.

``tests/unit/test_twiml.py`` proves the template gives the same XML as
twilio's ``VoiceResponse`` for the same inputs.
"""

from __future__ import annotations

import re
from urllib.parse import quote
from xml.sax.saxutils import escape

from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from maskline.webhooks.prompts import CATALOGUE, Texts, say_attributes, texts

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


# The texts live in one catalogue (prompts.py); these names stay for the
# code that reads the voice prompts from here.
Prompts = Texts
PROMPTS: dict[str, Texts] = CATALOGUE


def sms_reply(kind: str, language: str | None) -> str:
    """An SMS auto-reply (``quota``, ``media_refused``, ``stranger``, ``opted_out``,
    ``opted_in``) in ``language``, as TwiML back to the sender."""
    return reply(getattr(texts(language), f"sms_{kind}"))


class Voice:
    """Spoken answers in the configured language and voice."""

    def __init__(
        self,
        *,
        language: str,
        voice: str | None,
        extension_prompt: str | None = None,
        path_prefix: str = "",
        named_in_whisper: bool = False,
    ) -> None:
        """``named_in_whisper``: a binding's language, not the deployment's; the
        whisper URL names it, so the called party hears the same language."""
        # <Say>'s attributes as Twilio pairs them (zh-CN under Polly is cmn-CN).
        say = say_attributes(language, voice)
        self.language = say.language
        self.extension_action = path_prefix + EXTENSION_ACTION
        self.whisper_url = path_prefix + WHISPER_PATH + (f"?lang={language}" if named_in_whisper else "")
        self.recording_callback = path_prefix + RECORDING_CALLBACK_PATH
        self.voice = say.voice
        prompts = texts(language)
        self.prompts = prompts
        self.extension_prompt = extension_prompt or prompts.extension
        # The fixed answers never change: render them once.
        self.rejected = self._say_and_hang_up(prompts.rejected)
        self.goodbye = self._say_and_hang_up(prompts.goodbye)
        self.apology = self._say_and_hang_up(prompts.apology)
        self.try_later = self._say_and_hang_up(prompts.try_later)
        self.silent_goodbye = str(_hang_up())
        # Played to the called party before the calls are joined.
        whisper = VoiceResponse()
        whisper.say(prompts.recording, voice=self.voice, language=self.language)
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
            recording_status_callback=f"{self.recording_callback}?ref={call_sid}&x={quote(relay)}",
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
    "Prompts",
    "Voice",
    "connect",
    "message",
    "reply",
    "sms_reply",
]
