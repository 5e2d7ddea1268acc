"""Webhook settings: parsing, validation and the production refusal."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from config import SettingsError, load_settings


def test_production_refuses_to_start_without_a_twilio_auth_token() -> None:
    problems = load_settings(environ={"MASKLINE_ENV": "production"}).problems()
    assert any("MASKLINE_TWILIO_AUTH_TOKEN" in p for p in problems)
    with_token = load_settings(environ={"MASKLINE_ENV": "production", "MASKLINE_TWILIO_AUTH_TOKEN": "t" * 32})
    assert not any("TWILIO" in p for p in with_token.problems())


@pytest.mark.parametrize(
    ("name", "value", "field", "expected"),
    [
        ("PUBLIC_URL", "https://relay.example.com/ml/", "public_url", "https://relay.example.com/ml"),
        ("TRUST_PROXY", "yes", "trust_proxy", True),
        ("TRUST_PROXY", "0", "trust_proxy", False),
        ("VOICE_LANGUAGE", "zh-CN", "voice_language", "zh-CN"),
        ("SMS_REDACT", "links", "sms_redact", frozenset({"links"})),
        ("SMS_REDACT", "none", "sms_redact", frozenset()),
        ("SMS_MEDIA", "forward", "sms_media", "forward"),
        ("CALLS_PER_HOUR", "5", "calls_per_hour", 5),
        ("EXTENSION_LOCKOUT", "2h", "extension_lockout", dt.timedelta(hours=2)),
        ("WEBHOOK_DEDUPE_TTL", "3d", "webhook_dedupe_ttl", dt.timedelta(days=3)),
        ("WEBHOOK_ENDED_TTL", "30m", "webhook_ended_ttl", dt.timedelta(minutes=30)),
        ("TWILIO_ACCOUNT_SID", "AC" + "ab" * 16, "twilio_account_sid", "AC" + "ab" * 16),
        (
            "TWILIO_API_URL",
            "https://api.dublin.ie1.twilio.com/",
            "twilio_api_url",
            "https://api.dublin.ie1.twilio.com",
        ),
    ],
)
def test_webhook_settings_are_parsed(name: str, value: str, field: str, expected: Any) -> None:
    assert getattr(load_settings(environ={f"MASKLINE_{name}": value}), field) == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PUBLIC_URL", "relay.example.com"),
        ("PUBLIC_URL", "https://relay.example.com/?x=1"),
        ("TRUST_PROXY", "maybe"),
        ("VOICE_LANGUAGE", "xx-YY"),
        ("SMS_REDACT", "emails"),
        ("SMS_MEDIA", "drop"),
        ("CALLS_PER_HOUR", "0"),
        ("CALL_TIME_LIMIT", "10"),
        ("TWILIO_ACCOUNT_SID", "SK" + "ab" * 16),
        ("TWILIO_API_URL", "api.twilio.com"),
    ],
)
def test_bad_webhook_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"MASKLINE_{name}"):
        load_settings(environ={f"MASKLINE_{name}": value})


def test_the_twilio_api_is_twilios_own_unless_configured() -> None:
    settings = load_settings(environ={})
    assert (settings.twilio_api_url, settings.twilio_account_sid) == ("https://api.twilio.com", None)
