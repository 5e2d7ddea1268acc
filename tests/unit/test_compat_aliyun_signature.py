"""Signature checks of the Dyplsapi face against signatures made by Alibaba's own SDK code."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

import pytest
from alibabacloud_tea_openapi.utils import Utils
from darabonba.request import DaraRequest

from maskline.compat.aliyun.interfaces import AuthError
from maskline.compat.aliyun.signature import Incoming, acs3_signature, canonical_query, v2_signature, verify

KEY_ID, SECRET = "MLAKexampleexample0001", "s3cr3t-for-unit-tests-only-000"
NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
SKEW = dt.timedelta(minutes=15)
QUERY = {"PoolKey": "CN", "PhoneNoA": "13800138000", "Expiration": "2026-11-25 20:00:00", "OutId": "o/1 ~*"}


def _secret_of(key_id: str) -> str:
    if key_id != KEY_ID:
        raise AuthError("InvalidAccessKeyId.NotFound", "unknown", status=404)
    return SECRET


def sdk_acs3(*, query: dict[str, str] = QUERY, body: bytes = b"", when: dt.datetime = NOW) -> Incoming:
    """A request signed by the SDK's own ACS3-HMAC-SHA256 code (Utils.get_authorization)."""
    sdk = DaraRequest()
    sdk.method, sdk.pathname, sdk.query = "POST", "/", dict(query)
    payload = hashlib.sha256(body).hexdigest()
    sdk.headers = {
        "host": "127.0.0.1:8000",
        "x-acs-version": "2017-05-25",
        "x-acs-action": "BindAxb",
        "user-agent": "AlibabaCloud (test) TeaDSL/2",
        "x-acs-date": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "x-acs-signature-nonce": "0123456789abcdef0123456789abcdef",
        "accept": "application/json",
        "x-acs-content-sha256": payload,
    }
    sdk.headers["Authorization"] = Utils.get_authorization(sdk, "ACS3-HMAC-SHA256", payload, KEY_ID, SECRET)
    headers = {k.lower(): v for k, v in sdk.headers.items()}
    return Incoming(method="POST", path="/", query=dict(query), form={}, headers=headers, body=body)


def sdk_v2(*, when: dt.datetime = NOW) -> Incoming:
    """A request signed by the SDK's own HMAC-SHA1 code (Utils.get_rpcsignature)."""
    query = {
        "Action": "BindAxb",
        "Format": "json",
        "Version": "2017-05-25",
        "Timestamp": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "SignatureNonce": "fedcba9876543210fedcba9876543210",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "AccessKeyId": KEY_ID,
        **QUERY,
    }
    query["Signature"] = Utils.get_rpcsignature(dict(query), "POST", SECRET)
    return Incoming(method="POST", path="/", query=query, form={}, headers={}, body=b"")


def check(incoming: Incoming, *, now: dt.datetime = NOW, allow_v2: bool = False) -> str:
    return verify(incoming, secret_of=_secret_of, now=now, max_skew=SKEW, allow_v2=allow_v2).scheme


def code_of(incoming: Incoming, **kwargs: object) -> str:
    with pytest.raises(AuthError) as raised:
        check(incoming, **kwargs)  # type: ignore[arg-type]
    return raised.value.code


def test_a_request_signed_by_the_sdk_passes() -> None:
    assert check(sdk_acs3()) == "ACS3-HMAC-SHA256"


def test_a_form_body_signed_by_the_sdk_passes() -> None:
    assert check(sdk_acs3(query={}, body=b"PoolKey=CN&SubsId=1")) == "ACS3-HMAC-SHA256"


def test_the_sdk_signature_equals_ours() -> None:
    incoming = sdk_acs3()
    signature = incoming.headers["authorization"].rsplit("Signature=", 1)[1]
    signed = incoming.headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
    ours = acs3_signature(
        SECRET,
        method="POST",
        path="/",
        query=QUERY,
        headers=incoming.headers,
        signed_headers=signed,
        payload_hash=hashlib.sha256(b"").hexdigest(),
    )
    assert ours == signature
    assert canonical_query({"b": "x y", "a": "~/"}) == "a=~%2F&b=x%20y"


def _headers(i: Incoming, **changes: str) -> Incoming:
    return dataclasses.replace(i, headers={**i.headers, **changes})


def _unsigned(i: Incoming) -> Incoming:
    return dataclasses.replace(i, headers={k: v for k, v in i.headers.items() if k != "authorization"})


