"""Settings from the environment: parsing, defaults, production refusals."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from config import INSECURE_DEVELOPMENT_SECRET, SettingsError, load_settings, parse_duration


def test_defaults_are_development_with_embedded_backends(tmp_path: Path) -> None:
    settings = load_settings(environ={"MASKLINE_INSTANCE_PATH": str(tmp_path)})
    assert settings.env == "development" and settings.redis_url is None
    assert settings.database_url == f"sqlite:///{tmp_path / 'maskline.sqlite3'}"
    assert settings.keys_file == tmp_path / "keys.json"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MASKLINE_ENV", "staging", "MASKLINE_ENV must be one of"),
        ("MASKLINE_DEFAULT_REGION", "USA", "MASKLINE_DEFAULT_REGION"),
        ("MASKLINE_COOLDOWN", "soon", "MASKLINE_COOLDOWN must be a duration"),
        ("MASKLINE_MAX_BINDINGS_PER_NUMBER", "0", "between 1 and"),
        ("MASKLINE_GEO_POLICY", "closest", "nearest, strict or global"),
        ("MASKLINE_DEFAULT_REGION", "XX", "MASKLINE_DEFAULT_REGION: XX is not a region"),
        ("MASKLINE_ALLOWED_COUNTRIES", "CN, UK", "MASKLINE_ALLOWED_COUNTRIES: UK is not a region"),
        ("MASKLINE_REFUSED_NUMBER_TYPES", "PREMIUM", "MASKLINE_REFUSED_NUMBER_TYPES: PREMIUM is not"),
        ("MASKLINE_REFUSED_NUMBER_TYPES", "to_string", "MASKLINE_REFUSED_NUMBER_TYPES: TO_STRING is not"),
        ("MASKLINE_KEYRING_RELOAD_SECONDS", "often", "MASKLINE_KEYRING_RELOAD_SECONDS"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(environ={variable: value})


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("30s", 30), ("15m", 900), ("72h", 259200), ("2d", 172800)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration("X", text) == dt.timedelta(seconds=seconds)


def test_regions_are_trimmed_and_upper_cased() -> None:
    settings = load_settings(
        environ={"MASKLINE_DEFAULT_REGION": " cn ", "MASKLINE_ALLOWED_COUNTRIES": "cn, gb,, us "}
    )
    assert settings.default_region == "CN"
    assert settings.allowed_countries == frozenset({"CN", "GB", "US"})


def test_refused_number_types_accept_the_spelling_errors_use() -> None:
    settings = load_settings(environ={"MASKLINE_REFUSED_NUMBER_TYPES": "premium-rate, toll_free"})
    assert settings.refused_number_types == frozenset({"PREMIUM_RATE", "TOLL_FREE"})


def test_keys_from_the_environment_replace_the_default_file(tmp_path: Path) -> None:
    settings = load_settings(environ={"MASKLINE_INSTANCE_PATH": str(tmp_path), "MASKLINE_KEYS": "{}"})
    assert settings.keys_json == "{}" and settings.keys_file is None


@pytest.mark.parametrize("env", ["development", "testing"])
def test_only_production_has_problems(env: str) -> None:
    assert load_settings(environ={"MASKLINE_ENV": env}).problems() == []


def test_overrides_win_over_environment() -> None:
    settings = load_settings({"default_region": "CN"}, environ={"MASKLINE_DEFAULT_REGION": "US"})
    assert settings.default_region == "CN"


def test_production_refuses_development_defaults() -> None:
    problems = load_settings(environ={"MASKLINE_ENV": "production"}).problems()
    assert any("MASKLINE_SECRET_KEY" in p for p in problems)
    assert any("MASKLINE_REDIS_URL" in p for p in problems)
    assert any("SQLite" in p for p in problems)


def test_production_with_real_settings_has_no_problems() -> None:
    settings = load_settings(
        environ={
            "MASKLINE_ENV": "production",
            "MASKLINE_SECRET_KEY": "x" * 40,
            "MASKLINE_REDIS_URL": "redis://127.0.0.1:6379/0",
            "MASKLINE_DATABASE_URL": "postgresql://db/maskline",
            "MASKLINE_PUBLIC_URL": "https://relay.example.com",
        }
    )
    assert settings.secret_key != INSECURE_DEVELOPMENT_SECRET
    assert [p for p in settings.problems() if "TWILIO" not in p] == []


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"MASKLINE_SECRET_KEY": "x" * 31}, "MASKLINE_SECRET_KEY is 31 bytes"),
        ({"MASKLINE_PUBLIC_URL": ""}, "MASKLINE_PUBLIC_URL is not set"),
        ({"MASKLINE_PUBLIC_URL": "http://relay.example.com"}, "MASKLINE_PUBLIC_URL must be an https URL"),
        ({"MASKLINE_ADMIN_COOKIE_SECURE": "false"}, "MASKLINE_ADMIN_COOKIE_SECURE is false"),
    ],
)
def test_production_refuses_weak_settings(environ: dict[str, str], named: str) -> None:
    fine = {
        "MASKLINE_ENV": "production",
        "MASKLINE_SECRET_KEY": "x" * 32,
        "MASKLINE_REDIS_URL": "redis://127.0.0.1:6379/0",
        "MASKLINE_DATABASE_URL": "postgresql://db/maskline",
        "MASKLINE_PUBLIC_URL": "https://relay.example.com",
        "MASKLINE_TWILIO_AUTH_TOKEN": "t" * 32,
    }
    assert load_settings(environ=fine).problems() == []

    problems = load_settings(environ={**fine, **environ}).problems()

    assert [p for p in problems if named in p] == problems and len(problems) == 1


def test_production_lists_every_problem_at_once() -> None:
    problems = load_settings(
        environ={
            "MASKLINE_ENV": "production",
            "MASKLINE_SECRET_KEY": "short",
            "MASKLINE_ADMIN_COOKIE_SECURE": "0",
        }
    ).problems()

    named = {p.split(" ")[0] for p in problems}
    assert named == {
        "MASKLINE_SECRET_KEY",
        "MASKLINE_REDIS_URL",
        "MASKLINE_DATABASE_URL",
        "MASKLINE_TWILIO_AUTH_TOKEN",
        "MASKLINE_PUBLIC_URL",
        "MASKLINE_ADMIN_COOKIE_SECURE",
    }
