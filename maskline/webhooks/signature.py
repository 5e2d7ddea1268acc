"""X-Twilio-Signature: Twilio signs the URL it called plus the POSTed fields.

Behind a proxy or a load balancer, the URL the app sees (``http://10.0.0.5:8000/...``)
is not the one Twilio called (``https://relay.example.com/...``), so the URL
to check is reconstructed from configuration, never guessed from the Host
header unless the deployment says the proxy in front sets it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from twilio.request_validator import RequestValidator, add_port, remove_port

from config import Settings
from maskline.webhooks.interfaces import SignatureInvalid

if TYPE_CHECKING:
    from flask import Request

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


def public_url_of_environ(environ: Mapping[str, Any], settings: Settings) -> str:
    """:func:`public_url_of` for a WSGI environ (the fast path has no Flask request)."""
    query: str = environ.get("QUERY_STRING", "")
    path: str = environ.get("PATH_INFO", "")
    tail = path + (f"?{query}" if query else "")
    if settings.public_url:
        return settings.public_url + tail
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST") or _server_host(environ, scheme)
    if settings.trust_proxy:
        scheme = environ.get("HTTP_X_FORWARDED_PROTO", scheme).split(",")[0].strip()
        host = environ.get("HTTP_X_FORWARDED_HOST", host).split(",")[0].strip()
    return f"{scheme}://{host}{environ.get('SCRIPT_NAME', '')}{tail}"


def _server_host(environ: Mapping[str, Any], scheme: str) -> str:
    name, port = environ.get("SERVER_NAME", ""), str(environ.get("SERVER_PORT", ""))
    default = "443" if scheme == "https" else "80"
    return name if not port or port == default else f"{name}:{port}"


class FastSignature:
    """Twilio's signature (HMAC-SHA1 of the URL and the sorted fields), as
    twilio's RequestValidator computes it, for the webhook fast path.

    RequestValidator always computes two HMACs (the URL with and without a
    port); this computes the one for the URL as maskline expects it first,
    and the port variants only if that does not match: the same URLs are
    accepted, at a third of the cost.
    """

    def __init__(self, token: str | None) -> None:
        self._token = token.encode() if token else None

    @property
    def configured(self) -> bool:
        return self._token is not None

    def _compute(self, url: str, params: Mapping[str, Sequence[str]]) -> bytes:
        assert self._token is not None
        parts = [url]
        for name in sorted(params):
            for value in sorted(set(params[name])):
                parts.append(name)
                parts.append(value)
        digest = hmac.new(self._token, "".join(parts).encode(), hashlib.sha1).digest()
        return base64.b64encode(digest)

    def valid(self, url: str, params: Mapping[str, Sequence[str]], signature: str) -> bool:
        """Whether ``signature`` is Twilio's for ``url`` and ``params``."""
        if self._token is None or not signature:
            return False
        given = signature.strip().encode()
        if hmac.compare_digest(self._compute(url, params), given):
            return True
        parsed = urlparse(url)
        for variant in {remove_port(parsed), add_port(parsed)} - {url}:
            if hmac.compare_digest(self._compute(variant, params), given):
                return True
        return False
