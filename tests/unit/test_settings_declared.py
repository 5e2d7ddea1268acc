"""Each setting declared once (config.declare, issue 21): the declaration's
range and choices hold on every way a Settings is made, and each declaration
is complete."""

from __future__ import annotations

import datetime as dt
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from config import SETTINGS, Settings, SettingsError, load_settings, with_overrides
from config.declare import format_duration


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "extension_digits",
            99,
            "extension_digits (MASKLINE_EXTENSION_DIGITS) must be between 1 and 6, not 99",
        ),
        ("extension_digits", 0, "between 1 and 6"),
        ("max_bindings_per_number", 0, "MASKLINE_MAX_BINDINGS_PER_NUMBER"),
        ("webhook_backend_timeout", 60.0, "between 0.05 and 30.0"),
        ("trusted_proxies", -1, "between 0 and 10"),
        ("calls_per_hour", True, "must be a whole number, not True"),
        ("extension_digits", "4", "must be a whole number"),
        ("geo_policy", "closest", "MASKLINE_GEO_POLICY must be one of nearest, strict or global"),
        ("env", "staging", "MASKLINE_ENV must be one of development, production or testing"),
        ("voice_language", "fr-FR", "MASKLINE_VOICE_LANGUAGE must be one of en-US or zh-CN"),
        ("console_language", "zh", "MASKLINE_CONSOLE_LANGUAGE"),
    ],
)
def test_overrides_are_checked_as_the_environment_is(name: str, value: Any, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings({name: value}, environ={})


def test_with_overrides_is_checked_too() -> None:
    settings = load_settings(environ={})
    with pytest.raises(SettingsError, match="between 1 and 6"):
        with_overrides(settings, extension_digits=7)


def test_a_settings_made_directly_is_checked_too(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="between 60 and 14400"):
        Settings(instance_path=tmp_path, call_time_limit=5)


def test_the_bounds_themselves_are_accepted() -> None:
    settings = load_settings(
        {"extension_digits": 6, "trusted_proxies": 0, "webhook_backend_timeout": 1}, environ={}
    )
    assert (settings.extension_digits, settings.trusted_proxies, settings.webhook_backend_timeout) == (
        6,
        0,
        1,
    )


def test_the_environment_reads_each_declared_variable() -> None:
    settings = load_settings(
        environ={"MASKLINE_EXTENSION_DIGITS": "6", "MASKLINE_KEYS": "{}", "MASKLINE_COOLDOWN": "2h"}
    )
    assert settings.extension_digits == 6 and settings.keys_json == "{}"
    assert settings.cooldown == dt.timedelta(hours=2)


def test_every_field_but_the_derived_one_is_a_declared_setting() -> None:
    declared = {s.name for s in SETTINGS}
    assert {f.name for f in fields(Settings)} - declared == {"twilio_token_is_local"}


def test_variables_are_unique_and_each_has_a_doc() -> None:
    names = [s.env for s in SETTINGS]
    assert len(names) == len(set(names))
    assert all(s.spec.doc.strip() for s in SETTINGS)
    assert all(name.startswith("MASKLINE_") for name in names)


def test_every_default_passes_its_own_declaration() -> None:
    for setting in SETTINGS:
        setting.check(setting.default)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (dt.timedelta(days=90), "90d"),
        (dt.timedelta(days=7), "7d"),
        (dt.timedelta(hours=72), "72h"),
        (dt.timedelta(hours=24), "24h"),
        (dt.timedelta(minutes=15), "15m"),
        (dt.timedelta(seconds=90), "90s"),
    ],
)
def test_durations_are_shown_as_the_docs_write_them(value: dt.timedelta, text: str) -> None:
    assert format_duration(value) == text
