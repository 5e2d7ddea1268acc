"""The Twilio webhooks' hot endpoints as a plain WSGI callable in front of Flask.

A connect (a call, an extension, a text) and its status callbacks are what
maskline serves thousands of times a second. Flask's per-request machinery
(request and app contexts, URL routing, before/after hooks, the API's rate
limiter) cost more CPU than the decision itself, so these five endpoints are
answered here, before Flask sees the request:

    POST /webhooks/twilio/voice              POST /webhooks/twilio/voice/status
    POST /webhooks/twilio/voice/extension    POST /webhooks/twilio/sms/status
    POST /webhooks/twilio/sms

Everything else (the whisper, recording and click-to-call bridge steps, a
wrong method, every other path) goes on to Flask unchanged. The rules are
the same as the Flask views': the signature first (the public URL as Twilio
called it), then the fields (full matches), then the service, which answers
HTTP 200 with TwiML on any backend failure. The request metrics keep their
Flask endpoint names.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import unquote_plus

from config import Settings
from maskline.webhooks import fields, twiml
from maskline.webhooks.interfaces import BadWebhookRequest, SignatureInvalid
from maskline.webhooks.services import EXTENSION_ATTEMPTS, SIGNATURE_FAILURES, WebhookService
from maskline.webhooks.signature import FastSignature, public_url_of_environ

log = logging.getLogger(__name__)

PREFIX = "/webhooks/twilio"
_XML = [("Content-Type", "text/xml; charset=utf-8")]
_TEXT = [("Content-Type", "text/plain; charset=utf-8")]
_ATTEMPTS = frozenset(str(n) for n in range(1, EXTENSION_ATTEMPTS + 1))
Answer = tuple[int, str]
Handler = Callable[[Mapping[str, str], Mapping[str, str]], Answer]
Metrics = Callable[[str, str, int, float], None]


class _FirstValues(dict[str, str]):
    """A form's first value of each field (what the views read)."""


