"""What one bind costs in SQL (the same for any pool size), and how its candidates are ranked."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from maskline.clock import FixedClock
from maskline.numbers.interfaces import BindRequest, InvalidRequest
from maskline.wiring import Services
from tests.conftest import add_relay_numbers

X1, X2, X3 = "+14155550100", "+14155550101", "+14155550102"
BUYER, MERCHANT = "+14155550132", "+12125550143"


def axb(order: str, buyer: str, merchant: str = MERCHANT) -> BindRequest:
    return BindRequest(order_id=order, mode="axb", parties={"buyer": buyer, "merchant": merchant})


@pytest.fixture
def statements(services: Services, numbers: Any) -> Iterator[list[str]]:
    """Every statement sent: through SQLAlchemy, and (PostgreSQL) on the bind
    path's own connection, marked ``bind_sql:``."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        if not statement.startswith(("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE")):
            seen.append(" ".join(statement.split()))

    bind_sql = numbers.bind_sql
    if bind_sql is not None:
        # Observed, not replaced: each call still runs on the server.
        for name in ("rows", "write"):
            real = getattr(bind_sql, name)

            def spy(statement: str, params: Any, _real: Any = real) -> Any:
                seen.append("bind_sql: " + " ".join(statement.split()))
                return _real(statement, params)

            setattr(bind_sql, name, spy)
    event.listen(services.db.engine, "before_cursor_execute", count)
    yield seen
    event.remove(services.db.engine, "before_cursor_execute", count)
    if bind_sql is not None:
        for name in ("rows", "write"):
            delattr(bind_sql, name)


def expected_statements(services: Services) -> int:
    """PostgreSQL: the lookup before the claim and the one write after it
    (maskline.numbers.bind_sql); SQLite: the ORM path's six."""
    return 2 if services.db.dialect == "postgresql" else 6


def test_a_bind_of_new_parties_takes_few_statements(
    services: Services, numbers: Any, statements: list[str]
) -> None:
    add_relay_numbers(services, X1, X2)
    numbers.bindings.bind(axb("o-0", "+14155550170", "+12125550180"))  # reads the load counts
    statements.clear()
    numbers.bindings.bind(axb("o-1", BUYER))
    assert len(statements) == expected_statements(services), statements
    assert not any("GROUP BY" in s or "SAVEPOINT" in s for s in statements)
    if services.db.dialect == "postgresql":
        assert all(s.startswith("bind_sql: ") for s in statements), statements


def test_a_known_party_is_kept_off_the_numbers_it_holds(services: Services, numbers: Any) -> None:
    add_relay_numbers(services, X1, X2)
    first = numbers.bindings.bind(axb("o-1", BUYER))
    second = numbers.bindings.bind(axb("o-2", "+14155550199"))  # the same merchant
    assert {first.relay_number, second.relay_number} == {X1, X2}


def test_a_relay_number_as_party_is_refused_before_anything_is_stored(
    services: Services, numbers: Any
) -> None:
    add_relay_numbers(services, X1)
    add_relay_numbers(services, X2, status="locked")
    with pytest.raises(InvalidRequest, match="relay number"):
        numbers.bindings.bind(axb("o-1", BUYER, merchant=X2))
    with services.db.session() as s:
        assert services.vault.lookup(s, BUYER) is None


def test_binds_spread_over_equally_loaded_numbers(services: Services, numbers: Any) -> None:
    add_relay_numbers(services, X1, X2, X3)
    for i in range(6):
        numbers.bindings.bind(axb(f"o-{i}", f"+1415555017{i}", f"+1212555018{i}"))
    with services.db.session() as s:
        assert numbers.pool.live_counts(s, services.clock()) == {X1: 2, X2: 2, X3: 2}


def test_load_counts_follow_this_process_and_are_read_again_when_old(
    services: Services, numbers: Any, clock: FixedClock
) -> None:
    add_relay_numbers(services, X1, X2)
    # A face's own list of numbers is ranked with these counts (the rest of
    # the pool through the selection sets in Redis).
    view = numbers.bindings.bind(
        BindRequest(
            order_id="o-1",
            mode="axb",
            parties={"buyer": BUYER, "merchant": MERCHANT},
            relay_numbers=frozenset({X1, X2}),
        )
    )
    load = numbers.bindings.load_counts
    with services.db.session() as s:
        assert load.counts(s, clock(), max_age=numbers.bindings.policy.load_max_age) == {view.relay_number: 1}
        numbers.bindings.unbind(view.id)
        assert load.counts(s, clock(), max_age=numbers.bindings.policy.load_max_age)[view.relay_number] == 0
        load.add(X1, 5)  # what another process's binds look like from here
        clock.advance(seconds=2)
        assert load.counts(s, clock(), max_age=numbers.bindings.policy.load_max_age) == {}


def test_a_stale_score_costs_a_full_claim_not_a_failed_bind(
    services: Services, numbers: Any, redis_client: Any
) -> None:
    from maskline.numbers.selection import keys_of
    from maskline.numbers.services import BindingPolicy

    add_relay_numbers(services, X1, X2)
    numbers.bindings.policy = BindingPolicy(cap=1)
    first = numbers.bindings.bind(axb("o-1", BUYER, "+12125550181"))
    other = X2 if first.relay_number == X1 else X1
    # As if the scores were stale: the full number looks empty, the other busier.
    for key in keys_of(first.relay_number):
        redis_client.zadd(key, {first.relay_number: 0}, xx=True)
    for key in keys_of(other):
        redis_client.zadd(key, {other: 0.5}, xx=True)
    second = numbers.bindings.bind(axb("o-2", "+14155550199", "+12125550182"))
    assert second.relay_number == other
    # The full claim corrected the score: the full number is ranked out. (The
    # every-country set is built only under the global policy.)
    country_sets = keys_of(first.relay_number)[:-1]
    assert [redis_client.zscore(key, first.relay_number) for key in country_sets] == [1] * len(country_sets)


@pytest.mark.parametrize("pool_size", [3, 300])
def test_a_bind_reads_the_same_whatever_the_pool_size(
    services: Services, numbers: Any, statements: list[str], pool_size: int
) -> None:
    add_relay_numbers(services, *(f"+1415555{1000 + i:04d}" for i in range(pool_size)))
    numbers.bindings.bind(axb("o-0", "+14155550170", "+12125550180"))  # builds the selection sets
    statements.clear()
    numbers.bindings.bind(axb("o-1", BUYER))
    assert len(statements) == expected_statements(services), statements
    # No statement reads relay numbers but by their primary key.
    assert all(
        "FROM relay_numbers" not in s or "relay_numbers.e164 IN" in s or "e164 = ANY" in s for s in statements
    )
