"""``maskline audit`` as an operator and an auditor run it: keygen, checkpoint,
verify against checkpoints (catching what the chain alone misses), export;
and the admin commands that are audited as ``cli:<login>``."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import re
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select, text

from maskline.audit.chain import GENESIS_HASH, chain_hash
from maskline.audit.models import AuditRecord
from maskline.audit.services import canonical_of
from maskline.db import Database
from tests.e2e.conftest import Cli

BUYER, MERCHANT = "+14155550132", "+12125550143"
RELAYS = ("+14155550100", "+14155550101")
ACTOR = f"cli:{getpass.getuser()}"


def _sql(cli: Cli, statement: str) -> None:
    db = Database(url=cli.database_url)
    try:
        with db.engine.begin() as conn:
            conn.execute(text(statement))
    finally:
        db.dispose()


def _recompute_after_editing(cli: Cli, seq: int) -> None:
    """A superuser's rewrite: edit a record, then recompute every hash (no signing key needed)."""
    db = Database(url=cli.database_url)
    try:
        with db.session() as session:
            prev = GENESIS_HASH
            for row in session.scalars(select(AuditRecord).order_by(AuditRecord.seq)):
                if row.seq == seq:
                    row.actor = "cli:somebody-else"
                row.prev_hash = prev
                row.hash = chain_hash(prev, canonical_of(row))
                prev = row.hash
    finally:
        db.dispose()


def _export(cli: Cli, *args: str) -> list[dict[str, object]]:
    out = cli.out("audit", "export", "--since", "1h", *args)
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture
def signing(initialised: Cli, tmp_path: Path) -> tuple[Cli, str, Path]:
    """The CLI with a signing key and a checkpoint file configured; (cli, public key, file)."""
    key_file, checkpoints = tmp_path / "audit-signing.pem", tmp_path / "checkpoints.jsonl"
    public = initialised.out("audit", "keygen", "--out", str(key_file))
    initialised.env.update(
        MASKLINE_AUDIT_SIGNING_KEY_FILE=str(key_file), MASKLINE_AUDIT_CHECKPOINT_FILE=str(checkpoints)
    )
    return initialised, public, checkpoints


def test_keygen_prints_the_public_key_alone_and_keeps_the_private_key_0600(
    initialised: Cli, tmp_path: Path
) -> None:
    key_file = tmp_path / "audit-signing.pem"

    result = initialised.run("audit", "keygen", "--out", str(key_file))

    assert result.stdout.startswith("ed25519:") and result.stdout.count("\n") == 1
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "PRIVATE" not in result.stdout + result.stderr
    before = key_file.read_bytes()
    again = initialised.run("audit", "keygen", "--out", str(key_file), ok=False)
    assert "never overwritten" in again.stderr and key_file.read_bytes() == before


def test_checkpoint_then_verify_against_it(signing: tuple[Cli, str, Path]) -> None:
    cli, public, checkpoints = signing
    token = cli.out("vault", "put", BUYER)
    cli.run("vault", "reveal", token, "--actor", "alice", "--reason", "ticket 1")

    line = json.loads(cli.out("audit", "checkpoint"))
    verified = cli.out("audit", "verify", "--checkpoints", str(checkpoints), "--public-key", public)

    assert (line["seq"], line["records"]) == (2, 2)
    assert json.loads(checkpoints.read_text()) == line
    assert verified.startswith("OK 2 records; 1 signed checkpoints agree")
    assert re.search(r"uncovered by the newest checkpoint: 0 records and \d+:\d\d:\d\d", verified), verified
    # Without --public-key the configured key's public half is used.
    assert cli.out("audit", "verify", "--checkpoints", str(checkpoints)).startswith("OK 2 records")


def _edit(cli: Cli) -> None:
    _sql(cli, "UPDATE audit_log SET actor = 'cli:somebody-else' WHERE seq = 2")


def _recompute(cli: Cli) -> None:
    _recompute_after_editing(cli, 2)


def _truncate(cli: Cli) -> None:
    # The chain's head still counts the deleted records: verify alone sees it.
    _sql(cli, "DELETE FROM audit_log WHERE seq > 2")


def _truncate_and_rewind(cli: Cli) -> None:
    # A forger who also rewinds the head: only the checkpoints see it.
    _sql(cli, "DELETE FROM audit_log WHERE seq > 2")
    _sql(
        cli,
        "UPDATE audit_head SET seq = 2, hash = (SELECT hash FROM audit_log WHERE seq = 2), "
        "prev_hash = (SELECT prev_hash FROM audit_log WHERE seq = 2)",
    )


