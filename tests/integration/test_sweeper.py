"""The worker's jobs: expiry sweep, tombstone purge, reconcile, vault GC, retention."""

from __future__ import annotations

import datetime as dt
from typing import Any

from maskline.clock import FixedClock
from maskline.numbers.interfaces import BindRequest
from maskline.numbers.models import Binding
from maskline.numbers.routes import Party, epoch, route_key
from maskline.numbers.services import new_binding_id
from maskline.vault.models import VaultEntry
from maskline.vault.services import new_token
from maskline.wiring import Services
from tests.conftest import add_relay_numbers

X = "+14155550100"
BUYER, MERCHANT = "+14155550132", "+12125550143"


def axb(order: str = "o-1", ttl: dt.timedelta = dt.timedelta(hours=1)) -> BindRequest:
    return BindRequest(order_id=order, mode="axb", parties={"buyer": BUYER, "merchant": MERCHANT}, ttl=ttl)


def test_sweep_marks_expired_bindings_and_purge_clears_redis(
    services: Services, numbers: Any, clock: FixedClock, redis_client: Any
) -> None:
    add_relay_numbers(services, X)
    view = numbers.bindings.bind(axb())
    clock.advance(hours=2)
    report = numbers.sweeper.run_once(clock(), orphan_grace=0)
    assert report.expired == 1 and numbers.bindings.get(view.id).status == "expired"
    assert any(len(k) == 12 for k in redis_client.hgetall(route_key(X)))  # tombstones
    clock.advance(hours=24)
    assert numbers.sweeper.run_once(clock(), orphan_grace=0).purged == 1
    assert not any(len(k) == 12 for k in redis_client.hgetall(route_key(X)))


def test_reconcile_restores_sql_rows_without_routes(
    services: Services, numbers: Any, redis_client: Any
) -> None:
    add_relay_numbers(services, X)
    view = numbers.bindings.bind(axb(ttl=dt.timedelta(hours=5)))
    redis_client.delete(route_key(X))
    numbers.routes.register_number(X)  # data present, this binding's routes gone
    report = numbers.sweeper.run_once(services.clock(), orphan_grace=0)
    assert report.restored == 1
    assert numbers.router.resolve(view.relay_number, BUYER).action == "connect"


def test_reconcile_releases_a_claim_with_no_sql_row(
    services: Services, numbers: Any, clock: FixedClock
) -> None:
    add_relay_numbers(services, X)
    ghost = Party(index=b"\x01" * 12, role="buyer", token=new_token())
    other = Party(index=b"\x02" * 12, role="merchant", token=new_token())
    numbers.routes.claim(
        X,
        binding_id=new_binding_id(),
        version=1,
        expires=epoch(clock()) + 3600,
        mode="axb",
        parties=[ghost, other],
        now=epoch(clock()),
        cooldown=60,
        cap=200,
    )
    report = numbers.sweeper.run_once(clock(), orphan_grace=0)
    assert report.orphans_released == 1
    assert not any(len(k) == 12 for k in numbers.routes.fields(X))


def test_vault_gc_collects_unused_entries_after_grace(
    services: Services, numbers: Any, clock: FixedClock
) -> None:
    add_relay_numbers(services, X)
    numbers.bindings.bind(axb())
    with services.db.session() as session:
        services.vault.put(session, "+14155550199")
    clock.advance(hours=2)
    assert numbers.sweeper.run_once(clock(), orphan_grace=0).vault_collected == 1
    with services.db.session() as session:
        assert session.query(VaultEntry).count() == 2  # the binding's two parties stay


def test_retention_erases_parties_long_without_a_binding(
    services: Services, numbers: Any, clock: FixedClock
) -> None:
    add_relay_numbers(services, X)
    view = numbers.bindings.bind(axb())
    numbers.bindings.unbind(view.id)
    clock.advance(days=91)
    report = numbers.sweeper.run_once(clock(), orphan_grace=0)
    assert report.retention_erased == 2
    with services.db.session() as session:
        assert all(e.erased for e in session.query(VaultEntry))
        assert session.get(Binding, view.id) is not None
        assert services.audit.verify(session).ok


def test_reconcile_waits_for_late_commits_only_when_a_claim_has_no_sql_row(
    services: Services, numbers: Any, clock: FixedClock
) -> None:
    add_relay_numbers(services, X)
    waits: list[float] = []
    numbers.sweeper._sleep = waits.append  # the grace period, recorded instead of slept
    view = numbers.bindings.bind(axb())
    numbers.bindings.unbind(view.id)  # a cooling-down tombstone: in Redis, ended in SQL
    numbers.sweeper.run_once(clock(), orphan_grace=5)
    assert waits == []
    numbers.routes.claim(
        X,
        binding_id=new_binding_id(),
        version=1,
        expires=epoch(clock()) + 3600,
        mode="axb",
        parties=[
            Party(index=b"\x03" * 12, role="buyer", token=new_token()),
            Party(index=b"\x04" * 12, role="merchant", token=new_token()),
        ],
        now=epoch(clock()),
        cooldown=60,
        cap=200,
    )
    assert numbers.sweeper.run_once(clock(), orphan_grace=5).orphans_released == 1
    assert waits == [5]
