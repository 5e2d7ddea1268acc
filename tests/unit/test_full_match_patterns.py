"""Field patterns match the whole value: a trailing newline (which ``$``
accepts) is refused by every one of them (API, faces, admin, settings)."""

from __future__ import annotations

import re

import pytest

from config import SettingsError, load_settings
from config import redis_url as redis_url_module
from maskline.admin import accounts, reveal
from maskline.api import keys, requests, views, waybills
from maskline.audit import alerts, checkpoints
from maskline.audit import cli as audit_cli
from maskline.compat.aliyun import signature
from maskline.compat.twilio import credentials
from maskline.compat.twilio import interfaces as twilio_interfaces
from maskline.events import services as events_services
from maskline.numbers import router
from maskline.numbers import services as numbers_services

PATTERNS = [
    (accounts._NAME, "alice"),
    (reveal._REQUEST_ID, "rv_" + "a" * 16),
    (checkpoints._HEX64, "a" * 64),
    (checkpoints._KEY_ID, "a" * 16),
    (alerts._ACTOR_KEY, "apikey:abc"),
    (alerts._ADMIN_NAME, "alice"),
    (alerts._TOKEN, "pn_abc"),
    (alerts._REQUEST_ID, "abc"),
    (alerts._RELAY, "+14155550100"),
    (requests.ROLE, "buyer"),
    (waybills.TRACKING_NO, "SF1234567"),
    (waybills.CARRIER, "sf-express"),
    (views._IDEMPOTENCY_KEY, "key-1"),
    (keys._KEY, "ml_" + "a" * 12 + "_" + "b" * 43),
    (keys._OWNER, "shop-a"),
    (events_services._OWNER, "shop-a"),
    (twilio_interfaces._SID, "KS" + "0" * 32),
    (credentials._ACCOUNT_SID, "AC" + "0" * 32),
    (credentials._TOKEN, "0" * 32),
    (signature._CREDENTIAL, "LTAI5t"),
    (signature._NONCE, "nonce-0123456789"),
    (signature._HEADER_NAME, "x-acs-date"),
    (router._EXTENSION, "1234"),
    (numbers_services.ROLE_PATTERN, "buyer"),
    (numbers_services.BINDING_ID, "bd_" + "a" * 16),
    (redis_url_module._HOST_PORT, "redis-1:6379"),
]


@pytest.mark.parametrize(("pattern", "valid"), PATTERNS, ids=[p.pattern[:30] for p, _ in PATTERNS])
@pytest.mark.parametrize("suffix", ["\n", "\r\n", "\nx"])
def test_a_trailing_newline_is_refused(pattern: re.Pattern[str], valid: str, suffix: str) -> None:
    assert pattern.match(valid), "the sample must be valid"
    assert pattern.match(valid + suffix) is None
    assert pattern.search(valid + suffix) is None


def test_durations_take_surrounding_spaces_but_nothing_after_a_newline() -> None:
    assert audit_cli._DURATION.match(" 15m \n")  # whitespace around a value is trimmed, by design
    assert audit_cli._DURATION.match("15m\nx") is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MASKLINE_TWILIO_ACCOUNT_SID", "AC" + "0" * 32 + "\nx"),
        ("MASKLINE_PUBLIC_URL", "https://relay.example.com\n/x"),
        ("MASKLINE_COOLDOWN", "15m\nx"),
        ("MASKLINE_WORKING_HOURS", "08:00-19:00\nx"),
    ],
)
def test_settings_refuse_a_value_with_a_newline_inside(name: str, value: str) -> None:
    with pytest.raises(SettingsError):
        load_settings(environ={name: value})
