"""``maskline audit``: verify the chain (against signed checkpoints), sign a
checkpoint, make the signing key, export records for a SIEM.

Nothing here prints a private key; ``keygen`` prints the public key only.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import click

from config import SettingsError, parse_duration
from maskline.audit.chain import canonical_time
from maskline.audit.interfaces import AuditError, CheckpointError
from maskline.audit.models import AuditRecord


@contextmanager
def _services() -> Iterator[Any]:
    from maskline.cli import _services as build

    with build() as services:
        try:
            yield services
        except AuditError as exc:
            raise click.ClickException(str(exc)) from None


@click.group("audit")
def audit() -> None:
    """The hash-chained audit log and its signed checkpoints."""


@audit.command("verify")
@click.option(
    "--checkpoints",
    "checkpoints_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="a JSON-lines file of signed checkpoints the chain must agree with",
)
@click.option(
    "--public-key",
    "public_keys",
    multiple=True,
    metavar="KEY",
    help="ed25519:<base64>, or a file holding it; repeat for rotated keys "
    "(default: the public half of the configured signing key)",
)
def audit_verify(checkpoints_file: Path | None, public_keys: tuple[str, ...]) -> None:
    """Walk the chain: `OK <n> records`, or exit 1 naming the first bad record.

    With --checkpoints, also check every checkpoint's signature and that the
    chain still holds the hash each one signed: a chain recomputed after an
    edit, or whose newest records were deleted, fails.
    """
    from maskline.audit import checkpoints as cp

    if checkpoints_file is None:
        if public_keys:
            raise click.UsageError("--public-key is for --checkpoints")
        with _services() as services, services.db.session() as session:
            result = services.audit.verify(session)
        click.echo(result.summary())
        if not result.ok:
            sys.exit(1)
        return
    with _services() as services:
        if public_keys:
            keys = [cp.parse_public_key(value) for value in public_keys]
        else:
            try:
                keys = [cp.signing_key_from(services.settings).public]
            except CheckpointError as exc:
                raise click.ClickException(f"{exc}; or give --public-key") from None
        found = cp.read_checkpoints(checkpoints_file)
        with services.db.session() as session:
            checked = cp.verify_with_checkpoints(
                session, services.audit, found, keys, source=str(checkpoints_file), now=services.clock()
            )
    click.echo(checked.summary())
    if not checked.ok:
        sys.exit(1)


@audit.command("checkpoint")
def audit_checkpoint() -> None:
    """Verify the chain and sign its head now; prints the checkpoint as JSON."""
    from maskline.audit.checkpoints import build_checkpointer

    with _services() as services:
        checkpointer = build_checkpointer(
            services.settings, db=services.db, audit=services.audit, clock=services.clock
        )
        report = checkpointer.checkpoint()
    for error in report.errors:
        click.echo(f"WARNING: {error}", err=True)
    assert report.signed is not None
    click.echo(report.signed.line())


@audit.command("keygen")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="the new key file (mode 0600; never overwritten)",
)
def audit_keygen(out: Path) -> None:
    """Make an Ed25519 checkpoint signing key; prints its public key alone.

    Keep the key away from the database host and the vault key ring; give
    the public key to whoever verifies (`maskline audit verify --public-key`).
    """
    from maskline.audit.checkpoints import write_new_key_file

    try:
        key = write_new_key_file(out)
    except CheckpointError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(key.public.text)
    click.echo(
        f"wrote the signing key to {out} (mode 0600), key id {key.public.key_id}; "
        f"point MASKLINE_AUDIT_SIGNING_KEY_FILE at it",
        err=True,
    )


_DURATION = re.compile(r"^\s*\d+(?:\.\d+)?\s*[smhdw]\s*\Z")


def _parse_time(value: str, option: str, now: dt.datetime) -> dt.datetime:
    """ISO 8601 (a date, or a time; UTC unless it has an offset), or a
    duration back from now with its unit (24h, 7d)."""
    try:
        if _DURATION.match(value):
            return now - parse_duration(option, value)
        when = dt.datetime.fromisoformat(value.strip())
    except (ValueError, SettingsError):
        raise click.BadParameter(
            f"{value!r} is neither an ISO 8601 time (2026-11-24T12:00:00Z) nor a duration (24h)",
            param_hint=option,
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def export_line(row: AuditRecord) -> str:
    """One record for a SIEM. ``data`` as an object; its sorted compact JSON is
    what the hash covers, so a consumer can re-check the chain."""
    return json.dumps(
        {
            "seq": row.seq,
            "at": canonical_time(row.at),
            "actor": row.actor,
            "action": row.action,
            "subject": row.subject,
            "reason": row.reason,
            "data": json.loads(row.data),
            "prev_hash": row.prev_hash,
            "hash": row.hash,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


@contextmanager
def _output(out: Path | None) -> Iterator[IO[str]]:
    if out is None:
        yield sys.stdout
        return
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


@audit.command("export")
@click.option("--since", required=True, help="from this time (ISO 8601, or a duration back: 24h)")
@click.option("--until", default=None, help="up to, not including, this time (default: now)")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="write here (mode 0600) instead of stdout",
)
def audit_export(since: str, until: str | None, out: Path | None) -> None:
    """Records as JSON lines, in chain order, streamed: seq, at, actor, action,
    subject, reason, data, prev_hash, hash."""
    with _services() as services:
        now = services.clock()
        start = _parse_time(since, "--since", now)
        end = _parse_time(until, "--until", now) if until is not None else None
        if end is not None and end <= start:
            raise click.BadParameter("must be later than --since", param_hint="--until")
        count = 0
        with _output(out) as sink, services.db.session() as session:
            for row in services.audit.records(session, since=start, until=end):
                sink.write(export_line(row) + "\n")
                count += 1
    if out is not None:
        click.echo(f"exported {count} records to {out}", err=True)
