"""A bind's rows commit whole or not at all, and its audit records chain without gaps.

On PostgreSQL a bind writes its vault entries, binding, members, outbox event
and audit record in one statement (maskline.numbers.bind_sql); on SQLite
through the ORM in one transaction. These tests hold on both.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from maskline.numbers.interfaces import BindRequest
from maskline.wiring import Services
from tests.conftest import add_relay_numbers

X1, X2 = "+14155550100", "+14155550101"
BUYER, MERCHANT = "+14155550132", "+12125550143"
REFUSED = "cli:refused-by-a-trigger"


def axb(
    order: str, buyer: str = BUYER, merchant: str = MERCHANT, *, actor: str = "cli:tester"
) -> BindRequest:
    return BindRequest(
        order_id=order, mode="axb", parties={"buyer": buyer, "merchant": merchant}, owner="shop", actor=actor
    )


def count(services: Services, table: str) -> int:
    with services.db.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608


def verify(services: Services) -> Any:
    with services.db.session() as session:
        return services.audit.verify(session)


@pytest.fixture
def refusing_audit_log(services: Services) -> Iterator[None]:
    """The database refuses an audit record of actor REFUSED: a failure at the
    last step of the bind, after its vault entries, binding and members."""
    if services.db.dialect == "postgresql":
        create = [
            f"""CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN
                IF NEW.actor = '{REFUSED}' THEN RAISE EXCEPTION 'refused by the test'; END IF;
                RETURN NEW; END $$ LANGUAGE plpgsql""",
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
        ]
        drop = ["DROP TRIGGER refuse_audit ON audit_log", "DROP FUNCTION refuse_audit()"]
    else:
        create = [
            f"""CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log WHEN NEW.actor = '{REFUSED}'
                BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"""
        ]
        drop = ["DROP TRIGGER refuse_audit"]
    with services.db.engine.begin() as conn:
        for statement in create:
            conn.execute(text(statement))
    try:
        yield
    finally:
        with services.db.engine.begin() as conn:
            for statement in drop:
                conn.execute(text(statement))


def test_a_bind_that_fails_at_its_last_step_leaves_nothing_behind(
    services: Services, numbers: Any, refusing_audit_log: None
) -> None:
    add_relay_numbers(services, X1)  # one number: a claim left behind would block the retry
    numbers.bindings.bind(axb("o-0", "+14155550170", "+12125550180"))
    before = {t: count(services, t) for t in ("bindings", "binding_members", "vault_entries", "audit_log")}
    with services.db.engine.connect() as conn:
        head = conn.execute(text("SELECT seq, hash FROM audit_head")).one()

    # PostgreSQL names the trigger's error; the ORM path's append reports any
    # refused insert as an AuditError.
    with pytest.raises(Exception, match=r"refused by the test|could not append to the audit log"):
        numbers.bindings.bind(axb("o-1", actor=REFUSED))

    after = {t: count(services, t) for t in before}
    assert after == before  # no binding, member, vault entry (new numbers) or record
    with services.db.engine.connect() as conn:
        assert conn.execute(text("SELECT seq, hash FROM audit_head")).one() == head
    # The claim was released: the same parties bind on the only number.
    view = numbers.bindings.bind(axb("o-1"))
    assert view.relay_number == X1
    assert verify(services).summary() == "OK 2 records"


def test_concurrent_binds_make_one_gapless_chain(services: Services, numbers: Any) -> None:
    add_relay_numbers(services, X1, X2)
    threads, per_thread = 6, 5
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []
    made: list[str] = []

    def work(worker: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                n = worker * per_thread + i
                view = numbers.bindings.bind(
                    axb(
                        f"o-{n}", f"+1415555{2000 + n:04d}", f"+1212555{3000 + n:04d}", actor=f"cli:w{worker}"
                    )
                )
                made.append(view.id)
        except BaseException as exc:  # reported below, with the thread's error
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()

    assert errors == []
    total = threads * per_thread
    assert verify(services).summary() == f"OK {total} records"
    with services.db.engine.connect() as conn:
        rows = conn.execute(text("SELECT seq, subject, prev_hash FROM audit_log ORDER BY seq")).all()
        head = conn.execute(text("SELECT seq FROM audit_head")).scalar_one()
    assert [r.seq for r in rows] == list(range(1, total + 1)) and head == total
    assert sorted(r.subject for r in rows) == sorted(made)  # every committed bind has its record
    assert len({r.prev_hash for r in rows}) == total  # no two records share a parent


def test_a_deleted_bind_record_is_a_gap_that_verify_names(services: Services, numbers: Any) -> None:
    add_relay_numbers(services, X1, X2)
    for n in range(3):
        numbers.bindings.bind(axb(f"o-{n}", f"+1415555{2000 + n:04d}", f"+1212555{3000 + n:04d}"))
    with services.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 2"))

    result = verify(services)

    assert (result.ok, result.first_bad_seq, result.records) == (False, 3, 1)
    assert "expected record 2, found 3" in result.summary()


def test_deleting_the_newest_bind_records_is_seen_from_the_head(services: Services, numbers: Any) -> None:
    add_relay_numbers(services, X1, X2)
    for n in range(3):
        numbers.bindings.bind(axb(f"o-{n}", f"+1415555{2000 + n:04d}", f"+1212555{3000 + n:04d}"))
    with services.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))

    result = verify(services)

    assert (result.ok, result.first_bad_seq, result.records) == (False, 3, 2)
    assert "the chain's head counts 3 records" in result.summary()
    # The next bind continues after the head: the gap stays visible.
    numbers.bindings.bind(axb("o-9", "+14155552099", "+12125553099"))
    result = verify(services)
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert "expected record 3, found 4" in result.summary()


def test_the_record_chained_in_sql_is_the_one_python_computes(services: Services, numbers: Any) -> None:
    """Reasons and data with quotes, backslashes and non-ASCII text hash alike
    on both sides (PostgreSQL's sha256 in the bind statement, verify in Python)."""
    add_relay_numbers(services, X1, X2)
    request = BindRequest(
        order_id='订单 "7" \\ ü',
        mode="axb",
        parties={"buyer": BUYER, "merchant": MERCHANT},
        owner='shop "ü"',
        actor='cli:"quoted" \\ 名字',
    )
    numbers.bindings.bind(request)
    assert verify(services).summary() == "OK 1 records"


def test_a_bind_racing_for_a_new_number_takes_the_stored_token(services: Services, numbers: Any) -> None:
    """Another bind stores the same new number between this bind's lookup and
    its write: the write stores nothing, and the bind is made again with the
    stored token (the number's one token)."""
    add_relay_numbers(services, X1, X2)
    writer = numbers.bindings._writer
    if services.db.dialect != "postgresql":
        assert writer is None  # SQLite binds through the ORM, in one transaction
        return
    raced: list[str] = []
    real_lookup = writer.lookup

    def lookup_then_race(indexes: Any, found: Any) -> Any:
        result = real_lookup(indexes, found)
        if not raced:
            with services.db.session() as session:
                raced.append(services.vault.put(session, BUYER).token)
        return result

    writer.lookup = lookup_then_race
    try:
        view = numbers.bindings.bind(axb("o-1"))
    finally:
        del writer.lookup

    with services.db.session() as session:
        assert services.vault.lookup(session, BUYER) == raced[0]
        buyer = session.execute(
            text("SELECT token FROM binding_members WHERE binding_id = :id AND role = 'buyer'"),
            {"id": view.id},
        ).scalar_one()
    assert buyer == raced[0]
    assert count(services, "bindings") == 1 and count(services, "vault_entries") == 2
    assert verify(services).summary() == "OK 1 records"
