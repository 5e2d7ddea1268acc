"""`maskline pool` as an operator runs it: add, import, list, lock, unlock, retire.

Errors are one line on stderr and exit 1, never a traceback; a number the
operator mistyped is not echoed back. Live-binding counts and retire refusal
with live bindings are covered in test_numbers_cli.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli

X1, X2, X3 = "+14155550100", "+14155550101", "+861065529988"


def one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ") and fragment in last, result.stderr


def listed(cli: Cli) -> dict[str, dict[str, object]]:
    return {entry["number"]: entry for entry in json.loads(cli.out("pool", "list", "--json"))}


def test_add_derives_region_and_capabilities(initialised: Cli) -> None:
    assert initialised.out("pool", "add", X1, "+86 10 6552 9988") == f"added 2 number(s): {X1}, {X3}"
    initialised.run("pool", "add", X2, "--capabilities", "voice")
    pool = listed(initialised)
    assert (pool[X1]["country"], pool[X1]["area"], pool[X1]["capabilities"]) == (
        "US",
        "415",
        ["voice", "sms"],
    )
    assert (pool[X3]["country"], pool[X3]["area"]) == ("CN", "10")
    assert pool[X2]["capabilities"] == ["voice"]
    assert {entry["status"] for entry in pool.values()} == {"active"}
    assert {entry["live_bindings"] for entry in pool.values()} == {0}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ((X2, X1), f"numbers[1]: {X1} is already in the pool"),
        ((X2, "555-0123-99"), "numbers[1]: has an impossible length"),
        ((X2, "--capabilities", "voice,fax"), "--capabilities: must be voice, sms or voice,sms"),
    ],
)
def test_a_bad_add_is_one_line_and_adds_nothing(
    initialised: Cli, args: tuple[str, ...], fragment: str
) -> None:
    initialised.run("pool", "add", X1)
    result = initialised.run("pool", "add", *args, ok=False)
    one_line_error(result, fragment)
    assert "555-0123-99" not in result.stderr
    assert list(listed(initialised)) == [X1]


def test_lock_unlock_retire(initialised: Cli) -> None:
    initialised.run("pool", "add", X1)
    assert initialised.out("pool", "lock", "+1 415-555-0100") == f"{X1} is locked"
    assert listed(initialised)[X1]["status"] == "locked"
    assert initialised.out("pool", "unlock", X1) == f"{X1} is active"
    assert initialised.out("pool", "retire", X1) == f"{X1} is retired"
    assert listed(initialised)[X1]["status"] == "retired"
    one_line_error(initialised.run("pool", "lock", X2, ok=False), f"{X2} is not in the pool")


def test_import_a_spreadsheet_export_then_list_as_a_table(initialised: Cli, tmp_path: Path) -> None:
    csv_file = tmp_path / "numbers.csv"
    csv_file.write_text(f'\ufeffnumber,capabilities,status\n{X1},"voice,sms",active\n{X2},voice,locked\n')
    assert initialised.out("pool", "import", str(csv_file)) == "imported 2 number(s)"
    table = initialised.out("pool", "list").splitlines()
    assert table[0].split() == ["number", "country", "area", "caps", "status", "live"]
    assert [line.split() for line in table[1:]] == [
        [X1, "US", "415", "voice,sms", "active", "0"],
        [X2, "US", "415", "voice", "locked", "0"],
    ]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("number\n+14155550100\n".encode("utf-16"), "is not UTF-8 text"),
        (b"number,capabilities\n+14155550100,voice,sms\n", "1 bad row(s); nothing was imported"),
    ],
)
def test_a_bad_import_file_is_one_error_and_imports_nothing(
    initialised: Cli, tmp_path: Path, content: bytes, fragment: str
) -> None:
    csv_file = tmp_path / "numbers.csv"
    csv_file.write_bytes(content)
    one_line_error(initialised.run("pool", "import", str(csv_file), ok=False), fragment)
    assert listed(initialised) == {}


def test_unlock_extensions_needs_a_reason_and_is_audited(initialised: Cli) -> None:
    initialised.run("pool", "add", X1)
    refused = initialised.run("pool", "unlock-extensions", X1, ok=False)
    assert refused.returncode == 2 and "--reason" in refused.stderr
    out = initialised.out("pool", "unlock-extensions", X1, "--reason", "courier confirmed the slips")
    assert out == f"{X1} had no extension lockdown"
    assert "pool.extensions_unlocked" in initialised.out("audit", "export", "--since", "1h")
