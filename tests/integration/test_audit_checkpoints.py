"""Signed checkpoints over a real database: the attacks the chain alone misses.

A database superuser can edit a record and recompute every hash after it,
or delete the newest records: the chain still verifies. Checked against the
signed checkpoints, neither does; and forging a checkpoint needs the key.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select, text

from config import SettingsError, with_overrides
from maskline.audit import checkpoints as cp
from maskline.audit.chain import GENESIS_HASH, chain_hash
from maskline.audit.interfaces import AuditEntry, CheckpointError
from maskline.audit.models import AuditRecord
from maskline.audit.services import canonical_of
from maskline.clock import FixedClock
from maskline.wiring import Services
from tests.receiver import receiving

ROWS = 6


def append(services: Services, count: int = ROWS, *, start: int = 1) -> None:
    with services.db.session() as session:
        for i in range(start, start + count):
            services.audit.append(
                session, AuditEntry(actor=f"admin:a{i}", action="test.action", subject=f"s{i}", data={"n": i})
            )


def sql(services: Services, statement: str, **params: object) -> None:
    with services.db.engine.begin() as conn:
        conn.execute(text(statement), params)


def recompute(services: Services, *, edit_seq: int | None = None) -> None:
    """What a superuser without the signing key can do: edit, then rehash every record."""
    with services.db.session() as session:
        prev = GENESIS_HASH
        for row in session.scalars(select(AuditRecord).order_by(AuditRecord.seq)):
            if row.seq == edit_seq:
                row.reason = "nothing happened here"
            row.prev_hash = prev
            row.hash = chain_hash(prev, canonical_of(row))
            prev = row.hash


@pytest.fixture
def key(tmp_path: Path) -> cp.SigningKey:
    return cp.write_new_key_file(tmp_path / "audit-signing.pem")


@pytest.fixture
def checkpoint_file(tmp_path: Path) -> Path:
    return tmp_path / "checkpoints.jsonl"


def checkpointer(services: Services, key: cp.SigningKey, path: Path) -> cp.Checkpointer:
    return cp.Checkpointer(
        db=services.db,
        audit=services.audit,
        key=key,
        destinations=[cp.FileDestination(path)],
        interval=dt.timedelta(hours=1),
        clock=services.clock,
    )


def verify(services: Services, path: Path, *keys: cp.PublicKey) -> cp.CheckpointedResult:
    with services.db.session() as session:
        return cp.verify_with_checkpoints(session, services.audit, cp.read_checkpoints(path), keys)


def plain_verify(services: Services) -> bool:
    with services.db.session() as session:
        return services.audit.verify(session).ok


def test_a_checkpoint_signs_the_head_and_is_appended_to_the_file(
    services: Services, key: cp.SigningKey, checkpoint_file: Path
) -> None:
    append(services)

    report = checkpointer(services, key, checkpoint_file).checkpoint()

    lines = checkpoint_file.read_text().splitlines()
    assert len(lines) == 1 and report.sent == ["file"]
    signed = cp.Checkpoint.from_json(json.loads(lines[0]))
    with services.db.engine.connect() as conn:
        head = conn.execute(text("SELECT hash FROM audit_log WHERE seq = :s"), {"s": ROWS}).scalar_one()
    assert (signed.seq, signed.records, signed.hash) == (ROWS, ROWS, head)
    assert (signed.at, signed.key_id) == (services.clock(), key.public.key_id)
    assert key.public.verifies(signed)


def test_the_chain_agrees_with_its_checkpoints_and_may_grow_past_them(
    services: Services, key: cp.SigningKey, checkpoint_file: Path, clock: FixedClock
) -> None:
    signer = checkpointer(services, key, checkpoint_file)
    signer.checkpoint()  # the empty chain
    append(services, 3)
    signer.checkpoint()
    append(services, 2, start=4)

    result = verify(services, checkpoint_file, key.public)

    assert result.ok, result.summary()
    assert result.checkpoints == 2 and result.latest is not None and result.latest.seq == 3
    assert result.summary().startswith(
        "OK 5 records; 2 signed checkpoints agree, the latest covers 3 records"
    )
    assert result.summary().endswith("; 2 records since")


def edit_a_row(services: Services) -> None:
    sql(services, "UPDATE audit_log SET actor = 'admin:nobody' WHERE seq = 2")


def recompute_after_an_edit(services: Services) -> None:
    recompute(services, edit_seq=2)


def delete_the_newest_rows(services: Services) -> None:
    # The chain's head row counts them: verify alone sees them gone.
    sql(services, "DELETE FROM audit_log WHERE seq > 3")


def delete_the_newest_rows_and_rewind_the_head(services: Services) -> None:
    # A thorough forger also rewinds the head: only the checkpoints see it.
    sql(services, "DELETE FROM audit_log WHERE seq > 3")
    sql(
        services,
        "UPDATE audit_head SET seq = 3, hash = (SELECT hash FROM audit_log WHERE seq = 3), "
        "prev_hash = (SELECT prev_hash FROM audit_log WHERE seq = 3)",
    )


def delete_every_row(services: Services) -> None:
    sql(services, "DELETE FROM audit_log")
    sql(services, "DELETE FROM audit_head")


@pytest.mark.parametrize(
    ("attack", "chain_alone_verifies", "first_bad", "words"),
    [
        (edit_a_row, False, 2, "edited record"),
        (recompute_after_an_edit, True, ROWS, "the chain was recomputed"),
        (delete_the_newest_rows, False, 4, "the newest records were deleted"),
        (delete_the_newest_rows_and_rewind_the_head, True, 4, "the newest records were deleted"),
        (delete_every_row, True, 1, "the newest records were deleted"),
    ],
)
def test_tampering_after_a_checkpoint_is_detected(
    services: Services,
    key: cp.SigningKey,
    checkpoint_file: Path,
    attack: Callable[[Services], None],
    chain_alone_verifies: bool,
    first_bad: int,
    words: str,
) -> None:
    append(services)
    checkpointer(services, key, checkpoint_file).checkpoint()

    attack(services)

    assert plain_verify(services) is chain_alone_verifies
    result = verify(services, checkpoint_file, key.public)
    assert not result.ok
    assert result.chain.first_bad_seq == first_bad
    assert words in result.summary()


def test_a_recomputed_chain_differs_at_the_first_checkpoint_after_the_edit(
    services: Services, key: cp.SigningKey, checkpoint_file: Path
) -> None:
    """Every checkpoint pins its record, so the damage is placed, not only noticed at the head."""
    signer = checkpointer(services, key, checkpoint_file)
    for start in (1, 3, 5):
        append(services, 2, start=start)
        signer.checkpoint()
    recompute(services, edit_seq=3)
    assert plain_verify(services)

    result = verify(services, checkpoint_file, key.public)

    assert (result.ok, result.chain.first_bad_seq) == (False, 4)


def test_a_checkpoint_forged_with_another_key_is_refused(
    services: Services, key: cp.SigningKey, checkpoint_file: Path, tmp_path: Path
) -> None:
    append(services)
    checkpointer(services, key, checkpoint_file).checkpoint()
    recompute(services, edit_seq=2)
    # The superuser signs the recomputed head with a key of their own.
    checkpointer(services, cp.SigningKey.generate(), checkpoint_file).checkpoint()

    result = verify(services, checkpoint_file, key.public)

    assert not result.ok
    assert "line 2 is signed by key" in result.summary()


@pytest.mark.parametrize("field", ["hash", "seq", "at"])
def test_an_edited_checkpoint_line_fails_its_signature(
    services: Services, key: cp.SigningKey, checkpoint_file: Path, field: str
) -> None:
    append(services)
    checkpointer(services, key, checkpoint_file).checkpoint()
    recompute(services, edit_seq=2)
    line = json.loads(checkpoint_file.read_text())
    with services.db.engine.connect() as conn:
        new_head = conn.execute(text("SELECT hash FROM audit_log WHERE seq = :s"), {"s": ROWS}).scalar_one()
    line[field] = {"hash": new_head, "seq": ROWS - 1, "at": "2027-01-01T00:00:00.000000Z"}[field]
    checkpoint_file.write_text(json.dumps(line) + "\n")

    result = verify(services, checkpoint_file, key.public)

    assert (result.ok, result.problem) == (False, "checkpoints line 1: the signature does not verify")


def test_verifying_needs_only_the_public_key(
    services: Services, key: cp.SigningKey, checkpoint_file: Path
) -> None:
    append(services)
    checkpointer(services, key, checkpoint_file).checkpoint()

    public = cp.parse_public_key(key.public.text)

    assert verify(services, checkpoint_file, public).ok
    assert not verify(services, checkpoint_file, cp.SigningKey.generate().public).ok


def test_a_rotated_key_is_verified_with_both_public_keys(
    services: Services, key: cp.SigningKey, checkpoint_file: Path
) -> None:
    append(services, 2)
    checkpointer(services, key, checkpoint_file).checkpoint()
    new_key = cp.SigningKey.generate()
    append(services, 2, start=3)
    checkpointer(services, new_key, checkpoint_file).checkpoint()

    assert verify(services, checkpoint_file, key.public, new_key.public).ok
    assert not verify(services, checkpoint_file, new_key.public).ok


def test_an_empty_checkpoint_file_is_a_failure(services: Services, checkpoint_file: Path) -> None:
    checkpoint_file.write_text("\n")

    result = verify(services, checkpoint_file, cp.SigningKey.generate().public)

    assert not result.ok and "no checkpoint" in result.summary()


@pytest.mark.parametrize("fresh", [False, True], ids=["same process", "after a restart"])
@pytest.mark.parametrize("attack", [recompute_after_an_edit, delete_the_newest_rows])
def test_the_worker_never_signs_a_chain_rewritten_since_its_last_checkpoint(
    services: Services,
    key: cp.SigningKey,
    checkpoint_file: Path,
    attack: Callable[[Services], None],
    fresh: bool,
) -> None:
    signer = checkpointer(services, key, checkpoint_file)
    append(services)
    signer.checkpoint()
    attack(services)
    append(services, 1, start=ROWS + 1)
    if fresh:  # a new process finds its base in the file's last line
        signer = checkpointer(services, key, checkpoint_file)

    with pytest.raises(CheckpointError, match="does not verify; nothing signed"):
        signer.checkpoint()

    assert len(checkpoint_file.read_text().splitlines()) == 1
    report = signer.run_due(services.clock() + dt.timedelta(hours=2))
    assert report.signed is None and "nothing signed" in report.summary()


def test_a_checkpoint_is_due_once_per_interval_even_across_restarts(
    services: Services, key: cp.SigningKey, checkpoint_file: Path, clock: FixedClock
) -> None:
    signer = checkpointer(services, key, checkpoint_file)
    assert signer.run_due(clock()).signed is not None
    clock.advance(minutes=59)
    assert signer.run_due(clock()).signed is None
    assert checkpointer(services, key, checkpoint_file).run_due(clock()).signed is None
    clock.advance(minutes=1)
    assert signer.run_due(clock()).signed is not None
    assert len(checkpoint_file.read_text().splitlines()) == 2


def test_checkpoints_are_posted_to_the_url(services: Services, key: cp.SigningKey) -> None:
    append(services, 2)
    with receiving() as receiver:
        url = cp.UrlDestination(receiver.url("/checkpoints?token=s3cret"), send=_post())
        signer = cp.Checkpointer(
            db=services.db,
            audit=services.audit,
            key=key,
            destinations=[url],
            interval=dt.timedelta(hours=1),
            clock=services.clock,
        )
        report = signer.checkpoint()

    assert report.sent == ["url"]
    (request,) = receiver.received
    posted = cp.Checkpoint.from_json(json.loads(request.body))
    assert posted.records == 2 and key.public.verifies(posted)
    assert request.headers["Content-Type"] == "application/json"


def _post() -> cp.Sender:
    import functools

    from maskline.events.delivery import post
    from maskline.outbound import OutboundPolicy

    # The test's receiver listens on loopback, as development allows.
    return functools.partial(post, policy=OutboundPolicy(loopback=True))


def test_a_failing_url_is_reported_without_the_url_and_the_file_still_gets_it(
    services: Services, key: cp.SigningKey, checkpoint_file: Path
) -> None:
    with receiving() as receiver:
        receiver.default = 503
        url = cp.UrlDestination(receiver.url("/checkpoints?token=s3cret"), send=_post())
        signer = cp.Checkpointer(
            db=services.db,
            audit=services.audit,
            key=key,
            destinations=[cp.FileDestination(checkpoint_file), url],
            interval=dt.timedelta(hours=1),
            clock=services.clock,
        )
        report = signer.checkpoint()
        with pytest.raises(CheckpointError, match="HTTP 503") as failed:
            cp.Checkpointer(
                db=services.db,
                audit=services.audit,
                key=key,
                destinations=[url],
                interval=dt.timedelta(hours=1),
                clock=services.clock,
            ).checkpoint()

    assert report.sent == ["file"] and report.errors == ["checkpoint URL answered HTTP 503"]
    assert "s3cret" not in report.summary() and "127.0.0.1" not in str(failed.value)
    assert len(checkpoint_file.read_text().splitlines()) == 1


def test_the_configured_checkpointer_signs_with_the_key_file(
    services: Services, key: cp.SigningKey, checkpoint_file: Path, tmp_path: Path
) -> None:
    settings = with_overrides(
        services.settings,
        audit_signing_key_file=tmp_path / "audit-signing.pem",
        audit_checkpoint_file=checkpoint_file,
    )

    report = cp.build_checkpointer(settings, db=services.db, audit=services.audit).checkpoint()

    assert report.signed is not None and report.signed.key_id == key.public.key_id


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({}, "no audit signing key"),
        ({"audit_signing_key": "x"}, "no audit checkpoint destination"),
        ({"audit_checkpoint_file": Path("/tmp/cp.jsonl"), "audit_signing_key": "junk"}, "not an unencrypted"),
        (
            {"audit_checkpoint_url": "http://checkpoints.example.com/in", "audit_signing_key": "KEY"},
            "MASKLINE_AUDIT_CHECKPOINT_URL",
        ),
    ],
)
def test_an_unusable_configuration_is_refused_by_name(
    services: Services, key: cp.SigningKey, overrides: dict[str, object], message: str
) -> None:
    if overrides.get("audit_signing_key") == "KEY":
        overrides = {**overrides, "audit_signing_key": key.pem().decode()}
    # A URL the outbound guard refuses is refused as the settings load, others when the worker builds.
    with pytest.raises((CheckpointError, SettingsError), match=message):
        settings = with_overrides(services.settings, **overrides)
        cp.build_checkpointer(settings, db=services.db, audit=services.audit)


def test_incremental_verify_starts_after_a_known_record(services: Services) -> None:
    append(services)
    with services.db.session() as session:
        third = session.get(AuditRecord, 3)
        assert third is not None
        base = (3, third.hash)
        full = services.audit.verify(session)
        partial = services.audit.verify(session, after=base)
        wrong = services.audit.verify(session, after=(3, "0" * 64))

    assert (partial.ok, partial.records, partial.last_hash) == (True, ROWS, full.last_hash)
    assert (wrong.ok, wrong.first_bad_seq) == (False, 3)


def test_records_are_chosen_by_time_and_come_in_chain_order(services: Services, clock: FixedClock) -> None:
    start = clock()
    with services.db.session() as session:
        for hours in (0, 1, 2, 3):
            entry = AuditEntry(actor="admin:a", action="test.action", subject=f"h{hours}")
            services.audit.append(session, entry, at=start + dt.timedelta(hours=hours))

    with services.db.session() as session:
        since = [r.subject for r in services.audit.records(session, since=start + dt.timedelta(hours=1))]
        window = [
            r.subject
            for r in services.audit.records(
                session, since=start + dt.timedelta(minutes=30), until=start + dt.timedelta(hours=2)
            )
        ]
        everything = [r.seq for r in services.audit.records(session, batch=2)]

    assert since == ["h1", "h2", "h3"]
    assert window == ["h1"]  # until is not included
    assert everything == [1, 2, 3, 4]
