"""Geo-matched relay numbers: nearest (area, province, country, never abroad), strict, global.

The choice reads the selection sets in Redis (maskline.numbers.selection);
these tests drive it through binds over real SQL and Redis.
"""

from __future__ import annotations

from typing import Any

import pytest

from maskline.numbers.interfaces import BindRequest, NoNumberInRegion, PoolExhausted
from maskline.numbers.selection import country_key
from maskline.numbers.services import BindingPolicy
from maskline.wiring import Services
from tests.conftest import add_relay_numbers

SF, SAN_JOSE, NEW_YORK = "+14155550100", "+14085550100", "+12125550100"
BEIJING, NANJING = "+861012345678", "+862512345678"  # mainland landlines
CHANGZHOU_MOBILE, BEIJING_MOBILE = "+8613912340003", "+8613800138099"


def bind(numbers: Any, order: str, buyer: str, merchant: str, **kw: Any) -> Any:
    request = BindRequest(order_id=order, mode="axb", parties={"buyer": buyer, "merchant": merchant}, **kw)
    return numbers.bindings.bind(request)


def test_nearest_goes_area_then_province_then_country(services: Services, numbers: Any) -> None:
    add_relay_numbers(services, NEW_YORK, SAN_JOSE, SF)
    assert bind(numbers, "o-1", "+14155550132", "+13125550101").relay_number == SF
    with services.db.session() as session:
        numbers.pool.set_status(session, SF, "locked", now=services.clock())
    assert bind(numbers, "o-2", "+14155550133", "+13125550102").relay_number == SAN_JOSE  # same state
    with services.db.session() as session:
        numbers.pool.set_status(session, SAN_JOSE, "locked", now=services.clock())
    assert bind(numbers, "o-3", "+14155550134", "+13125550103").relay_number == NEW_YORK  # same country


def test_a_mainland_mobile_meets_a_landline_of_its_city_then_province(
    services: Services, numbers: Any
) -> None:
    add_relay_numbers(services, SF, BEIJING, NANJING)
    # A Beijing mobile has no area code; its city is Beijing's.
    assert bind(numbers, "o-1", BEIJING_MOBILE, "+8613912340011").relay_number == BEIJING
    # Changzhou has no relay number; Nanjing is in the same province (Jiangsu).
    assert bind(numbers, "o-2", CHANGZHOU_MOBILE, "+8613912340012").relay_number == NANJING


def test_nearest_never_gives_a_number_of_another_country(services: Services, numbers: Any) -> None:
    add_relay_numbers(services, SF, NEW_YORK)
    with pytest.raises(PoolExhausted, match="country CN") as err:
        bind(numbers, "o-1", CHANGZHOU_MOBILE, "+8613912340011")
    assert not isinstance(err.value, NoNumberInRegion)


def test_nearest_exhausting_its_country_names_it_and_stays_home(services: Services, numbers: Any) -> None:
    add_relay_numbers(services, BEIJING, SF)
    numbers.bindings.policy = BindingPolicy(cap=1)
    assert bind(numbers, "o-1", BEIJING_MOBILE, "+8613912340011").relay_number == BEIJING
    with pytest.raises(PoolExhausted, match="country CN"):
        bind(numbers, "o-2", CHANGZHOU_MOBILE, "+8613912340012")


def test_global_falls_back_to_any_country(services: Services, numbers: Any) -> None:
    add_relay_numbers(services, SF)
    numbers.bindings.policy = BindingPolicy(geo_policy="global")
    assert bind(numbers, "o-1", CHANGZHOU_MOBILE, "+8613912340011").relay_number == SF


def test_global_still_prefers_home(services: Services, numbers: Any) -> None:
    add_relay_numbers(services, SF, NANJING)
    numbers.bindings.policy = BindingPolicy(geo_policy="global")
    assert bind(numbers, "o-1", CHANGZHOU_MOBILE, "+8613912340011").relay_number == NANJING


def test_strict_takes_a_landline_of_the_mobiles_city_and_nothing_else(
    services: Services, numbers: Any
) -> None:
    add_relay_numbers(services, BEIJING, NANJING)
    numbers.bindings.policy = BindingPolicy(geo_policy="strict")
    assert bind(numbers, "o-1", BEIJING_MOBILE, "+8613912340011").relay_number == BEIJING
    with pytest.raises(NoNumberInRegion, match="area"):
        bind(numbers, "o-2", CHANGZHOU_MOBILE, "+8613912340012")  # Nanjing is the province, not the area


def test_named_relay_numbers_keep_their_own_rules(services: Services, numbers: Any) -> None:
    add_relay_numbers(services, SF, BEIJING)
    view = bind(numbers, "o-1", CHANGZHOU_MOBILE, "+8613912340011", relay_numbers=frozenset({SF}))
    assert view.relay_number == SF  # a face's own list: no geo policy


def test_scores_follow_claims_and_releases(services: Services, numbers: Any, redis_client: Any) -> None:
    add_relay_numbers(services, SF)
    view = bind(numbers, "o-1", "+14155550132", "+13125550101")
    assert redis_client.zscore(country_key("US"), SF) == 1
    numbers.bindings.unbind(view.id)
    assert redis_client.zscore(country_key("US"), SF) == 0


def test_a_locked_number_leaves_the_sets_and_a_new_one_joins(services: Services, numbers: Any) -> None:
    add_relay_numbers(services, SF)
    bind(numbers, "o-1", "+14155550132", "+13125550101")
    with services.db.session() as session:
        numbers.pool.set_status(session, SF, "locked", now=services.clock())
    with pytest.raises(PoolExhausted):
        bind(numbers, "o-2", "+14155550133", "+13125550102")
    add_relay_numbers(services, SAN_JOSE)
    assert bind(numbers, "o-3", "+14155550134", "+13125550103").relay_number == SAN_JOSE


def test_sets_lost_with_redis_are_built_again_from_sql(
    services: Services, numbers: Any, redis_client: Any
) -> None:
    from maskline.numbers.rebuild import rebuild_routes

    add_relay_numbers(services, SF, NEW_YORK)
    first = bind(numbers, "o-1", "+14155550132", "+13125550101")
    redis_client.flushdb()
    rebuild_routes(
        db=services.db,
        vault=services.vault,
        routes=numbers.routes,
        cooldown=numbers.bindings.policy.cooldown,
        now=services.clock(),
    )
    second = bind(numbers, "o-2", "+14155550133", "+13125550102")
    assert first.relay_number == second.relay_number == SF
    assert redis_client.zscore(country_key("US"), SF) == 2  # the live count from SQL, then this bind
