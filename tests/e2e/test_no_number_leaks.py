"""No number outside ciphertext.

A full scenario runs through the CLI (put in several formats, bind, reveal with
a reason that quotes the number, erase), with DEBUG logs written to a file.
Then the SQL database (pg_dump, or the SQLite files byte for byte), every
Redis key and value, the log file and every captured output except the
reveal's own stdout are searched for the numbers in every written form.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from config import load_settings
from maskline.wiring import build_services
from tests.conftest import add_relay_numbers
from tests.e2e.conftest import COMMAND_TIMEOUT, Cli, embedded_redis

US_FORMS = [
    "+14155550132",
    "14155550132",
    "4155550132",
    "(415) 555-0132",
    "415-555-0132",
    "415 555 0132",
    "415.555.0132",
    "555-0132",
]
CN_FORMS = [
    "+8613800138000",
    "8613800138000",
    "13800138000",
    "138 0013 8000",
    "138-0013-8000",
]
FORMS = US_FORMS + CN_FORMS
RELAY_NUMBER = "+14155550100"


def _variants(form: str) -> set[bytes]:
    """The bytes ``form`` would leave in a dump: as text, and hex (a bytea in pg_dump)."""
    raw = form.encode()
    return {raw, raw.hex().encode(), raw.hex().upper().encode(), form.encode("utf-16-le")}


def find_leaks(name: str, blob: bytes | str, forms: Iterable[str] = FORMS) -> list[str]:
    """Where any written form of the numbers occurs in ``blob``.

    Bytes are searched as they are and as latin-1 text, so a binary dump (a
    SQLite page, a Redis DUMP payload) is searched as thoroughly as a text one.
    """
    data = blob.encode() if isinstance(blob, str) else blob
    texts = [data, data.decode("latin-1").encode("utf-8")]
    found = []
    for form in forms:
        if any(variant in text for variant in _variants(form) for text in texts):
            found.append(f"{form!r} in {name}")
    return found


@pytest.mark.parametrize(
    "blob",
    [
        b"x +14155550132 y",
        b"\x00\xff415-555-0132\x01",
        "reason: 138 0013 8000".encode("latin-1"),
        b"\\x" + b"4155550132".hex().encode(),
        "4155550132".encode("utf-16-le"),
    ],
)
def test_the_search_finds_a_planted_number(blob: bytes) -> None:
    assert find_leaks("planted", blob)


def test_the_search_ignores_other_numbers() -> None:
    assert find_leaks("clean", b"order 123456 at 2026-11-24 12:00:00 token pn_abc +14155550100") == []


# -- dumping ---------------------------------------------------------------------


def _pg_dump_binary() -> str:
    candidate = Path("/usr/lib/postgresql/15/bin/pg_dump")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("pg_dump")
    assert found, "pg_dump is needed to dump the PostgreSQL test database"
    return found


def dump_database(database_url: str, instance_path: Path) -> dict[str, bytes]:
    if database_url.startswith("postgresql"):
        result = subprocess.run(
            [_pg_dump_binary(), "--no-owner", "--dbname", database_url],
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
            check=True,
        )
        return {"pg_dump": result.stdout}
    files = sorted(instance_path.glob("maskline.sqlite3*"))  # the database, -wal and -shm
    assert files
    return {f.name: f.read_bytes() for f in files}


def dump_redis(client: Any) -> dict[str, bytes]:
    """Every key, and every value read by type (and DUMPed where the server can)."""
    dumped: dict[str, bytes] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        parts: list[bytes] = [key]
        if kind == "string":
            parts.append(client.get(key) or b"")
        elif kind == "hash":
            for field, value in client.hgetall(key).items():
                parts += [field, value]
        elif kind == "list":
            parts += client.lrange(key, 0, -1)
        elif kind == "set":
            parts += list(client.smembers(key))
        elif kind == "zset":
            parts += [m + b" " + str(s).encode() for m, s in client.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            parts += [repr(entry).encode() for entry in client.xrange(key)]
        with contextlib.suppress(redis.exceptions.ResponseError):
            parts.append(client.dump(key) or b"")
        dumped[f"redis {key!r} ({kind})"] = b"\n".join(parts)
    return dumped


# -- the scenario ------------------------------------------------------------------


@pytest.fixture
def redis_url(cli: Cli) -> Iterator[str]:
    """The Redis the commands use: the test Redis, or the embedded one of the instance."""
    if cli.redis_url:
        yield cli.redis_url
        return
    with embedded_redis(cli.instance_path) as port:
        yield f"redis://127.0.0.1:{port}/0"


def _add_relay_number(cli: Cli, redis_url: str) -> None:
    settings = load_settings(
        {
            "env": "testing",
            "instance_path": cli.instance_path,
            "database_url": cli.database_url,
            "redis_url": redis_url,
            "keys_file": cli.instance_path / "keys.json",
        },
        environ={},
    )
    services = build_services(settings)
    try:
        add_relay_numbers(services, RELAY_NUMBER)
    finally:
        services.redis.close()
        services.close()


def test_no_number_in_any_form_in_sql_redis_logs_or_output(cli: Cli, redis_url: str, tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "maskline.log"
    cli.env.update({"MASKLINE_LOG_FILE": str(log_file), "MASKLINE_LOG_LEVEL": "DEBUG"})
    cli.run("init")
    _add_relay_number(cli, redis_url)

    us = cli.out("vault", "put", "+1 415-555-0132")
    assert cli.out("vault", "put", "(415) 555-0132") == us
    cn = cli.out("vault", "put", "138 0013 8000", "--region", "CN")
    assert cli.out("vault", "put", "+86 138-0013-8000") == cn
    cli.run("vault", "put", "+1 415 555 01329", ok=False)  # invalid: must not be echoed
    cli.run(
        "bind",
        "--order",
        "order-1001",
        "--mode",
        "axb",
        "--party",
        "buyer=+1 (415) 555-0132",
        "--party",
        "merchant=+86 138 0013 8000",
    )
    revealed = cli.run(
        "vault",
        "reveal",
        us,
        "--actor",
        "alice",
        "--reason",
        "buyer at +1 (415) 555-0132 asked for a callback",
    )
    cli.run("vault", "reveal", cn, "--actor", "bob", "--reason", "merchant 13800138000 disputes order 1001")
    cli.run("vault", "erase", us, "--actor", "dpo", "--reason", "erasure request from 415-555-0132")
    cli.run("routes", "rebuild")
    # 4 puts, the bind, 2 reveals, the erase (which ends the binding as maskline's own doing).
    assert cli.out("audit", "verify") == "OK 8 records"

    assert revealed.stdout.strip() == "+14155550132"  # the one place it may appear
    dumps: dict[str, bytes] = {}
    dumps.update(dump_database(cli.database_url, cli.instance_path))
    client = redis.Redis.from_url(redis_url)
    try:
        dumps.update(dump_redis(client))
    finally:
        client.close()
    dumps["log file"] = log_file.read_bytes()
    for command, stdout, stderr in cli.outputs:
        if not command.startswith("vault reveal"):
            dumps[f"stdout of {command}"] = stdout.encode()
        dumps[f"stderr of {command}"] = stderr.encode()

    # The dumps hold what they should, so that finding nothing means something.
    assert any(us.encode() in blob for name, blob in dumps.items() if "sqlite3" in name or name == "pg_dump")
    assert any(name.startswith("redis ") for name in dumps)
    assert b"DEBUG" in dumps["log file"]
    assert b"revealed by alice" in dumps["log file"]
    assert [leak for name, blob in dumps.items() for leak in find_leaks(name, blob)] == []
