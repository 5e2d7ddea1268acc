"""The relay-number pool over SQL: add, import, status, load."""

from __future__ import annotations

from typing import Any

import pytest

from maskline.numbers.interfaces import BindRequest, InvalidRequest, PoolError
from maskline.numbers.models import RelayNumber
from maskline.numbers.pool import PoolImportError
from maskline.numbers.routes import route_key
from maskline.wiring import Services


def test_add_normalizes_derives_region_and_registers_routes(
    services: Services, numbers: Any, redis_client: Any
) -> None:
    with services.db.session() as session:
        rows = numbers.pool.add(session, ["(415) 555-0100", "+86 10 6552 9988"], region="US")
    assert [(r.e164, r.country, r.area) for r in rows] == [
        ("+14155550100", "US", "415"),
        ("+861065529988", "CN", "10"),
    ]
    assert redis_client.hexists(route_key("+14155550100"), "g")


@pytest.mark.parametrize(
    ("numbers_in", "message"),
    [
        (["+14155550100", "12"], r"^numbers\[1\]: "),
        (["+14155550100", "+1 415 555 0100"], "listed twice"),
    ],
)
def test_add_is_all_or_nothing(services: Services, numbers: Any, numbers_in: list[str], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message), services.db.session() as session:
        numbers.pool.add(session, numbers_in)
    with services.db.session() as session:
        assert session.query(RelayNumber).count() == 0


def test_import_reports_every_bad_row_by_line_and_applies_none(services: Services, numbers: Any) -> None:
    text = "number,capabilities\n+14155550100,voice\nnot-a-number,voice\n+14155550101,fax\n"
    with pytest.raises(PoolImportError) as err, services.db.session() as session:
        numbers.pool.import_csv(session, text)
    assert [line for line, _ in err.value.problems] == [3, 4]
    with services.db.session() as session:
        assert session.query(RelayNumber).count() == 0


def test_import_applies_good_file(services: Services, numbers: Any) -> None:
    text = 'number,capabilities,status\n+14155550100,voice,active\n+14155550101,"voice,sms",locked\n'
    with services.db.session() as session:
        rows = numbers.pool.import_csv(session, text)
    assert [(r.voice, r.sms, r.status) for r in rows] == [(True, False, "active"), (True, True, "locked")]


def test_list_counts_live_bindings_and_retire_waits_for_them(services: Services, numbers: Any) -> None:
    with services.db.session() as session:
        numbers.pool.add(session, ["+14155550100"])
    view = numbers.bindings.bind(
        BindRequest(order_id="o", mode="axb", parties={"buyer": "+14155550132", "merchant": "+12125550143"})
    )
    with services.db.session() as session:
        assert [e.live_bindings for e in numbers.pool.entries(session, now=services.clock())] == [1]
    with pytest.raises(PoolError, match="1 live binding"), services.db.session() as session:
        numbers.pool.set_status(session, "+14155550100", "retired", now=services.clock())
    numbers.bindings.unbind(view.id)
    with services.db.session() as session:
        assert (
            numbers.pool.set_status(session, "+14155550100", "retired", now=services.clock()).status
            == "retired"
        )


def test_unknown_number_is_a_clear_error(services: Services, numbers: Any) -> None:
    with pytest.raises(PoolError, match="not in the pool"), services.db.session() as session:
        numbers.pool.set_status(session, "+14155550199", "locked", now=services.clock())


def test_retirement_is_final(services: Services, numbers: Any) -> None:
    with services.db.session() as session:
        numbers.pool.add(session, ["+14155550100"])
        numbers.pool.set_status(session, "+14155550100", "retired", now=services.clock())
    with pytest.raises(PoolError, match="final"), services.db.session() as session:
        numbers.pool.set_status(session, "+14155550100", "active", now=services.clock())
