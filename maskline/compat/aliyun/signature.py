"""Alibaba Cloud request signatures, as the official SDK makes them.

* ACS3-HMAC-SHA256 (the SDK's default since tea-openapi 0.3): an
  ``Authorization: ACS3-HMAC-SHA256 Credential=<id>,SignedHeaders=<h1;h2>,
  Signature=<hex>`` header over a canonical request (method, path, sorted
  query, the signed headers, and ``x-acs-content-sha256``, the body's hash);
  time and nonce in ``x-acs-date`` and ``x-acs-signature-nonce``.
* HMAC-SHA1, signature version 1.0 (``Config(signature_algorithm="v2")``):
  every parameter (query and form body) sorted and percent-encoded, signed
  with ``secret + "&"``; ``Timestamp``, ``SignatureNonce`` and
  ``AccessKeyId`` are parameters. Only where the deployment enables it.

No Flask here: :class:`Incoming` is what a view hands over. Every failure is
an :class:`~maskline.compat.aliyun.interfaces.AuthError` with Alibaba's code.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

from maskline.compat.aliyun.interfaces import AuthError

ACS3 = "ACS3-HMAC-SHA256"
# Headers a signature must cover: without them a signed request could be
# replayed with another action, time, nonce or body.
REQUIRED_SIGNED = (
    "host",
    "x-acs-action",
    "x-acs-version",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
)
_CREDENTIAL = re.compile(r"^[A-Za-z0-9]{1,32}\Z")
_NONCE = re.compile(r"^[\x21-\x7e]{8,128}\Z")
_HEADER_NAME = re.compile(r"^[a-z0-9-]{1,64}\Z")
_TIMESTAMP = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True, kw_only=True)
class Incoming:
    """A request as signed: method, path, decoded query and form parameters
    (one value each), headers by lower-case name, and the raw body."""

    method: str
    path: str
    query: Mapping[str, str]
    form: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, kw_only=True)
class Verified:
    """Who signed, with which scheme, and the nonce to spend."""

    access_key_id: str
    scheme: str
    nonce: str


def _encode(value: str) -> str:
    # RFC 3986 unreserved characters stay; everything else is %XX (UTF-8).
    return quote(value, safe="~", encoding="utf-8")


# -- ACS3-HMAC-SHA256 ---------------------------------------------------------------


def canonical_query(query: Mapping[str, str]) -> str:
    """Sorted ``key=value`` pairs, values percent-encoded (keys as the SDK leaves them)."""
    return "&".join(f"{key}={_encode(query[key])}" for key in sorted(query))


def acs3_signature(
    secret: str,
    *,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    signed_headers: list[str],
    payload_hash: str,
) -> str:
    """The hex ACS3-HMAC-SHA256 signature of a request under ``secret``."""
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in signed_headers)
    canonical_request = "\n".join(
        [
            method,
            path or "/",
            canonical_query(query),
            canonical_headers,
            ";".join(signed_headers),
            payload_hash,
        ]
    )
    string_to_sign = f"{ACS3}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
    return hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def parse_authorization(header: str) -> tuple[str, list[str], str]:
    """(AccessKey id, signed header names, signature) of an ACS3 Authorization header."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme != ACS3:
        raise AuthError("IncompleteSignature", f"the Authorization scheme must be {ACS3}")
    parts: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep or name in parts:
            raise AuthError(
                "IncompleteSignature", "Authorization: expected Credential, SignedHeaders, Signature"
            )
        parts[name] = value
    if set(parts) != {"Credential", "SignedHeaders", "Signature"}:
        raise AuthError("IncompleteSignature", "Authorization: expected Credential, SignedHeaders, Signature")
    signed = parts["SignedHeaders"].split(";")
    if not all(_HEADER_NAME.match(h) for h in signed) or signed != sorted(set(signed)):
        raise AuthError("IncompleteSignature", "SignedHeaders: lower-case header names, sorted, each once")
    missing = [h for h in REQUIRED_SIGNED if h not in signed]
    if missing:
        raise AuthError("IncompleteSignature", f"SignedHeaders must include {', '.join(missing)}")
    if not re.fullmatch(r"[0-9a-f]{64}", parts["Signature"]):
        raise AuthError("IncompleteSignature", "Signature: 64 lower-case hex digits")
    return parts["Credential"], signed, parts["Signature"]


# -- HMAC-SHA1, signature version 1.0 ---------------------------------------------


def v2_signature(secret: str, *, method: str, params: Mapping[str, str]) -> str:
    """The base64 HMAC-SHA1 signature of RPC ``params`` (without ``Signature``)."""
    canonical = "&".join(f"{_encode(k)}={_encode(params[k])}" for k in sorted(params))
    string_to_sign = f"{method}&{_encode('/')}&{_encode(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


