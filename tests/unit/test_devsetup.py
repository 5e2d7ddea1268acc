"""The development webhook token and the serve banner."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from config import SettingsError, development_token_path, load_settings
from maskline.devsetup import ensure_development_token, serve_banner


def test_init_makes_a_private_token_that_development_then_reads(tmp_path: Path) -> None:
    before = load_settings(environ={"MASKLINE_INSTANCE_PATH": str(tmp_path)})
    assert before.twilio_auth_token is None

    path = ensure_development_token(before)

    assert path == development_token_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = load_settings(environ={"MASKLINE_INSTANCE_PATH": str(tmp_path)}).twilio_auth_token
    assert token is not None and len(token) == 64
    assert ensure_development_token(before) is None  # never replaced
    assert load_settings(environ={"MASKLINE_INSTANCE_PATH": str(tmp_path)}).twilio_auth_token == token


@pytest.mark.parametrize("env", ["production", "testing"])
def test_only_development_reads_or_makes_the_token_file(tmp_path: Path, env: str) -> None:
    development_token_path(tmp_path).write_text("a-development-token\n")
    settings = load_settings(environ={"MASKLINE_INSTANCE_PATH": str(tmp_path), "MASKLINE_ENV": env})

    assert settings.twilio_auth_token is None
    assert ensure_development_token(settings) is None
    if env == "production":
        assert any("MASKLINE_TWILIO_AUTH_TOKEN" in p for p in settings.problems())


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    development_token_path(tmp_path).write_text("from-the-file\n")
    settings = load_settings(
        environ={"MASKLINE_INSTANCE_PATH": str(tmp_path), "MASKLINE_TWILIO_AUTH_TOKEN": "from-env"}
    )

    assert settings.twilio_auth_token == "from-env"
    assert ensure_development_token(settings) is None


def test_an_unreadable_token_file_is_a_clear_error(tmp_path: Path) -> None:
    development_token_path(tmp_path).write_bytes(b"\xff\xfe")

    with pytest.raises(SettingsError, match="maskline init"):
        load_settings(environ={"MASKLINE_INSTANCE_PATH": str(tmp_path)})


def test_the_banner_names_the_console_the_first_admin_the_demo_and_a_simulated_call(tmp_path: Path) -> None:
    settings = load_settings(environ={"MASKLINE_INSTANCE_PATH": str(tmp_path)})
    ensure_development_token(settings)
    settings = load_settings(environ={"MASKLINE_INSTANCE_PATH": str(tmp_path)})

    banner = serve_banner(settings, host="0.0.0.0", port=8123)  # noqa: S104

    assert "http://127.0.0.1:8123/admin/" in banner
    assert "maskline admin create-user" in banner and "maskline demo" in banner
    assert "maskline sim call --url http://127.0.0.1:8123" in banner
    assert str(development_token_path(tmp_path)) in banner
    assert settings.twilio_auth_token not in banner  # the token itself is never printed
    assert not re.search(r"\d{7}", banner)  # it goes to the server's log: no phone number in it
