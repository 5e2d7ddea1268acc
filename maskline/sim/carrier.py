"""A carrier simulator: sends Twilio's webhooks, signed as Twilio signs them,
reads the TwiML and reports what Twilio would do.

It talks to maskline through a transport: HTTP to a running server, or a
Flask test client for an in-process app. Either way the requests carry a
valid ``X-Twilio-Signature`` computed for the public URL Twilio would call.
"""

from __future__ import annotations

import ipaddress
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from twilio.request_validator import RequestValidator

from maskline.sim import lifecycle
from maskline.sim.lifecycle import Callback
from maskline.sim.twiml import TwimlError, TwimlOutcome, parse_twiml

VOICE_PATH = "/webhooks/twilio/voice"
SMS_PATH = "/webhooks/twilio/sms"
VOICE_STATUS_PATH = "/webhooks/twilio/voice/status"
SMS_STATUS_PATH = "/webhooks/twilio/sms/status"
MAX_GATHERS = 3  # Twilio follows as many as the app asks; the simulator stops here


class Transport(Protocol):
    def post(self, path: str, form: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
        """POST a form; return (HTTP status, body)."""
        ...


def is_loopback_url(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HttpTransport:
    """Plain HTTP to a running maskline (loopback unless the caller allows more)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def post(self, path: str, form: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
        url = path if path.startswith("http") else self.base_url + path
        data = urllib.parse.urlencode(form).encode()
        request = urllib.request.Request(  # noqa: S310 (http(s) URL given by the operator)
            url, data=data, headers={"Content-Type": "application/x-www-form-urlencoded", **headers}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode(errors="replace")


class FlaskTransport:
    """An in-process app, through Flask's test client."""

    def __init__(self, app: Any) -> None:
        self.client = app.test_client()

    def post(self, path: str, form: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
        parts = urllib.parse.urlsplit(path)
        target = parts.path + (f"?{parts.query}" if parts.query else "") if parts.scheme else path
        response = self.client.post(target, data=form, headers=headers)
        return int(response.status_code), response.get_data(as_text=True)


def mask_number(number: str | None) -> str | None:
    """``+14155550132`` -> ``+1*******32``: enough to tell parties apart, no more."""
    if not number:
        return number
    if len(number) <= 4:
        return "*" * len(number)
    return number[:2] + "*" * (len(number) - 4) + number[-2:]


@dataclass(kw_only=True)
class CallResult:
    """What happened to one simulated call."""

    outcome: str  # connected, rejected, gather, error
    http_status: int
    dialed: str | None = None
    caller_id: str | None = None
    said: list[str] = field(default_factory=list)
    call_sid: str = ""
    steps: int = 0
    error: str | None = None
    # Both legs recorded (<Dial record=...>), and what the called party
    # heard before the calls were joined (the <Number url> whisper).
    recorded: bool = False
    callee_heard: list[str] = field(default_factory=list)
    # Set by play_call: how the call ended, how long it lasted, the callbacks sent.
    call_status: str | None = None
    duration: int | None = None
    callbacks: list[Callback] = field(default_factory=list)
    recording_callback: str | None = None

    def to_json(self, *, show_numbers: bool = False) -> dict[str, Any]:
        body = asdict(self)
        body.pop("recording_callback")
        if not show_numbers:
            body["dialed"] = mask_number(self.dialed)
        return body


@dataclass(kw_only=True)
class SmsResult:
    outcome: str  # forwarded, refused, error
    http_status: int
    messages: list[dict[str, str]] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    message_sid: str = ""
    error: str | None = None
    # Set by play_sms: the status callbacks of the forwarded messages.
    callbacks: list[Callback] = field(default_factory=list)
    actions: list[str | None] = field(default_factory=list)

    def to_json(self, *, show_numbers: bool = False) -> dict[str, Any]:
        body = asdict(self)
        body.pop("actions")
        if not show_numbers:
            body["messages"] = [{**m, "to": mask_number(m.get("to")) or ""} for m in self.messages]
        return body


class CarrierSimulator:
    """Plays Twilio: signed webhooks in, TwiML out, interpreted."""

    def __init__(
        self,
        *,
        transport: Transport,
        auth_token: str,
        public_url: str,
        account_sid: str = "AC" + "0" * 32,
    ) -> None:
        self.transport = transport
        self.validator = RequestValidator(auth_token)
        self.public_url = public_url.rstrip("/")
        self.account_sid = account_sid

    def url_for(self, path: str) -> str:
        return path if path.startswith("http") else self.public_url + path

    def signed_post(self, path: str, form: dict[str, str]) -> tuple[int, str]:
        """POST ``form`` with the signature Twilio would send for this URL."""
        signature = self.validator.compute_signature(self.url_for(path), form)
        return self.transport.post(path, form, {"X-Twilio-Signature": signature})

    def call(
        self,
        *,
        from_number: str,
        to_number: str,
        digits: list[str] | None = None,
        call_sid: str | None = None,
    ) -> CallResult:
        """Ring ``to_number`` from ``from_number``; key ``digits`` at each gather."""
        sid = call_sid or "CA" + secrets.token_hex(16)
        form = {
            "CallSid": sid,
            "AccountSid": self.account_sid,
            "From": from_number,
            "To": to_number,
            "CallStatus": "ringing",
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
        }
        pending = list(digits or [])
        path, step, said = VOICE_PATH, 0, []
        while True:
            step += 1
            status, body = self.signed_post(path, form)
            if status != 200:
                return CallResult(
                    outcome="error", http_status=status, call_sid=sid, steps=step, error=body[:200]
                )
            try:
                twiml = parse_twiml(body)
            except TwimlError as exc:
                return CallResult(
                    outcome="error", http_status=status, call_sid=sid, steps=step, error=str(exc)
                )
            said += twiml.said
            result = self._call_outcome(twiml, status, sid, step, said)
            if result.outcome == "connected" and twiml.dial_number_url:
                result.callee_heard = self._whisper(
                    twiml.dial_number_url, sid, to_number, result.dialed or ""
                )
            if result.outcome != "gather":
                return result
            if not pending or step > MAX_GATHERS or not twiml.gather_action:
                result.said += twiml.fallthrough  # nothing keyed: Twilio goes on past the <Gather>
                return result
            path = twiml.gather_action
            form = {**form, "Digits": pending.pop(0), "CallStatus": "in-progress"}

    def _whisper(self, url: str, parent_sid: str, relay: str, dialed: str) -> list[str]:
        """Fetch the called leg's whisper as Twilio does once that leg answers."""
        form = {
            "CallSid": "CA" + secrets.token_hex(16),
            "ParentCallSid": parent_sid,
            "AccountSid": self.account_sid,
            "From": relay,
            "To": dialed,
            "CallStatus": "in-progress",
            "Direction": "outbound-dial",
            "ApiVersion": "2010-04-01",
        }
        status, body = self.signed_post(url, form)
        if status != 200:
            return [f"(whisper failed: HTTP {status})"]
        try:
            return parse_twiml(body).said
        except TwimlError as exc:
            return [f"(whisper failed: {exc})"]

    def recording(
        self,
        *,
        callback_url: str,
        call_sid: str,
        recording_sid: str | None = None,
        status: str = "completed",
        duration: int = 0,
    ) -> int:
        """Send the recording status callback a <Dial record> asked for."""
        sid = recording_sid or "RE" + secrets.token_hex(16)
        form = {
            "AccountSid": self.account_sid,
            "CallSid": call_sid,
            "RecordingSid": sid,
            "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{self.account_sid}/Recordings/{sid}",
            "RecordingStatus": status,
            "RecordingDuration": str(duration),
            "RecordingChannels": "2",
            "RecordingSource": "DialVerb",
        }
        return self.signed_post(callback_url, form)[0]

    @staticmethod
    def _call_outcome(twiml: TwimlOutcome, status: int, sid: str, step: int, said: list[str]) -> CallResult:
        if twiml.dial_number:
            return CallResult(
                outcome="connected",
                http_status=status,
                dialed=twiml.dial_number,
                caller_id=twiml.dial_caller_id,
                said=said,
                call_sid=sid,
                steps=step,
                recorded=twiml.dial_attributes.get("record", "do-not-record") != "do-not-record",
                recording_callback=twiml.dial_attributes.get("recordingStatusCallback"),
            )
        if twiml.gather_action:
            return CallResult(outcome="gather", http_status=status, said=said, call_sid=sid, steps=step)
        return CallResult(outcome="rejected", http_status=status, said=said, call_sid=sid, steps=step)

    def call_status(
        self, *, call_sid: str, from_number: str, to_number: str, status: str = "completed", duration: int = 0
    ) -> int:
        """Send the status callback Twilio sends when the call changes state."""
        form = {
            "CallSid": call_sid,
            "AccountSid": self.account_sid,
            "From": from_number,
            "To": to_number,
            "CallStatus": status,
            "CallDuration": str(duration),
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
        }
        return self.signed_post(VOICE_STATUS_PATH, form)[0]

    def sms(
        self,
        *,
        from_number: str,
        to_number: str,
        body: str,
        media_urls: list[str] | None = None,
        message_sid: str | None = None,
    ) -> SmsResult:
        sid = message_sid or "SM" + secrets.token_hex(16)
        form = {
            "MessageSid": sid,
            "SmsSid": sid,
            "AccountSid": self.account_sid,
            "From": from_number,
            "To": to_number,
            "Body": body,
            "NumMedia": str(len(media_urls or [])),
            "ApiVersion": "2010-04-01",
        }
        for i, url in enumerate(media_urls or []):
            form[f"MediaUrl{i}"] = url
        status, text = self.signed_post(SMS_PATH, form)
        if status != 200:
            return SmsResult(outcome="error", http_status=status, message_sid=sid, error=text[:200])
        try:
            twiml = parse_twiml(text)
        except TwimlError as exc:
            return SmsResult(outcome="error", http_status=status, message_sid=sid, error=str(exc))
        # A <Message> back to the sender is a reply (e.g. a refusal), not a forward.
        forwarded = [m for m in twiml.messages if m.get("to") and m.get("to") != from_number]
        outcome = "forwarded" if forwarded else "refused"
        return SmsResult(
            outcome=outcome,
            http_status=status,
            messages=twiml.messages,
            said=twiml.said,
            message_sid=sid,
            actions=twiml.message_actions,
        )

    # -- whole calls and messages, callbacks included ---------------------------

    def play_call(
        self,
        *,
        from_number: str,
        to_number: str,
        digits: list[str] | None = None,
        ending: str = "completed",
        duration: int = 30,
    ) -> CallResult:
        """A whole call as Twilio plays it: the webhooks, then the status
        callbacks (and the recording callback of a recorded, answered call)."""
        result = self.call(from_number=from_number, to_number=to_number, digits=digits)
        if result.outcome == "error":
            return result
        connected = result.outcome == "connected"
        result.call_status = ending if connected else "completed"
        result.duration = duration if connected and ending == "completed" else 0
        result.callbacks = lifecycle.call_progress(
            self.signed_post,
            path=VOICE_STATUS_PATH,
            account_sid=self.account_sid,
            call_sid=result.call_sid,
            from_number=from_number,
            to_number=to_number,
            connected=connected,
            ending=ending,
            duration=result.duration,
        )
        if connected and result.recording_callback and result.call_status == "completed":
            result.callbacks.append(
                lifecycle.recording_completed(
                    self.signed_post,
                    callback_url=result.recording_callback,
                    account_sid=self.account_sid,
                    call_sid=result.call_sid,
                    duration=result.duration,
                )
            )
        return result

    def play_sms(self, *, from_number: str, to_number: str, body: str) -> SmsResult:
        """A whole message: the webhook, then the status callbacks of each
        forwarded message (sent, delivered) to its ``<Message action>``."""
        result = self.sms(from_number=from_number, to_number=to_number, body=body)
        for message, action in zip(result.messages, result.actions, strict=False):
            if action and message.get("to") and message.get("to") != from_number:
                _, sent = lifecycle.message_progress(
                    self.signed_post,
                    action=action,
                    account_sid=self.account_sid,
                    relay=message.get("from") or to_number,
                    to_number=message["to"],
                )
                result.callbacks += sent
        return result
