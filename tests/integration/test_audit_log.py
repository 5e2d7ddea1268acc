"""The audit log over a real database: append, verify, and tampering done in raw SQL."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import text

from maskline.audit.interfaces import AuditEntry, VerifyResult
from maskline.redaction import PHONE_PLACEHOLDER
from maskline.wiring import Services

ROWS = 5


def _append(services: Services, count: int = ROWS) -> None:
    with services.db.session() as session:
        for i in range(1, count + 1):
            services.audit.append(
                session,
                AuditEntry(
                    actor=f"actor-{i}",
                    action="vault.reveal",
                    subject=f"pn_subject{i}",
                    reason=f"ticket {i}",
                    data={"n": i},
                ),
            )


def _verify(services: Services) -> VerifyResult:
    with services.db.session() as session:
        return services.audit.verify(session)


def _sql(services: Services, statement: str, **params: object) -> None:
    with services.db.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_an_empty_log_verifies(services: Services) -> None:
    result = _verify(services)

    assert (result.ok, result.records, result.summary()) == (True, 0, "OK 0 records")


def test_an_intact_chain_verifies(services: Services) -> None:
    _append(services)

    result = _verify(services)

    assert result.ok
    assert result.summary() == f"OK {ROWS} records"


def test_records_chain_onto_each_other(services: Services) -> None:
    _append(services, 3)

    with services.db.engine.connect() as conn:
        rows = conn.execute(text("SELECT seq, prev_hash, hash FROM audit_log ORDER BY seq")).all()

    assert [r.seq for r in rows] == [1, 2, 3]
    assert rows[0].prev_hash == "0" * 64
    assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]


def test_time_comes_from_the_clock_and_survives_the_round_trip(services: Services) -> None:
    _append(services, 1)

    result = _verify(services)

    assert result.last_at == services.clock()


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("actor", "someone-else"),
        ("action", "vault.erase"),
        ("subject", "pn_other"),
        ("reason", "nothing to see"),
        ("data", '{"n":99}'),
        ("prev_hash", "f" * 64),
        ("hash", "e" * 64),
    ],
)
@pytest.mark.parametrize("seq", [1, 3, ROWS])
def test_editing_any_field_of_any_row_is_detected(
    services: Services, column: str, value: str, seq: int
) -> None:
    _append(services)
    _sql(services, f"UPDATE audit_log SET {column} = :value WHERE seq = :seq", value=value, seq=seq)  # noqa: S608

    result = _verify(services)

    assert not result.ok
    assert result.first_bad_seq == seq
    assert result.summary().startswith(f"BROKEN at record {seq}: ")


@pytest.mark.parametrize("seq", [1, 3, ROWS])
def test_editing_the_time_of_any_row_is_detected(services: Services, seq: int) -> None:
    _append(services)
    shift = {
        "postgresql": "UPDATE audit_log SET at = at + interval '1 second' WHERE seq = :seq",
        "sqlite": "UPDATE audit_log SET at = datetime(at, '+1 second') WHERE seq = :seq",
    }[services.db.dialect]
    _sql(services, shift, seq=seq)

    result = _verify(services)

    assert (result.ok, result.first_bad_seq) == (False, seq)


@pytest.mark.parametrize("seq", [1, 2, 3, ROWS - 1])
def test_deleting_a_row_is_detected_at_the_next_one(services: Services, seq: int) -> None:
    _append(services)
    _sql(services, "DELETE FROM audit_log WHERE seq = :seq", seq=seq)

    result = _verify(services)

    assert (result.ok, result.first_bad_seq, result.records) == (False, seq + 1, seq - 1)
    assert f"expected record {seq}" in result.summary()


@pytest.mark.parametrize(("a", "b"), [(1, 2), (2, 4), (1, ROWS), (ROWS - 1, ROWS)])
def test_swapping_two_rows_seq_is_detected_at_the_first(services: Services, a: int, b: int) -> None:
    _append(services)
    _sql(services, "UPDATE audit_log SET seq = -1 WHERE seq = :a", a=a)
    _sql(services, "UPDATE audit_log SET seq = :a WHERE seq = :b", a=a, b=b)
    _sql(services, "UPDATE audit_log SET seq = :b WHERE seq = -1", b=b)

    result = _verify(services)

    assert (result.ok, result.first_bad_seq) == (False, a)


def test_renumbering_a_row_is_detected(services: Services) -> None:
    _append(services)
    _sql(services, "UPDATE audit_log SET seq = 99 WHERE seq = 3")

    result = _verify(services)

    assert (result.ok, result.first_bad_seq) == (False, 4)


def test_a_rehashed_row_still_breaks_the_next_link(services: Services) -> None:
    """An insider who edits a row and recomputes its hash breaks its successor."""
    from maskline.audit.chain import canonical_record, chain_hash

    _append(services)
    with services.db.engine.connect() as conn:
        prev = conn.execute(text("SELECT hash FROM audit_log WHERE seq = 2")).scalar_one()
    forged = chain_hash(
        prev,
        canonical_record(
            seq=3,
            at=services.clock(),
            actor="actor-3",
            action="vault.reveal",
            subject="pn_subject3",
            reason="routine check",
            data='{"n":3}',
        ),
    )
    _sql(services, "UPDATE audit_log SET reason = 'routine check', hash = :h WHERE seq = 3", h=forged)

    result = _verify(services)

    assert (result.ok, result.first_bad_seq) == (False, 4)


@pytest.mark.parametrize(
    "reason",
    [
        "customer +1 415 555 0132 asked",
        "customer (415) 555-0132 asked",
        "customer 4155550132 asked",
        "customer 138 0013 8000 asked",
    ],
)
def test_reasons_are_redacted_before_they_are_stored(services: Services, reason: str) -> None:
    with services.db.session() as session:
        services.audit.append(
            session, AuditEntry(actor="a", action="vault.reveal", subject="pn_x", reason=reason)
        )

    with services.db.engine.connect() as conn:
        stored = conn.execute(text("SELECT reason FROM audit_log")).scalar_one()

    assert stored == f"customer {PHONE_PLACEHOLDER} asked"
    assert _verify(services).ok


def test_a_rolled_back_action_leaves_no_record(services: Services) -> None:
    with pytest.raises(RuntimeError), services.db.session() as session:
        services.audit.append(session, AuditEntry(actor="a", action="x", subject="s"))
        raise RuntimeError("the action failed")

    assert _verify(services).records == 0


def test_concurrent_appends_make_one_unforked_chain(services: Services) -> None:
    threads, per_thread = 8, 5
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                with services.db.session() as session:
                    services.audit.append(
                        session, AuditEntry(actor=f"worker-{worker}", action="test.append", subject=f"s{i}")
                    )
        except BaseException as exc:  # reported below, with the thread's error
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()

    assert errors == []
    result = _verify(services)
    assert result.summary() == f"OK {threads * per_thread} records"
    with services.db.engine.connect() as conn:
        prev_hashes = conn.execute(text("SELECT prev_hash FROM audit_log")).scalars().all()
    assert len(set(prev_hashes)) == threads * per_thread  # no two records share a parent


def test_verify_reads_time_as_utc(services: Services) -> None:
    """Stored times come back aware and equal to what was appended."""
    at = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    with services.db.session() as session:
        services.audit.append(session, AuditEntry(actor="a", action="x", subject="s"), at=at)

    result = _verify(services)

    assert result.ok
    assert result.last_at == at
    assert result.last_at is not None and result.last_at.utcoffset() == dt.timedelta(0)
