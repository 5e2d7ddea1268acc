"""Everything maskline says to callers and texters, in each language it speaks.

One catalogue: the voice prompts, the SMS auto-replies and the recording
notice, in en-US and zh-CN. The language of an answer is the binding's
language if it has one, else the deployment's (``MASKLINE_VOICE_LANGUAGE``,
which defaults to zh-CN when ``MASKLINE_DEFAULT_REGION`` is CN).

The voice that speaks a language comes from here too. Twilio's ``<Say>``
takes the language code of the voice's own table: the Amazon Polly and
Google Mandarin voices (``Polly.Zhiyu``, ``Polly.Zhiyu-Neural``,
``Google.cmn-CN-Standard-A`` ...) are listed under ``cmn-CN``, while the
legacy ``alice`` voice takes ``zh-CN``. An invalid voice/language pair makes
``<Say>`` fail, so :func:`say_attributes` writes the pair the voice expects.
"""

from __future__ import annotations

from dataclasses import dataclass

LANGUAGES = ("en-US", "zh-CN")
DEFAULT_LANGUAGE = "en-US"


@dataclass(frozen=True, kw_only=True)
class Texts:
    """What maskline says, in one language."""

    # Voice (spoken by <Say>).
    extension: str
    wrong_extension: str
    goodbye: str
    rejected: str
    apology: str
    recording: str
    # An extension lockdown: the same words whether or not the extension exists.
    try_later: str
    # SMS auto-replies, sent back to the sender only, from the relay number.
    sms_quota: str
    sms_media_refused: str
    sms_stranger: str
    # Confirmations of the opt-out keywords (see optout.py). Twilio answers
    # STOP and START itself on its long codes; these are for carriers that don't.
    sms_opted_out: str
    sms_opted_in: str
    # To the other party, whose text was not sent because its recipient opted out.
    sms_recipient_opted_out: str


# Chinese punctuation is full width, as a reader and a speech engine expect it.
CATALOGUE: dict[str, Texts] = {
    "en-US": Texts(
        extension="Please enter the extension.",
        wrong_extension="That extension is not valid. Please try once more.",
        goodbye="Sorry, we could not connect your call. Goodbye.",
        rejected="Sorry, this number cannot connect your call. Goodbye.",
        apology="Sorry, we cannot connect your call right now. Please try again later. Goodbye.",
        recording="This call will be recorded.",
        try_later="Sorry, this number cannot connect extensions right now. Please try again later. Goodbye.",
        sms_quota="Sorry, this number has reached its message limit for now.",
        sms_media_refused="Sorry, pictures and files cannot be forwarded through this number.",
        sms_stranger="Sorry, this number cannot pass on your message.",
        sms_opted_out=(
            "You will receive no more messages from this number. Reply START to receive them again."
        ),
        sms_opted_in="You will receive messages from this number again. Reply STOP to stop them.",
        sms_recipient_opted_out=(
            "Your message was not delivered: its recipient asked for no more texts from this number."
        ),
    ),
    "zh-CN": Texts(
        extension="请输入分机号。",
        wrong_extension="分机号无效，请再试一次。",  # noqa: RUF001
        goodbye="抱歉，无法为您接通。再见。",  # noqa: RUF001
        rejected="抱歉，该号码无法为您接通。再见。",  # noqa: RUF001
        apology="抱歉，暂时无法为您接通，请稍后再试。再见。",  # noqa: RUF001
        recording="本次通话将被录音。",
        try_later="抱歉，该号码暂时无法接通分机，请稍后再试。再见。",  # noqa: RUF001
        sms_quota="抱歉，该号码的短信已达上限，请稍后再试。",  # noqa: RUF001
        sms_media_refused="抱歉，该号码无法转发图片和文件。",  # noqa: RUF001
        sms_stranger="抱歉，该号码无法转达您的短信。",  # noqa: RUF001
        sms_opted_out="您已退订，将不再收到该号码的短信。如需恢复，请回复START。",  # noqa: RUF001
        sms_opted_in="您已恢复接收该号码的短信。回复TD可退订。",
        sms_recipient_opted_out="您的短信未送达：对方已退订该号码的短信。",  # noqa: RUF001
    ),
}


def language_for(binding_language: str | None, deployment_language: str) -> str:
    """The language of an answer: the binding's if it is one we speak, else the deployment's."""
    if binding_language is not None and binding_language in CATALOGUE:
        return binding_language
    return deployment_language if deployment_language in CATALOGUE else DEFAULT_LANGUAGE


def texts(language: str | None) -> Texts:
    """The catalogue of ``language`` (an unknown or missing language gets en-US)."""
    return CATALOGUE.get(language or DEFAULT_LANGUAGE, CATALOGUE[DEFAULT_LANGUAGE])


# The voice used when MASKLINE_VOICE_NAME is not set: one Twilio lists for the language.
DEFAULT_VOICES = {"en-US": "alice", "zh-CN": "Polly.Zhiyu"}


@dataclass(frozen=True)
class SayAttributes:
    voice: str
    language: str


def say_attributes(language: str, voice: str | None = None) -> SayAttributes:
    """``voice`` and ``language`` for ``<Say>``, as Twilio's voice table pairs them.

    ``voice`` None means the language's default voice. Mandarin under an
    Amazon Polly or Google voice is ``cmn-CN``; ``alice`` and the basic
    voices keep the catalogue's code (``zh-CN``).
    """
    chosen = voice or DEFAULT_VOICES.get(language, DEFAULT_VOICES[DEFAULT_LANGUAGE])
    code = language
    if language == "zh-CN" and chosen.startswith(("Polly.", "Google.")):
        code = "cmn-CN"
    return SayAttributes(voice=chosen, language=code)


__all__ = [
    "CATALOGUE",
    "DEFAULT_LANGUAGE",
    "DEFAULT_VOICES",
    "LANGUAGES",
    "SayAttributes",
    "Texts",
    "language_for",
    "say_attributes",
    "texts",
]
