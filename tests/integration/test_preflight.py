"""Production start-up lists every problem in one run; `maskline check` does without starting."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from config import load_settings
from maskline.cli import main
from maskline.preflight import startup_problems
from maskline.vault import keyring as kr

# Everything wrong at once: the five runs of the old one-problem-per-run start-up.
ALL_WRONG = {
    "MASKLINE_ENV": "production",
    "MASKLINE_SECRET_KEY": "short",
    "MASKLINE_ADMIN_COOKIE_SECURE": "false",
}


def _environ(tmp_path: Path, **settings: str) -> dict[str, str]:
    return {"MASKLINE_INSTANCE_PATH": str(tmp_path / "instance"), **settings}


def _lines(output: str) -> list[str]:
    """The problem lines; every line of the output is one."""
    lines = output.splitlines()
    assert all(line.startswith("error: MASKLINE_") for line in lines), output
    return [line.removeprefix("error: ") for line in lines]


def test_every_problem_is_listed_each_naming_its_setting(tmp_path: Path) -> None:
    settings = load_settings(environ=_environ(tmp_path, **ALL_WRONG))

    problems = startup_problems(settings, role="worker")

    named = " ".join(problems)
    for setting in (
        "MASKLINE_SECRET_KEY",
        "MASKLINE_REDIS_URL",
        "MASKLINE_DATABASE_URL",
        "MASKLINE_TWILIO_AUTH_TOKEN",
        "MASKLINE_PUBLIC_URL",
        "MASKLINE_ADMIN_COOKIE_SECURE",
        "MASKLINE_KEYS_FILE",
        "MASKLINE_AUDIT_SIGNING_KEY_FILE",
        "MASKLINE_AUDIT_CHECKPOINT_FILE",
    ):
        assert setting in named, setting
    assert all("MASKLINE_" in problem for problem in problems)


def test_an_unreachable_database_and_a_development_ring_are_listed_together(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    kr.write_keyring_file(keys, kr.new_keyring(development=True))
    settings = load_settings(
        environ=_environ(
            tmp_path,
            MASKLINE_ENV="production",
            MASKLINE_KEYS_FILE=str(keys),
            MASKLINE_DATABASE_URL="postgresql://nobody@127.0.0.1:9/nothing",
        )
    )

    problems = startup_problems(settings, role="web")

    assert any(p.startswith("MASKLINE_KEYS_FILE: the key ring is a development key ring") for p in problems)
    assert any(p.startswith("MASKLINE_DATABASE_URL: the database cannot be reached") for p in problems)
    assert not any("nobody" in p for p in problems)  # no URL quoted back


@pytest.mark.parametrize("command", [["serve", "--port", "9"], ["worker", "--once"]])
def test_serve_and_worker_print_one_line_per_problem_then_exit_1(tmp_path: Path, command: list[str]) -> None:
    result = CliRunner().invoke(main, command, env=_environ(tmp_path, **ALL_WRONG))

    assert result.exit_code == 1
    lines = _lines(result.output)
    assert len(lines) >= 6


def test_check_lists_the_same_without_starting(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["check", "--production"], env=_environ(tmp_path))

    assert result.exit_code == 1
    lines = _lines(result.output)
    assert any("MASKLINE_SECRET_KEY" in line for line in lines)
    assert any("MASKLINE_PUBLIC_URL" in line for line in lines)
    assert not (tmp_path / "instance").exists()  # nothing was made


def test_check_passes_a_ready_development_instance(tmp_path: Path) -> None:
    env = _environ(tmp_path, MASKLINE_ENV="development")
    assert CliRunner().invoke(main, ["init"], env=env).exit_code == 0

    result = CliRunner().invoke(main, ["check"], env=env)

    assert result.exit_code == 0 and result.output.startswith("ok:"), result.output
