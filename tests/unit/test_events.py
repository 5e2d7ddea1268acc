"""Events: which URLs are accepted, how a signature is made and checked, the setting."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from config import SettingsError, load_settings
from maskline.events.interfaces import InvalidEventsUrl, signature, verify
from maskline.events.services import check_events_url, display_url


@pytest.mark.parametrize(
    "url",
    [
        "https://events.example.com/maskline",
        "https://events.example.com:8443/hook?token=abc",
        "http://127.0.0.1:9000/events",
        "http://localhost/events",
        "http://[::1]:8080/",
    ],
)
def test_https_and_loopback_http_are_accepted_in_development(url: str) -> None:
    assert check_events_url(f"  {url} ", allow_loopback_http=True) == url


@pytest.mark.parametrize(
    ("url", "loopback_http", "reason"),
    [
        ("http://events.example.com/hook", True, "must be https"),
        ("http://10.0.0.5/hook", True, "private"),
        ("http://127.0.0.1:9000/events", False, "loopback"),
        ("ftp://events.example.com/", True, "https://host/path"),
        ("https:///no-host", True, "https://host/path"),
        ("events.example.com/hook", True, "https://host/path"),
        ("https://user:pw@events.example.com/", True, "user name or password"),
        ("https://events.example.com/#part", True, "fragment"),
        ("https://events.example.com:99999/", True, "cannot be parsed"),
        ("https://events.example.com/a b", True, "spaces"),
        ("https://events.example.com/" + "a" * 500, True, "longer than 500"),
    ],
)
def test_other_urls_are_refused_with_a_reason(url: str, loopback_http: bool, reason: str) -> None:
    with pytest.raises(InvalidEventsUrl, match=reason) as refused:
        check_events_url(url, allow_loopback_http=loopback_http)
    assert "pw" not in str(refused.value) and "example" not in str(refused.value)


def test_a_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"id":"ev_1"}'
    expected = hmac.new(b"whsec_k", b"1764000000." + body, hashlib.sha256).hexdigest()
    assert signature("whsec_k", 1764000000, body) == f"v1={expected}"
    assert verify("whsec_k", "1764000000", body, f"v1={expected}")


@pytest.mark.parametrize(
    ("secret", "timestamp", "body"),
    [("whsec_other", "1764000000", b'{"id":"ev_1"}'), ("whsec_k", "1764000001", b'{"id":"ev_1"}')],
)
def test_a_signature_fails_for_another_secret_or_timestamp(secret: str, timestamp: str, body: bytes) -> None:
    assert not verify(secret, timestamp, body, signature("whsec_k", 1764000000, b'{"id":"ev_1"}'))


def test_urls_are_displayed_without_their_query() -> None:
    assert display_url("https://h.example/p?token=s3cr3t") == "https://h.example/p?…"
    assert display_url("https://h.example/p") == "https://h.example/p"


def test_max_attempts_comes_from_the_environment() -> None:
    assert load_settings(environ={}).events_max_attempts == 12
    assert load_settings(environ={"MASKLINE_EVENTS_MAX_ATTEMPTS": "3"}).events_max_attempts == 3
    with pytest.raises(SettingsError, match="MASKLINE_EVENTS_MAX_ATTEMPTS"):
        load_settings(environ={"MASKLINE_EVENTS_MAX_ATTEMPTS": "0"})
