"""The audit tail: deleting the newest records after the last checkpoint.
A reveal view or an admin change is signed within a poll, by the worker,
so deleting it is detected; `audit verify --checkpoints` says how much the
newest checkpoint leaves uncovered."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from config import Settings
from maskline.audit import checkpoints as cp
from maskline.audit.interfaces import AuditEntry
from maskline.clock import FixedClock
from maskline.wiring import Services
from tests.integration.test_audit_checkpoints import checkpointer, sql, verify


def record(services: Services, actor: str, action: str, subject: str = "s") -> None:
    with services.db.session() as session:
        services.audit.append(session, AuditEntry(actor=actor, action=action, subject=subject))


@pytest.fixture
def key(tmp_path: Path) -> cp.SigningKey:
    return cp.write_new_key_file(tmp_path / "audit-signing.pem")


def test_the_default_interval_is_five_minutes(settings: Settings) -> None:
    assert Settings().audit_checkpoint_interval == dt.timedelta(minutes=5)


def test_deleting_a_reveal_view_right_after_it_is_detected(
    services: Services, key: cp.SigningKey, tmp_path: Path, clock: FixedClock
) -> None:
    path = tmp_path / "cp.jsonl"
    signer = checkpointer(services, key, path)
    record(services, "apikey:k1", "binding.created")
    signer.checkpoint()
    record(services, "admin:eve", "reveal.view", "rv_" + "a" * 16)
    clock.advance(seconds=2)  # one poll later, well inside the interval

    report = signer.run_prompted(clock())
    sql(services, "DELETE FROM audit_log WHERE seq = 2")  # the insider covers the view up

    assert report.signed is not None and report.signed.records == 2
    result = verify(services, path, key.public)
    assert not result.ok, result.summary()


@pytest.mark.parametrize(
    ("actor", "action"),
    [
        ("admin:alice", "admin.user.disable"),
        ("admin:alice", "admin.alert.acknowledge"),
        ("cli:root", "pool.unlock_extensions"),
        ("admin:bob", "reveal.approve"),
        ("admin:bob", "vault.erase"),
    ],
)
def test_admin_changes_prompt_a_checkpoint(
    services: Services, key: cp.SigningKey, tmp_path: Path, clock: FixedClock, actor: str, action: str
) -> None:
    signer = checkpointer(services, key, tmp_path / "cp.jsonl")
    signer.checkpoint()
    record(services, actor, action)

    assert signer.run_prompted(clock()).signed is not None


def test_routine_records_wait_for_the_interval_and_one_checkpoint_covers_many(
    services: Services, key: cp.SigningKey, tmp_path: Path, clock: FixedClock
) -> None:
    signer = checkpointer(services, key, tmp_path / "cp.jsonl")
    signer.checkpoint()
    for action in ("binding.created", "binding.unbound"):
        record(services, "apikey:k1", action)
    record(services, "admin:alice", "admin.login")

    assert signer.run_prompted(clock()).signed is None
    for name in ("a", "b", "c"):
        record(services, f"admin:{name}", "admin.user.enable")
    first = signer.run_prompted(clock())
    second = signer.run_prompted(clock())

    assert first.signed is not None and first.signed.records == 6
    assert second.signed is None  # nothing new: never two for one change


def test_verify_says_what_the_newest_checkpoint_leaves_uncovered(
    services: Services, key: cp.SigningKey, tmp_path: Path, clock: FixedClock
) -> None:
    path = tmp_path / "cp.jsonl"
    record(services, "apikey:k1", "binding.created")
    checkpointer(services, key, path).checkpoint()
    clock.advance(minutes=3, seconds=20)
    for _ in range(4):
        record(services, "apikey:k1", "binding.created")

    with services.db.session() as session:
        result = cp.verify_with_checkpoints(
            session, services.audit, cp.read_checkpoints(path), [key.public], now=clock()
        )

    assert (result.uncovered_records, result.uncovered_time) == (4, dt.timedelta(minutes=3, seconds=20))
    assert result.summary().endswith(
        "; uncovered by the newest checkpoint: 4 records and 0:03:20 (deleting those would not be detected)"
    )
