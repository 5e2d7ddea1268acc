"""Concurrent allocations: Redis Lua claims never double-assign a party or an extension."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from maskline.numbers.interfaces import BindRequest, NumbersError
from maskline.numbers.models import Binding
from maskline.wiring import Services
from tests.conftest import add_relay_numbers

MERCHANT = "+12125550143"


def relay(i: int) -> str:
    return f"+1415555{1000 + i:04d}"


def buyer(i: int) -> str:
    return f"+1312555{1000 + i:04d}"


def test_200_concurrent_binds_of_one_merchant_never_share_a_number(services: Services, numbers: Any) -> None:
    add_relay_numbers(services, *(relay(i) for i in range(210)))

    def bind(i: int) -> str | None:
        request = BindRequest(
            order_id=f"o-{i}", mode="axb", parties={"buyer": buyer(i), "merchant": MERCHANT}
        )
        try:
            return str(numbers.bindings.bind(request).relay_number)
        except NumbersError:
            return None

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(bind, range(200)))
    placed = [r for r in results if r is not None]
    assert len(placed) == 200
    assert max(Counter(placed).values()) == 1
    with services.db.session() as session:
        rows = session.query(Binding.relay_number).all()
    assert len(rows) == 200 and len({r[0] for r in rows}) == 200


def test_concurrent_axe_binds_on_one_number_get_distinct_extensions(services: Services, numbers: Any) -> None:
    add_relay_numbers(services, relay(0))
    numbers.bindings.policy = type(numbers.bindings.policy)(extension_digits=2)

    def bind(i: int) -> str | None:
        request = BindRequest(order_id=f"o-{i}", mode="axe", parties={"buyer": buyer(i)}, allow="any")
        try:
            return numbers.bindings.bind(request).extension
        except NumbersError:
            return None

    with ThreadPoolExecutor(max_workers=16) as pool:
        extensions = [e for e in pool.map(bind, range(60)) if e is not None]
    assert len(extensions) == len(set(extensions)) > 0
