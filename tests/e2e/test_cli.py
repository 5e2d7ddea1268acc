"""The ``maskline`` command end to end, as an operator runs it."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import text

from maskline.db import make_engine
from tests.e2e.conftest import Cli

TOKEN = re.compile(r"^pn_[a-z2-7]+$")


def _no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr


def _one_line(stderr: str) -> str:
    """The one error line; log warnings (e.g. the in-process Redis notice) aside."""
    lines = [line for line in stderr.splitlines() if line.strip() and " WARNING " not in line]
    assert len(lines) == 1, stderr
    _no_traceback(stderr)
    return lines[0]


def _sql(cli: Cli, statement: str) -> None:
    engine = make_engine(cli.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def test_init_creates_the_key_ring_and_the_schema(cli: Cli) -> None:
    result = cli.run("init")

    assert (cli.instance_path / "keys.json").stat().st_mode & 0o777 == 0o600
    assert "database ready" in result.stdout
    assert cli.out("audit", "verify") == "OK 0 records"


def test_init_twice_keeps_the_key_ring(initialised: Cli) -> None:
    before = (initialised.instance_path / "keys.json").read_bytes()

    initialised.run("init")

    assert (initialised.instance_path / "keys.json").read_bytes() == before


def test_put_prints_only_the_token(initialised: Cli) -> None:
    stdout = initialised.run("vault", "put", "+14155550132").stdout

    assert TOKEN.match(stdout.strip())
    assert stdout.count("\n") == 1


@pytest.mark.parametrize(
    ("first", "second", "region"),
    [
        ("+14155550132", "(415) 555-0132", None),
        ("+14155550132", "415.555.0132", None),
        ("+8613800138000", "138 0013 8000", "CN"),
    ],
)
def test_the_same_number_in_another_format_gets_the_same_token(
    initialised: Cli, first: str, second: str, region: str | None
) -> None:
    token = initialised.out("vault", "put", first)

    again = initialised.out("vault", "put", second, *(["--region", region] if region else []))

    assert again == token


def test_reveal_prints_e164_and_writes_an_audit_record(initialised: Cli) -> None:
    token = initialised.out("vault", "put", "(415) 555-0132")

    number = initialised.out("vault", "reveal", token, "--actor", "alice", "--reason", "ticket 42")

    assert number == "+14155550132"
    assert initialised.out("audit", "verify") == "OK 2 records"  # the put's and the reveal's


@pytest.mark.parametrize("reason", ["", "   "])
def test_reveal_refuses_an_empty_reason(initialised: Cli, reason: str) -> None:
    token = initialised.out("vault", "put", "+14155550132")

    result = initialised.run("vault", "reveal", token, "--actor", "alice", "--reason", reason, ok=False)

    assert "reason" in _one_line(result.stderr)
    assert result.stdout == ""
    assert initialised.out("audit", "verify") == "OK 1 records"  # the put's only


@pytest.mark.parametrize("number", ["12", "+1 415 555 01", "not a number", "+999 1234 5678"])
def test_an_invalid_number_is_refused_naming_the_field(initialised: Cli, number: str) -> None:
    result = initialised.run("vault", "put", number, ok=False)

    line = _one_line(result.stderr)
    digits = re.sub(r"\D", "", number)
    assert line.startswith("Error: NUMBER: ")
    assert number not in line
    assert not digits or digits not in re.sub(r"\D", "", line)
    assert result.stdout == ""


def test_erase_then_reveal_says_erased(initialised: Cli) -> None:
    token = initialised.out("vault", "put", "+14155550132")

    erased = initialised.out("vault", "erase", token, "--reason", "erasure request 7", "--actor", "dpo")
    result = initialised.run("vault", "reveal", token, "--actor", "alice", "--reason", "check", ok=False)

    assert erased == f"erased {token}"
    assert f"vault entry {token} was erased" in result.stderr
    _no_traceback(result.stderr)
    assert result.stdout == ""


def test_a_new_put_after_erase_gets_a_new_token(initialised: Cli) -> None:
    token = initialised.out("vault", "put", "+14155550132")
    initialised.run("vault", "erase", token, "--reason", "erasure request 7")

    assert initialised.out("vault", "put", "+14155550132") != token


def test_reveal_of_an_unknown_token_fails_cleanly(initialised: Cli) -> None:
    result = initialised.run("vault", "reveal", "pn_unknown", "--actor", "a", "--reason", "r", ok=False)

    assert "no vault entry" in _one_line(result.stderr)


def test_audit_verify_detects_a_tampered_row(initialised: Cli) -> None:
    token = initialised.out("vault", "put", "+14155550132")
    for reason in ("ticket 1", "ticket 2", "ticket 3"):
        initialised.run("vault", "reveal", token, "--actor", "alice", "--reason", reason)
    assert initialised.out("audit", "verify") == "OK 4 records"  # the put's and three reveals

    _sql(initialised, "UPDATE audit_log SET actor = 'bob' WHERE seq = 2")
    result = initialised.run("audit", "verify", ok=None)

    assert result.returncode == 1
    assert result.stdout.startswith("BROKEN at record 2: ")
    _no_traceback(result.stderr)


def test_audit_verify_detects_a_deleted_row(initialised: Cli) -> None:
    token = initialised.out("vault", "put", "+14155550132")
    for reason in ("ticket 1", "ticket 2", "ticket 3"):
        initialised.run("vault", "reveal", token, "--actor", "alice", "--reason", reason)

    _sql(initialised, "DELETE FROM audit_log WHERE seq = 1")
    result = initialised.run("audit", "verify", ok=None)

    assert result.returncode == 1
    assert "record 2" in result.stdout


def _status(cli: Cli) -> dict[tuple[str, int], dict[str, object]]:
    rows = json.loads(cli.out("keys", "status", "--json"))
    return {(r["kind"], r["version"]): r for r in rows}


def test_kek_rotation_add_promote_rewrap_retire(initialised: Cli) -> None:
    numbers = ["+14155550132", "+14155550133", "+14155550134"]
    tokens = [initialised.out("vault", "put", n) for n in numbers]

    assert "added kek version 2" in initialised.out("keys", "add")
    initialised.run("keys", "promote", "2")
    rewrap = initialised.out("vault", "rewrap", "--batch", "2")
    status = _status(initialised)
    text_status = initialised.out("keys", "status")
    initialised.run("keys", "retire", "1")

    assert "re-wrapped 3 entries" in rewrap
    assert status["kek", 1]["entries"] == 0
    assert status["kek", 2]["entries"] == 3
    assert status["kek", 2]["primary"] is True
    assert re.search(r"^kek\s+1\s+yes\s+0\s", text_status, re.MULTILINE), text_status
    after = _status(initialised)
    assert (after["kek", 1]["retired"], after["kek", 1]["loaded"]) == (True, False)
    ring = json.loads((initialised.instance_path / "keys.json").read_text())
    assert list(ring["kek"]["versions"]) == ["2"]
    for token, number in zip(tokens, numbers, strict=True):
        assert initialised.out("vault", "reveal", token, "--actor", "a", "--reason", "check") == number


def test_retiring_a_key_still_in_use_is_refused(initialised: Cli) -> None:
    token = initialised.out("vault", "put", "+14155550132")
    initialised.run("keys", "rotate")

    result = initialised.run("keys", "retire", "1", ok=False)

    _one_line(result.stderr)
    assert initialised.out("vault", "reveal", token, "--actor", "a", "--reason", "check") == "+14155550132"


def test_production_refuses_a_development_key_ring_in_one_line(initialised: Cli) -> None:
    production = {
        "MASKLINE_ENV": "production",
        "MASKLINE_SECRET_KEY": "a-real-secret-for-this-test-of-32-bytes-or-more",
        "MASKLINE_PUBLIC_URL": "https://relay.example.com",
        # Never contacted: start-up stops at the key ring.
        "MASKLINE_DATABASE_URL": "postgresql://maskline@127.0.0.1:9/maskline",
        "MASKLINE_REDIS_URL": "redis://127.0.0.1:9/0",
        "MASKLINE_TWILIO_AUTH_TOKEN": "a-twilio-token-for-this-test",
    }

    result = initialised.run("vault", "put", "+14155550132", env=production, ok=False)

    assert "development key ring" in _one_line(result.stderr)
    assert result.stdout == ""


def test_production_refuses_a_missing_key_ring_in_one_line(cli: Cli) -> None:
    production = {
        "MASKLINE_ENV": "production",
        "MASKLINE_SECRET_KEY": "a-real-secret-for-this-test-of-32-bytes-or-more",
        "MASKLINE_PUBLIC_URL": "https://relay.example.com",
        "MASKLINE_DATABASE_URL": "postgresql://maskline@127.0.0.1:9/maskline",
        "MASKLINE_REDIS_URL": "redis://127.0.0.1:9/0",
        "MASKLINE_TWILIO_AUTH_TOKEN": "a-twilio-token-for-this-test",
    }

    result = cli.run("audit", "verify", env=production, ok=False)

    assert "keys.json" in _one_line(result.stderr)


def test_production_serve_lists_a_development_key_ring_with_every_other_problem(initialised: Cli) -> None:
    production = {
        "MASKLINE_ENV": "production",
        "MASKLINE_SECRET_KEY": "a-real-secret-for-this-test-of-32-bytes-or-more",
        "MASKLINE_PUBLIC_URL": "https://relay.example.com",
        "MASKLINE_DATABASE_URL": "postgresql://maskline@127.0.0.1:9/maskline",
        "MASKLINE_REDIS_URL": "redis://127.0.0.1:9/0",
        "MASKLINE_TWILIO_AUTH_TOKEN": "a-twilio-token-for-this-test",
    }

    result = initialised.run("serve", "--port", "9", env=production, ok=False)

    _no_traceback(result.stderr)
    problems = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert any(p.startswith("error: MASKLINE_KEYS_FILE:") and "development key ring" in p for p in problems)
    assert any(p.startswith("error: MASKLINE_DATABASE_URL:") for p in problems)  # in the same run


@pytest.mark.parametrize(
    ("variable", "value"),
    [("MASKLINE_ENV", "staging"), ("MASKLINE_DEFAULT_REGION", "USA"), ("MASKLINE_EXTENSION_DIGITS", "x")],
)
def test_a_bad_setting_is_refused_in_one_line_naming_it(cli: Cli, variable: str, value: str) -> None:
    result = cli.run("audit", "verify", env={variable: value}, ok=False)

    assert variable in _one_line(result.stderr)
