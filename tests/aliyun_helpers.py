"""Driving the Dyplsapi face with Alibaba's official SDK, unmodified.

``sdk(endpoint, key_id, secret)`` is the stock client; ``signed_post`` signs
one request with the SDK's own signing code and sends it as is, so a test
can send the very same request twice (a replayed nonce).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from alibabacloud_dyplsapi20170525.client import Client
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_openapi.utils import Utils
from darabonba.exceptions import UnretryableException
from darabonba.request import DaraRequest

VERSION = "2017-05-25"


def sdk(endpoint: str, key_id: str, secret: str, *, signature_algorithm: str | None = None) -> Client:
    """The official client, pointed at maskline: the two-line change of docs/compat-aliyun.md."""
    config = open_api_models.Config(
        access_key_id=key_id, access_key_secret=secret, endpoint=endpoint, protocol="http"
    )
    if signature_algorithm is not None:
        config.signature_algorithm = signature_algorithm
    return Client(config)


def sdk_error(call: Callable[[], Any]) -> tuple[int | None, str]:
    """(HTTP status, Alibaba code) of a call the server refused with 4xx/5xx."""
    try:
        call()
    except UnretryableException as exc:  # the SDK wraps a refusal it will not retry
        inner = exc.inner_exception
        return getattr(inner, "status_code", None), str(getattr(inner, "code", ""))
    except Exception as exc:  # a ClientException raised directly
        return getattr(exc, "status_code", None), str(getattr(exc, "code", ""))
    raise AssertionError("the call was not refused")


def signed_post(
    endpoint: str,
    key_id: str,
    secret: str,
    action: str,
    query: dict[str, str],
    *,
    when: dt.datetime | None = None,
    nonce: str = "replayed-nonce-0123456789abcdef",
    headers_out: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST / signed with the SDK's ACS3-HMAC-SHA256 code; (status, JSON body).
    The answer's headers are copied into ``headers_out`` when given."""
    stamp = (when or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    payload = hashlib.sha256(b"").hexdigest()
    signing = DaraRequest()
    signing.method, signing.pathname, signing.query = "POST", "/", dict(query)
    signing.headers = {
        "host": endpoint,
        "x-acs-version": VERSION,
        "x-acs-action": action,
        "x-acs-date": stamp,
        "x-acs-signature-nonce": nonce,
        "x-acs-content-sha256": payload,
    }
    auth = Utils.get_authorization(signing, "ACS3-HMAC-SHA256", payload, key_id, secret)
    headers = {k: v for k, v in signing.headers.items() if k != "host"}
    headers["Authorization"] = auth
    url = f"http://{endpoint}/?{urlencode(query)}" if query else f"http://{endpoint}/"
    sent = urllib.request.Request(url, data=b"", method="POST", headers=headers)  # noqa: S310 (loopback)
    try:
        with urllib.request.urlopen(sent, timeout=30) as response:  # noqa: S310 (loopback)
            if headers_out is not None:
                headers_out.update(response.headers.items())
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if headers_out is not None:
            headers_out.update(exc.headers.items())
        return exc.code, json.loads(exc.read())
