"""The rest of a call or a message, as Twilio plays it after the first webhook:
status callbacks and recording callbacks, signed like every other request.

Twilio's voice status callbacks carry ``CallSid``, ``AccountSid``, ``From``,
``To``, ``CallStatus``, ``Direction``, ``ApiVersion``, ``CallbackSource``
(``call-progress-events``), ``SequenceNumber`` (from 0, in order),
``Timestamp`` (RFC 2822) and, once the call has ended, ``CallDuration``
in seconds. A message's status callback (its ``<Message action>``) carries
``MessageSid``/``SmsSid``, ``MessageStatus``/``SmsStatus``, ``AccountSid``,
``From``, ``To`` and ``ApiVersion``.
"""

from __future__ import annotations

import email.utils
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# How the far end of a connected call can end, as ``sim call --status`` names it.
CALL_ENDINGS = ("completed", "busy", "no-answer", "failed")
# A forwarded message's statuses, in Twilio's order, for the delivered case.
SMS_DELIVERED = ("sent", "delivered")

Post = Callable[[str, dict[str, str]], tuple[int, str]]


@dataclass(frozen=True)
class Callback:
    """One callback sent: what it reported and how the server answered."""

    kind: str  # call-status, recording, message-status
    status: str
    http_status: int

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "status": self.status, "http_status": self.http_status}


def _timestamp() -> str:
    return email.utils.formatdate(usegmt=True)


def call_progress(
    post: Post,
    *,
    path: str,
    account_sid: str,
    call_sid: str,
    from_number: str,
    to_number: str,
    connected: bool,
    ending: str = "completed",
    duration: int = 0,
) -> list[Callback]:
    """The status callbacks of one inbound call: for a connected call ringing,
    then in-progress and completed with ``duration`` (or ``ending`` if the far
    end was busy, did not answer or failed); for a call maskline answered
    itself (a refusal, an unanswered prompt) its completion alone."""
    if ending not in CALL_ENDINGS:
        raise ValueError(f"ending must be one of {', '.join(CALL_ENDINGS)}")
    statuses: list[tuple[str, int | None]]
    if not connected:
        statuses = [("completed", 0)]
    elif ending == "completed":
        statuses = [("ringing", None), ("in-progress", None), ("completed", duration)]
    else:
        statuses = [("ringing", None), (ending, 0)]
    sent = []
    for sequence, (status, seconds) in enumerate(statuses):
        form = {
            "CallSid": call_sid,
            "AccountSid": account_sid,
            "From": from_number,
            "To": to_number,
            "CallStatus": status,
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(sequence),
            "Timestamp": _timestamp(),
        }
        if seconds is not None:
            form["CallDuration"] = str(seconds)
        sent.append(Callback("call-status", status, post(path, form)[0]))
    return sent


def recording_completed(
    post: Post, *, callback_url: str, account_sid: str, call_sid: str, duration: int
) -> Callback:
    """The recording status callback a ``<Dial record>`` asked for, once the call ended."""
    sid = "RE" + secrets.token_hex(16)
    form = {
        "AccountSid": account_sid,
        "CallSid": call_sid,
        "RecordingSid": sid,
        "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{account_sid}/Recordings/{sid}",
        "RecordingStatus": "completed",
        "RecordingDuration": str(duration),
        "RecordingChannels": "2",
        "RecordingSource": "DialVerb",
        "RecordingStartTime": _timestamp(),
    }
    return Callback("recording", "completed", post(callback_url, form)[0])


def message_progress(
    post: Post,
    *,
    action: str,
    account_sid: str,
    relay: str,
    to_number: str,
    statuses: tuple[str, ...] = SMS_DELIVERED,
) -> tuple[str, list[Callback]]:
    """The status callbacks of a forwarded message, sent to its ``<Message action>``;
    the forwarded message's own sid and the callbacks."""
    sid = "SM" + secrets.token_hex(16)
    sent = []
    for status in statuses:
        form = {
            "MessageSid": sid,
            "SmsSid": sid,
            "AccountSid": account_sid,
            "From": relay,
            "To": to_number,
            "MessageStatus": status,
            "SmsStatus": status,
            "ApiVersion": "2010-04-01",
        }
        sent.append(Callback("message-status", status, post(action, form)[0]))
    return sid, sent