def _parse(body: str) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The fields of a form or query string, all values and first values.

    The same pairs as ``urllib.parse.parse_qsl(body, keep_blank_values=True,
    errors="replace")``, at a fraction of its cost: a name or value with no
    ``%`` and no ``+`` (most of Twilio's) is taken as it is, not unquoted.
    """
    every: dict[str, list[str]] = {}
    if not body:
        return every, _FirstValues()
    for pair in body.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if "%" in name or "+" in name:
            name = unquote_plus(name, errors="replace")
        if "%" in value or "+" in value:
            value = unquote_plus(value, errors="replace")
        values = every.get(name)
        if values is None:
            every[name] = [value]
        else:
            values.append(value)
    return every, _FirstValues((name, values[0]) for name, values in every.items())


class WebhookFastPath:
    """WSGI middleware: the hot webhook endpoints, else ``app`` (Flask's wsgi_app)."""

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        *,
        service: WebhookService,
        settings: Settings,
        max_body: int,
        metrics: Metrics | None = None,
    ) -> None:
        self.app = app
        self.service = service
        self.settings = settings
        self.signature = FastSignature(settings.twilio_auth_token)
        self.max_body = max_body
        self.metrics = metrics
        self.routes: dict[str, tuple[str, Handler]] = {
            f"{PREFIX}/voice": ("webhooks.voice", self._voice),
            f"{PREFIX}/voice/extension": ("webhooks.voice_extension", self._extension),
            f"{PREFIX}/sms": ("webhooks.sms", self._sms),
            f"{PREFIX}/voice/status": ("webhooks.voice_status", self._voice_status),
            f"{PREFIX}/sms/status": ("webhooks.sms_status", self._sms_status),
        }

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        route = self.routes.get(environ.get("PATH_INFO", ""))
        if route is None or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        started = time.perf_counter()
        endpoint, handler = route
        status, body, headers = self._answer(environ, handler)
        payload = body.encode()
        start_response(f"{status} {_REASONS[status]}", [*headers, ("Content-Length", str(len(payload)))])
        if self.metrics is not None:
            self.metrics(endpoint, "POST", status, time.perf_counter() - started)
        return [payload]

    def _answer(self, environ: dict[str, Any], handler: Handler) -> tuple[int, str, list[Any]]:
        raw = self._body(environ)
        if raw is None:
            return 413, "request too large\n", _TEXT
        content_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        text = raw.decode("utf-8", "replace") if content_type == "application/x-www-form-urlencoded" else ""
        every, form = _parse(text)
        _, args = _parse(environ.get("QUERY_STRING", ""))
        try:
            # First, before any field is read or any backend touched.
            self._verify(environ, every)
            status, xml = handler(form, args)
        except SignatureInvalid:
            SIGNATURE_FAILURES.inc()
            return 403, "forbidden\n", _TEXT
        except BadWebhookRequest as exc:
            return 400, f"bad request: {exc.field}\n", _TEXT
        except Exception as exc:  # never a 500 to Twilio, never a wrong party
            kind = "sms" if "/sms" in environ.get("PATH_INFO", "") else "voice"
            return 200, self.service.apology(kind, exc), _XML
        return status, xml, _XML

    def _body(self, environ: dict[str, Any]) -> bytes | None:
        """The request body, or None if it is larger than ``max_body``."""
        length = (environ.get("CONTENT_LENGTH") or "").strip()
        stream = environ["wsgi.input"]
        if length.isdigit():
            size = int(length)
            if size > self.max_body:
                return None
            return bytes(stream.read(size)) if size else b""
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            raw = bytes(stream.read(self.max_body + 1))  # the server de-chunks it
            return None if len(raw) > self.max_body else raw
        return b""  # no body announced: none is read (an odd length counts as none)

    def _verify(self, environ: Mapping[str, Any], params: Mapping[str, list[str]]) -> None:
        path = environ.get("PATH_INFO", "")
        if not self.signature.configured:
            # No token configured (development): nothing can be verified, so
            # nothing is accepted. Production refuses to start like this.
            log.warning("webhook refused on %s: MASKLINE_TWILIO_AUTH_TOKEN is not set", path)
            raise SignatureInvalid("no auth token configured")
        signature = environ.get("HTTP_X_TWILIO_SIGNATURE", "")
        if not signature:
            log.warning("webhook refused on %s: no X-Twilio-Signature", path)
            raise SignatureInvalid("missing signature")
        url = public_url_of_environ(environ, self.settings)
        if not self.signature.valid(url, params, signature):
            # The URL is logged without its query string, and the fields not at
            # all: a forger's query can carry a number in a form no log filter sees.
            log.warning("webhook refused: bad X-Twilio-Signature for %s", url.partition("?")[0])
            raise SignatureInvalid("bad signature")

    # -- the endpoints (same checks as the Flask views had) -----------------------

    def _voice(self, form: Mapping[str, str], args: Mapping[str, str]) -> Answer:
        call_sid = fields.field(form, "CallSid", fields.CALL_SID)
        relay, caller = fields.field(form, "To", fields.RELAY), fields.field(form, "From", fields.CALLER)
        return 200, self.service.voice(call_sid=call_sid, relay=relay, caller=caller)

    def _extension(self, form: Mapping[str, str], args: Mapping[str, str]) -> Answer:
        call_sid = fields.field(form, "CallSid", fields.CALL_SID)
        relay, caller = fields.field(form, "To", fields.RELAY), fields.field(form, "From", fields.CALLER)
        attempt = args.get("attempt", "1")
        if attempt not in _ATTEMPTS:
            raise BadWebhookRequest("attempt")
        digits = form.get("Digits", "")
        if not fields.DIGITS.fullmatch(digits):
            digits = "x"  # nothing (or something odd) keyed: ask again, as a wrong extension
        return 200, self.service.extension(
            call_sid=call_sid, relay=relay, caller=caller, digits=digits, attempt=int(attempt)
        )

    def _sms(self, form: Mapping[str, str], args: Mapping[str, str]) -> Answer:
        message_sid = fields.field(form, "MessageSid", fields.MESSAGE_SID)
        relay, sender = fields.field(form, "To", fields.RELAY), fields.field(form, "From", fields.CALLER)
        media = fields.media_urls(form)
        body = form.get("Body", "")
        return 200, self.service.sms(
            message_sid=message_sid, relay=relay, sender=sender, body=body, media=media
        )

    def _voice_status(self, form: Mapping[str, str], args: Mapping[str, str]) -> Answer:
        call_sid = fields.field(form, "CallSid", fields.CALL_SID)
        status = fields.field(form, "CallStatus", fields.STATUS)
        duration = fields.optional_int(form, "CallDuration")
        self.service.voice_status(
            call_sid=call_sid, status=status, duration=duration, relays=fields.relays(args, form)
        )
        return 200, twiml.EMPTY_VOICE

    def _sms_status(self, form: Mapping[str, str], args: Mapping[str, str]) -> Answer:
        # ``ref`` is the incoming message this one forwarded (set in our <Message action>).
        sid = fields.field(args, "ref", fields.MESSAGE_SID) if "ref" in args else None
        message_sid = sid or fields.field(form, "MessageSid", fields.MESSAGE_SID)
        status = fields.field(form, "MessageStatus", fields.STATUS)
        self.service.sms_status(message_sid=message_sid, status=status, relays=fields.relays(args, form))
        return 200, twiml.EMPTY_MESSAGING


_REASONS = {200: "OK", 400: "BAD REQUEST", 403: "FORBIDDEN", 413: "REQUEST ENTITY TOO LARGE"}
