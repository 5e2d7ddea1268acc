"""The CLI in a mainland deployment (MASKLINE_DEFAULT_REGION=CN): national forms everywhere.

`maskline pool add 13800138099` once failed here while `vault put` took the
same form: every command now reads numbers through the vault's one parser.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from sqlalchemy.engine import Engine

from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL, clean_tables
from tests.e2e.conftest import invoke_in_process
from tests.e2e.test_numbers_cli import flush_test_redis


def test_pool_add_import_bind_and_route_take_mainland_national_forms(
    tmp_path: Path, migrated_engine: Engine
) -> None:
    if TEST_DATABASE_URL:
        clean_tables(migrated_engine)
    flush_test_redis()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "MASKLINE_ENV": "development",
        "MASKLINE_INSTANCE_PATH": str(tmp_path / "instance"),
        "MASKLINE_DATABASE_URL": TEST_DATABASE_URL or f"sqlite:///{tmp_path / 'cli.sqlite3'}",
        "MASKLINE_KEYS_FILE": str(tmp_path / "keys.json"),
        "MASKLINE_LOG_FILE": str(tmp_path / "maskline.log"),
        "MASKLINE_DEFAULT_REGION": "CN",
    }
    if TEST_REDIS_URL:
        env["MASKLINE_REDIS_URL"] = TEST_REDIS_URL

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return invoke_in_process(args, env, None)

    assert run("init").returncode == 0
    added = run("pool", "add", "13800138099", "010-6552 0100")
    assert added.returncode == 0, added.stderr
    assert "+8613800138099" in added.stdout and "+861065520100" in added.stdout
    (tmp_path / "pool.csv").write_text("number\n021 6552 0101\n", encoding="utf-8")
    imported = run("pool", "import", str(tmp_path / "pool.csv"))
    assert imported.returncode == 0 and "imported 1" in imported.stdout, imported.stderr

    bound = run(
        "bind", "--order", "o-cn", "--mode", "axb",
        "--party", "buyer=139 1234 0003", "--party", "merchant=0755-8765 4321",
    )  # fmt: skip
    assert bound.returncode == 0, bound.stderr
    relay = json.loads(bound.stdout)["relay_number"]
    assert relay.startswith("+86")
    nsn = relay[3:]
    national_relay = nsn if len(nsn) == 11 and nsn[0] == "1" else "0" + nsn  # landline: trunk 0
    route = run("route", "--to", national_relay, "--from", "13912340003")
    assert route.returncode == 0, route.stderr
    assert json.loads(route.stdout)["action"] == "connect"
    assert "13912340003" not in bound.stdout + route.stdout

    refused = run("bind", "--order", "o-2", "--mode", "axb", "--party", "buyer=95588", "--party",
                  "merchant=13912340004")  # fmt: skip
    assert refused.returncode != 0
    assert "parties.buyer: is a 95xxx" in refused.stderr and "95588" not in refused.stderr
