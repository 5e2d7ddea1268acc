"""The Flask side of the Twilio webhooks: signature, fields, then the service.

Every endpoint is a form-encoded POST, as Twilio sends them. A bad signature
is 403; a signed request with a bad field is 400; anything else is HTTP 200
with TwiML, including a backend failure (an apology).
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from flask.typing import ResponseReturnValue

from maskline.webhooks import twiml
from maskline.webhooks.interfaces import BadWebhookRequest, SignatureInvalid
from maskline.webhooks.recordings import RecordingEvent
from maskline.webhooks.services import EXTENSION_ATTEMPTS, SIGNATURE_FAILURES, WebhookService
from maskline.webhooks.signature import SignatureChecker

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks/twilio")

EXTENSION_KEY = "maskline.webhooks"
_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
_MESSAGE_SID = re.compile(r"^(?:SM|MM)[0-9a-fA-F]{32}$")
_RELAY = re.compile(r"^\+[0-9]{6,15}$")
# Callers may be E.164, "anonymous", client:name or a SIP address: the
# router recognises only valid numbers, and never routes anything else.
_CALLER = re.compile(r"^[^\x00-\x1f]{1,256}$")
_DIGITS = re.compile(r"^[0-9]{1,8}$")
_STATUS = re.compile(r"^[a-z-]{1,20}$")
_RECORDING_SID = re.compile(r"^RE[0-9a-fA-F]{32}$")
# Recordings live at Twilio; anything else is not a recording URL.
_RECORDING_URL = re.compile(r"^https://[A-Za-z0-9.-]+/[\x21-\x7e]{1,480}$")
_MAX_MEDIA = 10


class _Webhooks:
    def __init__(self, *, service: WebhookService, checker: SignatureChecker) -> None:
        self.service = service
        self.checker = checker


def init_app(app: Flask, services: Any) -> None:
    """Register the blueprint with its service and signature checker."""
    app.extensions[EXTENSION_KEY] = _Webhooks(
        service=WebhookService(services=services), checker=SignatureChecker(settings=services.settings)
    )
    app.register_blueprint(bp)


def _hooks() -> _Webhooks:
    hooks: _Webhooks = current_app.extensions[EXTENSION_KEY]
    return hooks


def _field(name: str, pattern: re.Pattern[str], source: Any = None) -> str:
    value = (request.form if source is None else source).get(name, "")
    if not pattern.match(value):
        raise BadWebhookRequest(name)
    return str(value)


def _xml(text: str) -> Response:
    return Response(text, status=200, mimetype="text/xml")


@bp.errorhandler(SignatureInvalid)
def _forbidden(_exc: SignatureInvalid) -> ResponseReturnValue:
    SIGNATURE_FAILURES.inc()
    return Response("forbidden\n", status=403, mimetype="text/plain")


@bp.errorhandler(BadWebhookRequest)
def _bad_request(exc: BadWebhookRequest) -> ResponseReturnValue:
    return Response(f"bad request: {exc.field}\n", status=400, mimetype="text/plain")


@bp.before_request
def _verify_signature() -> None:
    # First, before any field is read or any backend touched.
    _hooks().checker.check(request, request.form)


@bp.post("/voice")
def voice() -> ResponseReturnValue:
    call_sid = _field("CallSid", _CALL_SID)
    relay, caller = _field("To", _RELAY), _field("From", _CALLER)
    return _xml(_hooks().service.voice(call_sid=call_sid, relay=relay, caller=caller))


@bp.post("/voice/extension")
def voice_extension() -> ResponseReturnValue:
    call_sid = _field("CallSid", _CALL_SID)
    relay, caller = _field("To", _RELAY), _field("From", _CALLER)
    attempt = request.args.get("attempt", "1")
    if attempt not in {str(n) for n in range(1, EXTENSION_ATTEMPTS + 1)}:
        raise BadWebhookRequest("attempt")
    digits = request.form.get("Digits", "")
    if not _DIGITS.match(digits):
        # Nothing (or something odd) keyed: ask again, as a wrong extension.
        digits = "x"
    return _xml(
        _hooks().service.extension(
            call_sid=call_sid, relay=relay, caller=caller, digits=digits, attempt=int(attempt)
        )
    )


@bp.post("/voice/whisper")
def voice_whisper() -> ResponseReturnValue:
    # Fetched by Twilio for the called leg of a recorded call, before joining.
    _field("CallSid", _CALL_SID)
    return _xml(_hooks().service.whisper())


@bp.post("/voice/recording")
def voice_recording() -> ResponseReturnValue:
    # ``ref`` is the incoming call whose <Dial> recorded (set in recordingStatusCallback).
    call_sid = (
        _field("ref", _CALL_SID, request.args) if "ref" in request.args else _field("CallSid", _CALL_SID)
    )
    event = RecordingEvent(
        sid=_field("RecordingSid", _RECORDING_SID),
        call_sid=call_sid,
        url=_field("RecordingUrl", _RECORDING_URL),
        status=_field("RecordingStatus", _STATUS),
        duration=_optional_int("RecordingDuration"),
        channels=_optional_int("RecordingChannels"),
    )
    _hooks().service.recording_status(event)
    return _xml(twiml.EMPTY_VOICE)


@bp.post("/sms")
def sms() -> ResponseReturnValue:
    message_sid = _field("MessageSid", _MESSAGE_SID)
    relay, sender = _field("To", _RELAY), _field("From", _CALLER)
    body = request.form.get("Body", "")
    try:
        num_media = int(request.form.get("NumMedia", "0"))
    except ValueError:
        raise BadWebhookRequest("NumMedia") from None
    if not 0 <= num_media <= _MAX_MEDIA:
        raise BadWebhookRequest("NumMedia")
    media = [request.form.get(f"MediaUrl{i}", "") for i in range(num_media)]
    if not all(url.startswith("https://") for url in media):
        raise BadWebhookRequest("MediaUrl")
    return _xml(
        _hooks().service.sms(message_sid=message_sid, relay=relay, sender=sender, body=body, media=media)
    )


def _optional_int(name: str) -> int | None:
    raw = request.form.get(name)
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise BadWebhookRequest(name)
    return int(raw)


@bp.post("/voice/status")
def voice_status() -> ResponseReturnValue:
    call_sid = _field("CallSid", _CALL_SID)
    status = _field("CallStatus", _STATUS)
    duration = _optional_int("CallDuration")
    _hooks().service.voice_status(call_sid=call_sid, status=status, duration=duration)
    return _xml(twiml.EMPTY_VOICE)


@bp.post("/sms/status")
def sms_status() -> ResponseReturnValue:
    # ``ref`` is the incoming message this one forwarded (set in our <Message action>).
    sid = _field("ref", _MESSAGE_SID, request.args) if "ref" in request.args else None
    message_sid = sid or _field("MessageSid", _MESSAGE_SID)
    status = _field("MessageStatus", _STATUS)
    _hooks().service.sms_status(message_sid=message_sid, status=status)
    return _xml(twiml.EMPTY_MESSAGING)


# Click-to-call's bridge step lives in its own module, on this blueprint (so
# behind the same signature check); importing it registers the route.
from maskline.webhooks import bridge as _bridge  # noqa: E402, F401