CHANGES = [
    (lambda i: dataclasses.replace(i, query={**i.query, "PhoneNoA": "13800138001"}), "SignatureDoesNotMatch"),
    (lambda i: dataclasses.replace(i, body=b"x"), "SignatureDoesNotMatch"),
    (lambda i: dataclasses.replace(i, method="GET"), "SignatureDoesNotMatch"),
    (lambda i: _headers(i, **{"x-acs-action": "UnbindSubscription"}), "SignatureDoesNotMatch"),
    (lambda i: _headers(i, authorization="Basic abc"), "IncompleteSignature"),
    (_unsigned, "IncompleteSignature"),
    (lambda i: _headers(i, **{"x-acs-date": "yesterday"}), "InvalidTimeStamp.Format"),
]


@pytest.mark.parametrize(("change", "code"), CHANGES)
def test_a_changed_request_is_refused(change: object, code: str) -> None:
    assert code_of(change(sdk_acs3())) == code  # type: ignore[operator]


def test_a_wrong_secret_does_not_match() -> None:
    incoming = sdk_acs3()
    with pytest.raises(AuthError) as raised:
        verify(incoming, secret_of=lambda _k: "other", now=NOW, max_skew=SKEW, allow_v2=False)
    assert raised.value.code == "SignatureDoesNotMatch"


def test_signed_headers_must_cover_time_and_nonce() -> None:
    incoming = sdk_acs3()
    auth = incoming.headers["authorization"].replace("x-acs-signature-nonce;", "")
    assert code_of(dataclasses.replace(incoming, headers={**incoming.headers, "authorization": auth})) == (
        "IncompleteSignature"
    )


@pytest.mark.parametrize("offset", [dt.timedelta(minutes=16), -dt.timedelta(minutes=16)])
def test_a_time_outside_the_skew_is_expired(offset: dt.timedelta) -> None:
    assert code_of(sdk_acs3(when=NOW + offset)) == "InvalidTimeStamp.Expired"


def test_a_time_within_the_skew_passes() -> None:
    assert check(sdk_acs3(when=NOW - dt.timedelta(minutes=14))) == "ACS3-HMAC-SHA256"


def test_an_unknown_access_key_is_not_found() -> None:
    incoming = sdk_acs3()
    auth = incoming.headers["authorization"].replace(KEY_ID, "MLAKunknown")
    assert code_of(dataclasses.replace(incoming, headers={**incoming.headers, "authorization": auth})) == (
        "InvalidAccessKeyId.NotFound"
    )


def test_hmac_sha1_passes_only_where_enabled() -> None:
    assert check(sdk_v2(), allow_v2=True) == "HMAC-SHA1"
    assert code_of(sdk_v2()) == "UnsupportedSignatureVersion"


def test_hmac_sha1_refuses_changes_and_old_times() -> None:
    changed = sdk_v2()
    changed = dataclasses.replace(changed, query={**changed.query, "PoolKey": "US"})
    assert code_of(changed, allow_v2=True) == "SignatureDoesNotMatch"
    assert code_of(sdk_v2(when=NOW - dt.timedelta(hours=1)), allow_v2=True) == "InvalidTimeStamp.Expired"


def test_our_hmac_sha1_equals_the_sdks() -> None:
    params = {"A": "1 2", "b": "ü/~"}
    assert v2_signature(SECRET, method="POST", params=params) == Utils.get_rpcsignature(
        params, "POST", SECRET
    )


def test_a_non_ascii_body_hash_is_a_mismatch_not_a_crash() -> None:
    assert code_of(_headers(sdk_acs3(), **{"x-acs-content-sha256": "é" * 64})) == "SignatureDoesNotMatch"


def test_the_face_settings_come_from_the_environment() -> None:
    from config import SettingsError, load_settings

    env = {"MASKLINE_ALIYUN_SIGNATURE_V2": "true", "MASKLINE_ALIYUN_MAX_SKEW": "5m"}
    settings = load_settings(environ=env)
    assert (settings.aliyun_signature_v2, settings.aliyun_max_skew) == (True, dt.timedelta(minutes=5))
    assert load_settings(environ={}).aliyun_signature_v2 is False
    with pytest.raises(SettingsError, match="MASKLINE_ALIYUN_SIGNATURE_V2"):
        load_settings(environ={"MASKLINE_ALIYUN_SIGNATURE_V2": "maybe"})
