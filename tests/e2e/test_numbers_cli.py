"""The numbers CLI as an operator runs it: pool, bind, route, unbind, rebuild.

Each test runs the real `maskline` command (in process, as tests/e2e/conftest.py
explains) against the test database and Redis (or a copy of the migrated
SQLite template and the in-process fakeredis when unset: then every command
starts with an empty in-process Redis that it rebuilds from SQL, which this
tier then also proves).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from sqlalchemy.engine import Engine

from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL, clean_tables
from tests.e2e.conftest import invoke_in_process

BUYER, MERCHANT, COURIER = "+14155550132", "+12125550143", "+13125550154"
RELAYS = ("+14155550100", "+14155550101")

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(request: pytest.FixtureRequest, tmp_path: Path, migrated_engine: Engine) -> Run:
    database_url = TEST_DATABASE_URL or f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    if TEST_DATABASE_URL:
        clean_tables(migrated_engine)
    else:
        shutil.copyfile(request.getfixturevalue("sqlite_template"), tmp_path / "cli.sqlite3")
    flush_test_redis()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MASKLINE_")}
    env |= {
        "MASKLINE_ENV": "development",
        "MASKLINE_INSTANCE_PATH": str(tmp_path / "instance"),
        "MASKLINE_DATABASE_URL": database_url,
        "MASKLINE_KEYS_FILE": str(tmp_path / "keys.json"),
        "MASKLINE_LOG_FILE": str(tmp_path / "maskline.log"),
    }
    if TEST_REDIS_URL:
        env["MASKLINE_REDIS_URL"] = TEST_REDIS_URL

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = invoke_in_process(args, env, None)
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    run("init")
    run("pool", "add", *RELAYS)
    return run


def flush_test_redis() -> None:
    if TEST_REDIS_URL:
        client = redis.Redis.from_url(TEST_REDIS_URL)
        client.flushdb()
        client.close()


def bind_axb(cli: Run) -> dict[str, object]:
    out = cli(
        "bind",
        "--order",
        "o-1",
        "--mode",
        "axb",
        "--party",
        f"buyer={BUYER}",
        "--party",
        f"merchant={MERCHANT}",
    ).stdout
    return dict(json.loads(out))


def route(cli: Run, caller: str, *extra: str, to: str) -> dict[str, object]:
    return dict(json.loads(cli("route", "--to", to, "--from", caller, *extra).stdout))


def test_bind_prints_relay_number_and_roles_never_a_party_number(cli: Run) -> None:
    result = cli(
        "bind",
        "--order",
        "o-1",
        "--mode",
        "axb",
        "--party",
        f"buyer={BUYER}",
        "--party",
        f"merchant={MERCHANT}",
    )
    body = json.loads(result.stdout)
    assert body["relay_number"] in RELAYS and sorted(body["roles"]) == ["buyer", "merchant"]
    for digits in ("4155550132", "2125550143"):
        assert digits not in result.stdout + result.stderr


def test_route_decisions_are_json_without_numbers(cli: Run) -> None:
    binding = bind_axb(cli)
    to_merchant = route(cli, BUYER, to=str(binding["relay_number"]))
    stranger = route(cli, COURIER, to=str(binding["relay_number"]))
    assert to_merchant == {
        "action": "connect",
        "reason": None,
        "binding_id": binding["id"],
        "from_role": "buyer",
        "target_role": "merchant",
    }
    assert (stranger["action"], stranger["reason"]) == ("reject", "stranger")


def test_unbind_ends_routing(cli: Run) -> None:
    binding = bind_axb(cli)
    body = json.loads(cli("unbind", str(binding["id"])).stdout)
    assert body["status"] == "unbound"
    assert route(cli, BUYER, to=str(binding["relay_number"]))["action"] == "reject"


def test_axe_binding_prints_the_number_to_dial(cli: Run) -> None:
    body = json.loads(
        cli("bind", "--order", "o-2", "--mode", "axe", "--party", f"buyer={BUYER}", "--allow", COURIER).stdout
    )
    assert body["dial"]["caller"] == f"{body['relay_number']},{body['extension']}"
    assert "3125550154" not in json.dumps(body)
    decision = json.loads(
        cli("route", "--to", body["relay_number"], "--from", COURIER, "--digits", body["extension"]).stdout
    )
    assert (decision["action"], decision["target_role"]) == ("connect", "buyer")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--party", f"buyer={BUYER}", "--party", "merchant=12"), "parties.merchant"),
        (("--party", f"buyer={BUYER}", "--party", f"merchant={RELAYS[1]}"), "relay number"),
        (("--party", f"buyer={BUYER}"), "exactly two parties"),
    ],
)
def test_bad_binds_fail_with_one_line_and_change_nothing(
    cli: Run, args: tuple[str, ...], message: str
) -> None:
    result = cli("bind", "--order", "o-1", "--mode", "axb", *args, ok=False)
    assert result.returncode != 0 and message in result.stderr
    assert "Traceback" not in result.stderr and "4155550132" not in result.stderr
    assert cli("bindings", "list").stdout == ""


def test_routes_rebuild_after_redis_loss(cli: Run) -> None:
    binding = bind_axb(cli)
    if TEST_REDIS_URL:
        flush_test_redis()
        assert route(cli, BUYER, to=str(binding["relay_number"]))["reason"] == "unavailable"
    assert "1 bindings from SQL" in cli("routes", "rebuild").stdout
    assert route(cli, BUYER, to=str(binding["relay_number"]))["action"] == "connect"


def test_pool_import_lists_bad_rows_by_line_and_applies_none(cli: Run, tmp_path: Path) -> None:
    csv_file = tmp_path / "numbers.csv"
    csv_file.write_text("number,capabilities\n+14155550102,voice\nnonsense,voice\n+14155550103,fax\n")
    result = cli("pool", "import", str(csv_file), ok=False)
    assert result.returncode == 1
    assert (
        "line 3:" in result.stderr and "line 4:" in result.stderr and "nothing was imported" in result.stderr
    )
    listed = json.loads(cli("pool", "list", "--json").stdout)
    assert sorted(n["number"] for n in listed) == sorted(RELAYS)


def test_pool_list_shows_live_bindings_and_retire_is_refused_while_live(cli: Run) -> None:
    binding = bind_axb(cli)
    listed = {n["number"]: n["live_bindings"] for n in json.loads(cli("pool", "list", "--json").stdout)}
    assert listed[str(binding["relay_number"])] == 1
    refused = cli("pool", "retire", str(binding["relay_number"]), ok=False)
    assert refused.returncode == 1 and "live binding" in refused.stderr


def test_worker_runs_its_jobs_once(cli: Run) -> None:
    bind_axb(cli)
    out = cli("worker", "--once").stdout
    assert "expired 0" in out and "orphans released 0" in out
    assert "idempotency records purged: 0" in out
