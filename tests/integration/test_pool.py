"""The pool service's edges: duplicates, CSV rows, live counts, lock / unlock / retire.

test_pool_service.py covers the main paths; these pin down the rest. Binding
rows are written directly where only their status and expiry matter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from maskline.clock import FixedClock
from maskline.numbers.interfaces import BindRequest, InvalidRequest, PoolError, PoolExhausted
from maskline.numbers.models import Binding, RelayNumber
from maskline.numbers.pool import PoolImportError, PoolService
from maskline.wiring import Services

X1, X2, X3 = "+14155550100", "+14155550101", "+14155550102"
BUYER, MERCHANT = "+14155550132", "+12125550143"


class RecordingRegistrar:
    """A fake of our own port: remembers which numbers were registered."""

    def __init__(self) -> None:
        self.registered: list[str] = []
        self.changed: list[str] = []

    def register_number(self, e164: str) -> None:
        self.registered.append(e164)

    def pool_changed(self, e164: str) -> None:
        self.changed.append(e164)


@pytest.fixture
def registrar() -> RecordingRegistrar:
    return RecordingRegistrar()


@pytest.fixture
def pool(services: Services, clock: FixedClock, registrar: RecordingRegistrar) -> PoolService:
    return PoolService(clock=clock, routes=registrar)


@pytest.fixture
def session(services: Services) -> Iterator[Session]:
    with services.db.session() as s:
        yield s


def add_binding(
    session: Session, relay: str, *, now: dt.datetime, status: str = "active", hours: float = 1
) -> None:
    """A binding row on ``relay`` expiring ``hours`` from ``now`` (negative: already past)."""
    n = session.query(Binding).count()
    session.add(
        Binding(
            id=f"b{n:04d}",
            owner="default",
            order_id=f"o-{n}",
            mode="axb",
            relay_number=relay,
            status=status,
            expires_at=now + dt.timedelta(hours=hours),
            created_at=now - dt.timedelta(hours=2),
        )
    )
    session.flush()


def test_add_registers_each_number_and_records_capabilities(
    pool: PoolService, session: Session, registrar: RecordingRegistrar
) -> None:
    rows = pool.add(session, [X1, X2], voice=True, sms=False)
    assert registrar.registered == [X1, X2]
    assert [(r.voice, r.sms, r.status) for r in rows] == [(True, False, "active")] * 2


def test_adding_a_number_already_in_the_pool_names_it_and_adds_nothing(
    pool: PoolService, session: Session, registrar: RecordingRegistrar
) -> None:
    pool.add(session, [X1])
    with pytest.raises(InvalidRequest, match=rf"^numbers\[1\]: \{X1} is already in the pool"):
        pool.add(session, [X2, "+1 (415) 555-0100"])
    assert session.scalars(select(RelayNumber.e164)).all() == [X1]
    assert registrar.registered == [X1]


@pytest.mark.parametrize("raw", ["12", "not a number", "+1 415 555 01", "+999 5550100", ""])
def test_an_invalid_number_is_refused_without_echoing_it(
    pool: PoolService, session: Session, raw: str
) -> None:
    with pytest.raises(InvalidRequest) as err:
        pool.add(session, [X1, raw])
    assert err.value.field == "numbers[1]"
    assert raw.strip() == "" or raw not in str(err.value)
    assert session.query(RelayNumber).count() == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("number,capabilities\n+14155550100,voice,sms\n", [(2, "more fields than the header")]),
        ("number,status\n+14155550100,retired\n", [(2, "status: must be active or locked")]),
        ("number\n+14155550100\n+1 415 555 0100\n", [(3, "also on line 2")]),
        ("number,capabilities\n,voice\n", [(2, "number: must be a phone number")]),
        ("number,capabilities\n+14155550101,\n+14155550102,fax\n", [(3, "capabilities")]),
        ("phone,capabilities\n+14155550100,voice\n", [(1, "'number' column")]),
        ("number\n", [(1, "no rows to import")]),
        ("", [(1, "'number' column")]),
        ("number\n+14155550101\n+1\r415\n", [(3, "unreadable CSV")]),
    ],
)
def test_import_reports_bad_rows_by_line(
    pool: PoolService, session: Session, text: str, expected: list[tuple[int, str]]
) -> None:
    with pytest.raises(PoolImportError) as err:
        pool.import_csv(session, text)
    assert [line for line, _ in err.value.problems] == [line for line, _ in expected]
    for (_, message), (_, fragment) in zip(err.value.problems, expected, strict=True):
        assert fragment in message
    assert session.query(RelayNumber).count() == 0


def test_import_reports_numbers_already_in_the_pool_with_the_other_bad_rows(
    pool: PoolService, session: Session
) -> None:
    pool.add(session, [X1])
    text = f"number\n{X2}\n{X1}\nnope\n"
    with pytest.raises(PoolImportError) as err:
        pool.import_csv(session, text)
    assert err.value.problems[0] == (3, f"number: {X1} is already in the pool")
    assert [line for line, _ in err.value.problems] == [3, 4]
    assert "nope" not in str(err.value)
    assert session.scalars(select(RelayNumber.e164)).all() == [X1]


def test_import_accepts_a_spreadsheet_export(
    pool: PoolService, session: Session, registrar: RecordingRegistrar
) -> None:
    # Byte-order mark, spaced and capitalised header, upper-case status, blank line.
    text = '\ufeffNumber , Capabilities,Status\n+1 415 555 0100,"SMS, voice",LOCKED\n\n+14155550101,voice,\n'
    rows = pool.import_csv(session, text)
    assert [(r.e164, r.voice, r.sms, r.status) for r in rows] == [
        (X1, True, True, "locked"),
        (X2, True, False, "active"),
    ]
    assert registrar.registered == [X1, X2]


def test_list_counts_only_live_bindings_in_one_query(
    pool: PoolService, session: Session, services: Services, clock: FixedClock
) -> None:
    now = clock()
    pool.add(session, [X1, X2, X3])
    add_binding(session, X1, now=now)
    add_binding(session, X1, now=now, hours=48)
    add_binding(session, X1, now=now, hours=-1)  # past its expiry, not yet swept: dead
    add_binding(session, X1, now=now, status="unbound")
    add_binding(session, X2, now=now, status="expired", hours=-5)
    add_binding(session, X3, now=now, hours=0.01)
    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(services.db.engine, "before_cursor_execute", listener)
    try:
        entries = pool.entries(session, now=now)
    finally:
        event.remove(services.db.engine, "before_cursor_execute", listener)
    assert {e.e164: e.live_bindings for e in entries} == {X1: 2, X2: 0, X3: 1}
    assert len(statements) == 2  # the counts (one GROUP BY) and the numbers, however many


def test_list_entry_as_json(pool: PoolService, session: Session, clock: FixedClock) -> None:
    pool.add(session, ["+861065529988"], sms=False)
    (entry,) = pool.entries(session, now=clock())
    assert entry.to_json() == {
        "number": "+861065529988",
        "country": "CN",
        "area": "10",
        "capabilities": ["voice"],
        "status": "active",
        "live_bindings": 0,
    }


def test_a_locked_number_keeps_its_bindings_and_takes_no_new_ones(services: Services, numbers: Any) -> None:
    with services.db.session() as session:
        numbers.pool.add(session, [X1])
    view = numbers.bindings.bind(
        BindRequest(order_id="o-1", mode="axb", parties={"buyer": BUYER, "merchant": MERCHANT})
    )
    with services.db.session() as session:
        numbers.pool.set_status(session, X1, "locked", now=services.clock())
    assert numbers.router.resolve(X1, BUYER).target_role == "merchant"
    # New parties: the pool's lock, not the one-live-binding-per-party rule, is what refuses them.
    other = BindRequest(
        order_id="o-2", mode="axb", parties={"buyer": "+14155550133", "merchant": "+12125550144"}
    )
    with pytest.raises(PoolExhausted):
        numbers.bindings.bind(other)
    with services.db.session() as session:
        numbers.pool.set_status(session, X1, "active", now=services.clock())
    assert numbers.bindings.bind(other).relay_number == X1
    assert numbers.router.resolve(X1, BUYER).binding_id == view.id


def test_retire_is_refused_while_bindings_live_and_names_the_count(
    pool: PoolService, session: Session, clock: FixedClock
) -> None:
    pool.add(session, [X1])
    add_binding(session, X1, now=clock(), hours=1)
    add_binding(session, X1, now=clock(), hours=2)
    with pytest.raises(PoolError, match=rf"^\{X1} still has 2 live binding"):
        pool.set_status(session, X1, "retired", now=clock())
    clock.advance(hours=2)
    # Both have passed their expiry: dead, even before the sweeper marks them.
    assert pool.set_status(session, X1, "retired", now=clock()).status == "retired"


@pytest.mark.parametrize("status", ["active", "locked", "retired"])
def test_an_unknown_number_is_a_pool_error(
    pool: PoolService, session: Session, clock: FixedClock, status: str
) -> None:
    with pytest.raises(PoolError, match=rf"^\{X3} is not in the pool$"):
        pool.set_status(session, "+1 415 555 0102", status, now=clock())


@pytest.mark.parametrize(("status", "expected"), [("active", True), ("locked", True), ("retired", True)])
def test_every_pool_number_is_a_relay_number_whatever_its_status(
    pool: PoolService, session: Session, clock: FixedClock, status: str, expected: bool
) -> None:
    pool.add(session, [X1])
    pool.set_status(session, X1, status, now=clock())
    assert pool.is_relay_number(session, X1) is expected
    assert pool.is_relay_number(session, X2) is False
