"""The fields of Twilio's webhook requests: patterns, and reading them.

Used by the WSGI fast path and by the Flask views alike, so that both read
a field the same way. Every pattern is a full match: ``^...$`` would accept
a trailing newline.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from maskline.webhooks.interfaces import BadWebhookRequest

CALL_SID = re.compile(r"CA[0-9a-fA-F]{32}")
MESSAGE_SID = re.compile(r"(?:SM|MM)[0-9a-fA-F]{32}")
RELAY = re.compile(r"\+[0-9]{6,15}")
# Callers may be E.164, "anonymous", client:name or a SIP address: the
# router recognises only valid numbers, and never routes anything else.
CALLER = re.compile(r"[^\x00-\x1f]{1,256}")
DIGITS = re.compile(r"[0-9]{1,8}")
STATUS = re.compile(r"[a-z-]{1,20}")
RECORDING_SID = re.compile(r"RE[0-9a-fA-F]{32}")
# Recordings live at Twilio; anything else is not a recording URL.
RECORDING_URL = re.compile(r"https://[A-Za-z0-9.-]+/[\x21-\x7e]{1,480}")
MAX_MEDIA = 10


def field(source: Mapping[str, str], name: str, pattern: re.Pattern[str]) -> str:
    """``source[name]`` if it fully matches ``pattern``, else BadWebhookRequest."""
    value = source.get(name, "")
    if not pattern.fullmatch(value):
        raise BadWebhookRequest(name)
    return str(value)


def optional_int(source: Mapping[str, str], name: str) -> int | None:
    raw = source.get(name)
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise BadWebhookRequest(name)
    return int(raw)


def relays(args: Mapping[str, str], form: Mapping[str, str]) -> list[str]:
    """Where a callback's decision record may be: the relay number maskline's
    own callback URL names (``x``), else the number called, else the caller
    (a call or message maskline placed from its relay number)."""
    found = [args.get("x", ""), form.get("To", ""), form.get("From", "")]
    return list(dict.fromkeys(n for n in found if RELAY.fullmatch(n)))


def media_urls(form: Mapping[str, str]) -> list[str]:
    """The media of a message (``NumMedia``, ``MediaUrl<n>``), all https."""
    try:
        num_media = int(form.get("NumMedia", "0"))
    except ValueError:
        raise BadWebhookRequest("NumMedia") from None
    if not 0 <= num_media <= MAX_MEDIA:
        raise BadWebhookRequest("NumMedia")
    media = [form.get(f"MediaUrl{i}", "") for i in range(num_media)]
    if not all(url.startswith("https://") for url in media):
        raise BadWebhookRequest("MediaUrl")
    return media