# -- verifying ------------------------------------------------------------------------


def _parse_time(value: str | None, field: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(value or "", _TIMESTAMP).replace(tzinfo=dt.UTC)
    except ValueError:
        raise AuthError(
            "InvalidTimeStamp.Format", f"{field}: expected UTC time as yyyy-MM-ddTHH:mm:ssZ"
        ) from None


def _check_time(when: dt.datetime, now: dt.datetime, max_skew: dt.timedelta) -> None:
    if abs(now - when) > max_skew:
        raise AuthError(
            "InvalidTimeStamp.Expired",
            f"the request's time is more than {int(max_skew.total_seconds())} s from the server's",
        )


def _check_nonce(nonce: str | None, field: str) -> str:
    if nonce is None or not _NONCE.match(nonce):
        raise AuthError("IncompleteSignature", f"{field}: 8 to 128 printable characters")
    return nonce


def _known_id(key_id: str) -> str:
    if not _CREDENTIAL.match(key_id):
        raise AuthError("InvalidAccessKeyId.NotFound", "the AccessKey id is not known", status=404)
    return key_id


def verify(
    incoming: Incoming,
    *,
    secret_of: Callable[[str], str],
    now: dt.datetime,
    max_skew: dt.timedelta,
    allow_v2: bool,
) -> Verified:
    """Check a request's signature and time; the caller then spends the nonce.

    ``secret_of(access_key_id)`` returns the AccessKey's secret or raises
    AuthError (unknown or inactive key). Order: parse, key, time, signature;
    so a stale but well signed request is told its time, not its signature.
    """
    authorization = incoming.headers.get("authorization")
    if authorization is not None:
        return _verify_acs3(incoming, authorization, secret_of, now, max_skew)
    if "Signature" in incoming.query or "Signature" in incoming.form:
        if not allow_v2:
            raise AuthError(
                "UnsupportedSignatureVersion",
                "HMAC-SHA1 signatures are disabled on this server; use ACS3-HMAC-SHA256 (the SDK's default)",
            )
        return _verify_v2(incoming, secret_of, now, max_skew)
    raise AuthError("IncompleteSignature", "the request is not signed: send an Authorization header")


def _verify_acs3(
    incoming: Incoming,
    authorization: str,
    secret_of: Callable[[str], str],
    now: dt.datetime,
    max_skew: dt.timedelta,
) -> Verified:
    key_id, signed, signature = parse_authorization(authorization)
    secret = secret_of(_known_id(key_id))
    headers = incoming.headers
    _check_time(_parse_time(headers.get("x-acs-date"), "x-acs-date"), now, max_skew)
    nonce = _check_nonce(headers.get("x-acs-signature-nonce"), "x-acs-signature-nonce")
    payload_hash = hashlib.sha256(incoming.body).hexdigest()
    expected = acs3_signature(
        secret,
        method=incoming.method,
        path=incoming.path,
        query=incoming.query,
        headers=headers,
        signed_headers=signed,
        payload_hash=payload_hash,
    )
    # The body's hash is checked as well as signed: a body swapped under a
    # valid header set must not pass.
    declared = headers.get("x-acs-content-sha256", "")
    # Compared as bytes: compare_digest refuses non-ASCII text with a TypeError.
    if not (
        hmac.compare_digest(expected.encode(), signature.encode())
        and hmac.compare_digest(declared.encode(), payload_hash.encode())
    ):
        raise AuthError("SignatureDoesNotMatch", "the request signature does not match")
    return Verified(access_key_id=key_id, scheme=ACS3, nonce=nonce)


def _verify_v2(
    incoming: Incoming, secret_of: Callable[[str], str], now: dt.datetime, max_skew: dt.timedelta
) -> Verified:
    params = {**incoming.query, **incoming.form}
    if set(incoming.query) & set(incoming.form):
        raise AuthError("IncompleteSignature", "a parameter is in both the query and the body")
    signature = params.pop("Signature")
    if params.get("SignatureMethod") != "HMAC-SHA1" or params.get("SignatureVersion") != "1.0":
        raise AuthError("UnsupportedSignatureVersion", "SignatureMethod HMAC-SHA1 with SignatureVersion 1.0")
    key_id = params.get("AccessKeyId")
    if key_id is None:
        raise AuthError("IncompleteSignature", "AccessKeyId is missing")
    secret = secret_of(_known_id(key_id))
    _check_time(_parse_time(params.get("Timestamp"), "Timestamp"), now, max_skew)
    nonce = _check_nonce(params.get("SignatureNonce"), "SignatureNonce")
    expected = v2_signature(secret, method=incoming.method, params=params)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise AuthError("SignatureDoesNotMatch", "the request signature does not match")
    return Verified(access_key_id=key_id, scheme="HMAC-SHA1", nonce=nonce)
