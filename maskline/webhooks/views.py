"""The Flask side of the Twilio webhooks, and the fast path in front of it.

The hot endpoints (voice, extension, SMS and their status callbacks) are
answered by :class:`~maskline.webhooks.fastpath.WebhookFastPath` before Flask
sees them; this blueprint serves the rarer steps (the recorded call's
whisper, recording callbacks, click-to-call's bridge) under the same rules:
the signature first, then the fields. A bad signature is 403; a signed
request with a bad field is 400; anything else is HTTP 200 with TwiML,
including a backend failure (an apology).
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request
from flask.typing import ResponseReturnValue

from maskline.webhooks import fields, twiml
from maskline.webhooks.fastpath import Metrics, WebhookFastPath
from maskline.webhooks.interfaces import BadWebhookRequest, SignatureInvalid
from maskline.webhooks.recordings import RecordingEvent
from maskline.webhooks.services import SIGNATURE_FAILURES, WebhookService
from maskline.webhooks.signature import SignatureChecker

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks/twilio")

EXTENSION_KEY = "maskline.webhooks"
# Under these names for the click-to-call bridge's view.
_CALL_SID, _RELAY = fields.CALL_SID, fields.RELAY


class _Webhooks:
    def __init__(self, *, service: WebhookService, checker: SignatureChecker) -> None:
        self.service = service
        self.checker = checker


def init_app(app: Flask, services: Any, *, metrics: Metrics | None = None) -> None:
    """Register the blueprint with its service and signature checker, and put
    the fast path for the hot endpoints in front of the app, over the same service."""
    service = WebhookService(services=services)
    app.extensions[EXTENSION_KEY] = _Webhooks(
        service=service, checker=SignatureChecker(settings=services.settings)
    )
    app.register_blueprint(bp)
    app.wsgi_app = WebhookFastPath(  # type: ignore[method-assign]
        app.wsgi_app,
        service=service,
        settings=services.settings,
        max_body=int(app.config.get("MAX_CONTENT_LENGTH") or 1024 * 1024),
        metrics=metrics,
    )


def _hooks() -> _Webhooks:
    hooks: _Webhooks = current_app.extensions[EXTENSION_KEY]
    return hooks


def _field(name: str, pattern: re.Pattern[str], source: Any = None) -> str:
    return fields.field(request.form if source is None else source, name, pattern)


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


@bp.post("/voice/whisper")
def voice_whisper() -> ResponseReturnValue:
    # Fetched by Twilio for the called leg of a recorded call, before joining.
    _field("CallSid", fields.CALL_SID)
    # The binding's language, as the <Dial> named it (signed with the URL).
    return _xml(_hooks().service.whisper(request.args.get("lang")))


@bp.post("/voice/recording")
def voice_recording() -> ResponseReturnValue:
    # ``ref`` is the incoming call whose <Dial> recorded (set in recordingStatusCallback).
    call_sid = (
        _field("ref", fields.CALL_SID, request.args)
        if "ref" in request.args
        else _field("CallSid", fields.CALL_SID)
    )
    event = RecordingEvent(
        sid=_field("RecordingSid", fields.RECORDING_SID),
        call_sid=call_sid,
        url=_field("RecordingUrl", fields.RECORDING_URL),
        status=_field("RecordingStatus", fields.STATUS),
        duration=fields.optional_int(request.form, "RecordingDuration"),
        channels=fields.optional_int(request.form, "RecordingChannels"),
    )
    _hooks().service.recording_status(event, relays=fields.relays(request.args, request.form))
    return _xml(twiml.EMPTY_VOICE)


# Click-to-call's bridge step lives in its own module, on this blueprint (so
# behind the same signature check); importing it registers the route.
from maskline.webhooks import bridge as _bridge  # noqa: E402, F401