@pytest.mark.parametrize(
    ("tamper", "chain_alone", "expected"),
    [
        (_edit, "BROKEN at record 2: ", "BROKEN at record 2: "),
        (_recompute, "OK 4 records", "the chain was recomputed"),
        (_truncate, "BROKEN at record 3: ", "the newest records were deleted"),
        (_truncate_and_rewind, "OK 2 records", "the newest records were deleted"),
    ],
    ids=["edited row", "recomputed chain", "newest rows deleted", "newest rows deleted, head rewound"],
)
def test_verify_with_checkpoints_catches_tampering(
    signing: tuple[Cli, str, Path], tamper: Callable[[Cli], None], chain_alone: str, expected: str
) -> None:
    cli, public, checkpoints = signing
    token = cli.out("vault", "put", BUYER)
    for reason in ("ticket 1", "ticket 2", "ticket 3"):
        cli.run("vault", "reveal", token, "--actor", "alice", "--reason", reason)
    cli.run("audit", "checkpoint")

    tamper(cli)

    assert cli.run("audit", "verify", ok=None).stdout.startswith(chain_alone)
    result = cli.run("audit", "verify", "--checkpoints", str(checkpoints), "--public-key", public, ok=False)
    assert result.returncode == 1 and expected in result.stdout
    assert "Traceback" not in result.stderr


def test_checkpoint_without_a_signing_key_fails_naming_the_setting(initialised: Cli) -> None:
    result = initialised.run("audit", "checkpoint", ok=False)

    assert "MASKLINE_AUDIT_SIGNING_KEY_FILE" in result.stderr and "Traceback" not in result.stderr


def test_the_worker_signs_a_checkpoint_and_says_when_it_cannot(
    initialised: Cli, signing: tuple[Cli, str, Path]
) -> None:
    cli, _public, checkpoints = signing

    signed = cli.run("worker", "--once")
    unsigned = cli.run(
        "worker", "--once", env={"MASKLINE_AUDIT_SIGNING_KEY_FILE": "", "MASKLINE_AUDIT_CHECKPOINT_FILE": ""}
    )

    assert "audit checkpoint: 0 records signed" in signed.stdout
    assert len(checkpoints.read_text().splitlines()) == 1
    assert "audit checkpoints are off" in unsigned.stderr


def test_export_writes_json_lines_since_a_time(signing: tuple[Cli, str, Path], tmp_path: Path) -> None:
    cli, _public, _checkpoints = signing
    token = cli.out("vault", "put", BUYER)
    cli.run("vault", "reveal", token, "--actor", "alice", "--reason", "ticket 1")
    out = tmp_path / "export.jsonl"
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()

    rows = _export(cli)
    cli.run("audit", "export", "--since", "1h", "--out", str(out))

    assert [r["action"] for r in rows] == ["vault.put", "vault.reveal"]
    assert list(rows[1]) == ["seq", "at", "actor", "action", "subject", "reason", "data", "prev_hash", "hash"]
    assert rows[1]["prev_hash"] == rows[0]["hash"] and rows[1]["subject"] == token
    assert [json.loads(line) for line in out.read_text().splitlines()] == rows
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert cli.out("audit", "export", "--since", future) == ""
    assert cli.out("audit", "export", "--since", "2000-01-01", "--until", "2000-01-02") == ""
    assert cli.run("audit", "export", "--since", "soon", ok=False).returncode == 2


def test_admin_commands_are_in_the_chain_as_the_cli_user(initialised: Cli, tmp_path: Path) -> None:
    cli = initialised
    cli.run("pool", "add", *RELAYS)
    csv = tmp_path / "pool.csv"
    csv.write_text("number\n+14155550102\n+14155550103\n")
    cli.run("pool", "import", str(csv))
    cli.run("pool", "lock", "+14155550103", "--reason", "carrier complaint")
    cli.run("pool", "unlock", "+14155550103")
    cli.run("pool", "retire", "+14155550103")
    binding = json.loads(
        cli.out(
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
    )
    cli.run("bindings", "extend", binding["id"], "--ttl", "96h", "--reason", "order delayed")
    cli.run("unbind", binding["id"], "--reason", "order cancelled")
    key = json.loads(
        cli.out("apikey", "create", "--name", "shop", "--owner", "shop-a", "--scope", "pool:read")
    )
    cli.run("apikey", "revoke", key["id"], "--reason", "key leaked")
    cli.run("owner", "set-events", "shop-a", "--url", "https://hooks.example.com/in?token=t0ken")
    cli.run("owner", "clear-events", "shop-a")
    cli.run("keys", "add")

    rows = _export(cli)

    assert [(r["action"], r["subject"]) for r in rows] == [
        ("pool.added", "pool"),
        ("pool.imported", "pool"),
        ("pool.locked", "+14155550103"),
        ("pool.unlocked", "+14155550103"),
        ("pool.retired", "+14155550103"),
        ("binding.created", binding["id"]),
        ("binding.updated", binding["id"]),
        ("binding.unbound", binding["id"]),
        ("apikey.created", key["id"]),
        ("apikey.revoked", key["id"]),
        ("owner.events_set", "shop-a"),
        ("owner.events_cleared", "shop-a"),
        ("keys.added", "keys:kek"),
    ]
    assert {r["actor"] for r in rows} == {ACTOR}
    reasons = {r["action"]: r["reason"] for r in rows if r["reason"]}
    assert reasons == {
        "pool.locked": "carrier complaint",
        "binding.updated": "order delayed",
        "binding.unbound": "order cancelled",
        "apikey.revoked": "key leaked",
    }
    everything = json.dumps(rows)
    assert "t0ken" not in everything and key["key"] not in everything
    digits = everything.replace("-", "").replace(" ", "")
    assert BUYER[2:] not in digits and MERCHANT[2:] not in digits
    assert cli.out("audit", "verify") == f"OK {len(rows)} records"
