"""Twilio's REST API, through the twilio package's own ``Client``.

maskline asks Twilio to do two things: place a click-to-call
(``Calls.json``) and point the pool's numbers at maskline's webhooks
(``IncomingPhoneNumbers``). Both go through :func:`make_client`, whose
``http_client`` sends every request to ``MASKLINE_TWILIO_API_URL`` (Twilio's
own API by default; a regional edge or an egress gateway otherwise).

Every failure, from Twilio or from the network, becomes one
:class:`TwilioError`. Twilio's messages can quote the numbers of a request,
so the message kept is scrubbed of phone numbers: a party number never
reaches a log line, an API response or a terminal through it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from config import TWILIO_API_URL, Settings

# Seconds per request: a click-to-call waits on this, so it is short.
from maskline import errors
from maskline.redaction import redact_phone_numbers

REQUEST_TIMEOUT = 10.0
MAX_MESSAGE = 300

VOICE_PATH = "/webhooks/twilio/voice"
SMS_PATH = "/webhooks/twilio/sms"
VOICE_STATUS_PATH = "/webhooks/twilio/voice/status"

T = TypeVar("T")


class TwilioNotConfigured(errors.MasklineError):
    """A setting Twilio's REST API needs is missing; the message names it."""


class TwilioError(errors.MasklineError):
    """Twilio refused a request, or could not be reached.

    ``status`` and ``code`` are Twilio's HTTP status and error code (None
    when there was no answer); ``message`` is scrubbed of phone numbers.
    ``maybe_done`` is True when the request may have been acted on anyway
    (the answer timed out after it was sent).
    """

    def __init__(
        self, message: str, *, status: int | None = None, code: int | None = None, maybe_done: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.maybe_done = maybe_done

    def summary(self) -> str:
        """One line: what Twilio said, or why it could not say anything."""
        if self.status is None:
            return self.message
        code = f", error {self.code}" if self.code is not None else ""
        return f"HTTP {self.status}{code}: {self.message}"


class ConfiguredHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """twilio's HTTP client, sending every request to the configured API base URL.

    The SDK builds ``https://api.twilio.com/2010-04-01/...`` (and absolute
    next-page URLs on the same host); this keeps the path and query and
    replaces the scheme and host (and adds any path prefix) with ``base_url``.
    """

    def __init__(self, *, base_url: str, timeout: float = REQUEST_TIMEOUT) -> None:
        # No retries: a click-to-call sent twice rings a phone twice.
        super().__init__(timeout=timeout, max_retries=0)
        self.base_url = base_url.rstrip("/")

    def rewrite(self, url: str) -> str:
        parts = urlsplit(url)
        return self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        return super().request(
            method,
            self.rewrite(url),
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )


def make_client(settings: Settings) -> Client:
    """The REST client of the configured account, or TwilioNotConfigured naming what is missing."""
    if not settings.twilio_account_sid:
        raise TwilioNotConfigured("MASKLINE_TWILIO_ACCOUNT_SID is not set")
    if not settings.twilio_auth_token or settings.twilio_token_is_local:
        # The development webhook token signs local webhooks only.
        raise TwilioNotConfigured("MASKLINE_TWILIO_AUTH_TOKEN is not set")
    return Client(
        username=settings.twilio_account_sid,
        password=settings.twilio_auth_token,
        account_sid=settings.twilio_account_sid,
        http_client=ConfiguredHttpClient(base_url=settings.twilio_api_url),
        # Settings come from config/ only. The SDK reads os.environ when
        # given no (or an empty) mapping; this one names no credential, and
        # the base URL above makes edge and region moot.
        environment={"TWILIO_EDGE": "", "TWILIO_REGION": ""},
    )


def scrub(text: object, *, region: str) -> str:
    """Twilio's message without any phone number in it, at most MAX_MESSAGE characters."""
    cleaned = redact_phone_numbers(" ".join(str(text or "").split()), region=region)
    return cleaned[:MAX_MESSAGE] or "no message"


def _from_body(text: str) -> tuple[int | None, str | None]:
    try:
        body = json.loads(text)
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    code = body.get("code")
    message = body.get("message") or body.get("detail") or body.get("title")
    return (code if isinstance(code, int) else None), (str(message) if message else None)


def translate(exc: Exception, *, region: str) -> TwilioError:
    """Any error of the twilio package or the network as a TwilioError (scrubbed)."""
    if isinstance(exc, requests.Timeout):
        # A read timeout: the request reached Twilio, which may have acted on it.
        maybe = not isinstance(exc, requests.ConnectTimeout)
        return TwilioError(f"Twilio's API did not answer in time ({type(exc).__name__})", maybe_done=maybe)
    if isinstance(exc, requests.RequestException):
        return TwilioError(f"Twilio's API could not be reached ({type(exc).__name__})")
    status = getattr(exc, "status", None)
    code = getattr(exc, "code", None)
    message = getattr(exc, "msg", None) or getattr(exc, "detail", None) or getattr(exc, "title", None)
    if status is None and isinstance(exc, TwilioException) and len(exc.args) > 1:
        # A list page that was not 200 is TwilioException("Unable to fetch page", response).
        response = exc.args[1]
        status = getattr(response, "status_code", None)
        code, message = _from_body(str(getattr(response, "text", "")))
    return TwilioError(
        scrub(message or type(exc).__name__, region=region),
        status=status if isinstance(status, int) else None,
        code=code if isinstance(code, int) else None,
    )


def calling(action: Callable[[], T], *, region: str) -> T:
    """``action()``, with any Twilio or network failure as a TwilioError."""
    try:
        return action()
    except (TwilioException, requests.RequestException) as exc:
        # from None: the cause's text and the request it carries can quote numbers.
        raise translate(exc, region=region) from None


# -- pool numbers --------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class NumberUrls:
    """What each pool number's Twilio configuration should say."""

    voice_url: str
    sms_url: str
    status_callback: str

    @classmethod
    def for_public_url(cls, public_url: str) -> NumberUrls:
        return cls(
            voice_url=public_url + VOICE_PATH,
            sms_url=public_url + SMS_PATH,
            status_callback=public_url + VOICE_STATUS_PATH,
        )

    def wanted(self) -> dict[str, str]:
        """Twilio's field names (as the SDK's records spell them) -> wanted value."""
        return {
            "voice_url": self.voice_url,
            "voice_method": "POST",
            "sms_url": self.sms_url,
            "sms_method": "POST",
            "status_callback": self.status_callback,
            "status_callback_method": "POST",
        }


@dataclass
class SyncReport:
    updated: list[str] = field(default_factory=list)
    correct: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    # Numbers of the account that are not (or no longer) in the pool: left alone.
    unmanaged: int = 0


def _update(number: Any, wanted: dict[str, str], *, region: str) -> None:
    calling(lambda: number.update(**wanted), region=region)


def sync_numbers(
    client: Client, pool: Iterable[str], urls: NumberUrls, *, dry_run: bool, region: str
) -> SyncReport:
    """Point each pool number's voice, SMS and status-callback URLs at maskline."""
    numbers = client.api.v2010.account.incoming_phone_numbers
    records = calling(lambda: numbers.list(page_size=50), region=region)
    by_number = {record.phone_number: record for record in records}
    wanted = urls.wanted()
    report = SyncReport(unmanaged=len(set(by_number) - set(pool)))
    for e164 in sorted(pool):
        record = by_number.get(e164)
        if record is None:
            report.missing.append(e164)
            continue
        if all(getattr(record, name, None) == value for name, value in wanted.items()):
            report.correct.append(e164)
            continue
        if not dry_run:
            _update(numbers(record.sid), wanted, region=region)
        report.updated.append(e164)
    return report


__all__ = [
    "TWILIO_API_URL",
    "ConfiguredHttpClient",
    "NumberUrls",
    "SyncReport",
    "TwilioError",
    "TwilioNotConfigured",
    "calling",
    "make_client",
    "scrub",
    "sync_numbers",
    "translate",
]
