"""The installed ``maskline`` console script, as a subprocess.

Most e2e tests run commands in process (tests/e2e/conftest.py); these prove
that the real entry point behaves the same: exit statuses, streams, the lazy
listing, and a command's work landing in the database.
"""

from __future__ import annotations

import re

from tests.e2e.conftest import Cli


def test_help_lists_every_command_and_version_answers(real_cli: Cli) -> None:
    listing = real_cli.out("--help")
    version = real_cli.out("--version")

    for name in ("admin", "aliyun", "bind", "demo", "init", "serve", "sim", "vault", "worker"):
        assert re.search(rf"^  {name}\s+\S", listing, re.MULTILINE), name
    assert re.fullmatch(r".*version \d+\.\d+\.\d+", version)


def test_init_then_put_and_reveal_through_the_script(real_cli: Cli) -> None:
    assert "database ready" in real_cli.out("init")

    token = real_cli.out("vault", "put", "+14155550132")
    number = real_cli.out("vault", "reveal", token, "--actor", "ops", "--reason", "smoke test")

    assert number == "+14155550132"
    assert "+14155550132" not in token


def test_a_refused_command_exits_1_with_one_error_line(real_cli: Cli) -> None:
    real_cli.out("init")

    result = real_cli.run("vault", "put", "not a number", ok=False)

    assert result.returncode == 1
    assert result.stdout == ""
    assert [line for line in result.stderr.splitlines() if line.startswith("Error:")] == [
        result.stderr.strip().splitlines()[-1]
    ]
    assert "Traceback" not in result.stderr


def test_an_unknown_command_exits_2(real_cli: Cli) -> None:
    result = real_cli.run("no-such-command", ok=False)

    assert result.returncode == 2
    assert "No such command 'no-such-command'" in result.stderr
