"""X-Twilio-Signature: Twilio signs the URL it called plus the POSTed fields.

Behind a proxy or a load balancer, the URL the app sees (``http://10.0.0.5:8000/...``)
is not the one Twilio called (``https://relay.example.com/...``), so the URL
to check is reconstructed from configuration, never guessed from the Host
header unless the deployment says the proxy in front sets it.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Request
from twilio.request_validator import RequestValidator

from config import Settings
from maskline.webhooks.interfaces import SignatureInvalid

log = logging.getLogger(__name__)


def public_url_of(request: Request, settings: Settings) -> str:
    """The URL Twilio called for ``request``, as it signed it."""
    query = request.query_string.decode("latin-1")
    tail = request.path + (f"?{query}" if query else "")
    if settings.public_url:
        return settings.public_url + tail
    if settings.trust_proxy:
        proto = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
        host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
        return f"{proto}://{host}{tail}"
    return request.url


class SignatureChecker:
    """Validates Twilio's signature with twilio's own RequestValidator."""

    def __init__(self, *, settings: Settings) -> None:
        self.settings = settings
        token = settings.twilio_auth_token
        self._validator = RequestValidator(token) if token else None

    def check(self, request: Request, form: Any) -> None:
        """Raise :class:`SignatureInvalid` unless the request is Twilio's."""
        signature = request.headers.get("X-Twilio-Signature", "")
        if self._validator is None:
            # No token configured (development): nothing can be verified, so
            # nothing is accepted. Production refuses to start like this.
            log.warning("webhook refused on %s: MASKLINE_TWILIO_AUTH_TOKEN is not set", request.path)
            raise SignatureInvalid("no auth token configured")
        if not signature:
            log.warning("webhook refused on %s: no X-Twilio-Signature", request.path)
            raise SignatureInvalid("missing signature")
        url = public_url_of(request, self.settings)
        if not self._validator.validate(url, form, signature):
            # The URL is logged without its query string, and the fields not at
            # all: a forger's query can carry a number in a form the log
            # filter cannot see (``?x=4+1+5+5+5+5+0+1+3+2``).
            log.warning("webhook refused: bad X-Twilio-Signature for %s", url.partition("?")[0])
            raise SignatureInvalid("bad signature")
