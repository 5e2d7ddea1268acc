"""Bindings end to end over real SQL and Redis: bind, route, extend, unbind, cool-down."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import func, select

from maskline.clock import FixedClock
from maskline.numbers.interfaces import BindRequest, InvalidRequest, PoolExhausted
from maskline.numbers.models import Binding
from maskline.vault.interfaces import InvalidPhoneNumber
from maskline.vault.models import VaultEntry
from maskline.wiring import Services
from tests.conftest import add_relay_numbers

X1, X2 = "+14155550100", "+14155550101"
BUYER, MERCHANT, COURIER = "+14155550132", "+12125550143", "+13125550154"


def axb(order: str = "o-1", buyer: str = BUYER, merchant: str = MERCHANT, **kw: Any) -> BindRequest:
    return BindRequest(order_id=order, mode="axb", parties={"buyer": buyer, "merchant": merchant}, **kw)


@pytest.fixture
def pool(services: Services, numbers: Any) -> Any:
    add_relay_numbers(services, X1, X2)
    return numbers


def test_axb_binding_routes_both_ways_with_relay_number(pool: Any) -> None:
    view = pool.bindings.bind(axb())
    assert view.relay_number in (X1, X2) and view.extension is None
    to_merchant = pool.router.resolve(view.relay_number, BUYER)
    to_buyer = pool.router.resolve(view.relay_number, "(212) 555-0143")
    assert (to_merchant.action, to_merchant.target_role) == ("connect", "merchant")
    assert (to_buyer.action, to_buyer.target_role) == ("connect", "buyer")


def test_target_token_opens_to_the_other_party(services: Services, pool: Any) -> None:
    view = pool.bindings.bind(axb())
    decision = pool.router.resolve(view.relay_number, BUYER)
    with services.db.session() as session:
        assert services.vault.open(session, decision.target_token) == MERCHANT


def test_binding_json_carries_no_party_number(pool: Any) -> None:
    text = str(pool.bindings.bind(axb()).to_json())
    for digits in ("4155550132", "2125550143"):
        assert digits not in text


def test_stranger_and_expired_are_rejected(pool: Any, clock: FixedClock) -> None:
    view = pool.bindings.bind(axb(ttl=dt.timedelta(hours=1)))
    assert pool.router.resolve(view.relay_number, COURIER).reason == "stranger"
    clock.advance(hours=1)
    assert pool.router.resolve(view.relay_number, BUYER).reason == "expired"


def test_unbind_is_immediate_and_cools_the_number_down_for_its_parties(pool: Any, clock: FixedClock) -> None:
    first = pool.bindings.bind(axb("o-1"))
    pool.bindings.unbind(first.id)
    assert pool.router.resolve(first.relay_number, BUYER).action == "reject"
    second = pool.bindings.bind(axb("o-2"))
    assert second.relay_number != first.relay_number  # same parties: X is cooling down
    clock.advance(hours=25)
    pool.bindings.unbind(second.id)
    clock.advance(hours=25)
    assert pool.bindings.bind(axb("o-3")).relay_number in (X1, X2)


def test_old_counterparty_calling_after_unbind_reaches_no_one(pool: Any) -> None:
    first = pool.bindings.bind(axb("o-1"))
    pool.bindings.unbind(first.id)
    other = pool.bindings.bind(axb("o-2", buyer="+14155550177", merchant="+14155550178"))
    if other.relay_number == first.relay_number:
        assert pool.router.resolve(first.relay_number, MERCHANT).action == "reject"
    assert pool.router.resolve(first.relay_number, MERCHANT).action == "reject"


def test_extend_keeps_a_binding_alive(pool: Any, clock: FixedClock) -> None:
    view = pool.bindings.bind(axb(ttl=dt.timedelta(hours=1)))
    pool.bindings.extend(view.id, ttl=dt.timedelta(hours=5))
    clock.advance(hours=3)
    assert pool.router.resolve(view.relay_number, BUYER).action == "connect"


def test_pool_exhausted_names_the_role(services: Services, numbers: Any) -> None:
    add_relay_numbers(services, X1)
    numbers.bindings.bind(axb("o-1"))
    with pytest.raises(PoolExhausted, match="merchant") as err:
        numbers.bindings.bind(axb("o-2", buyer="+14155550199"))
    assert err.value.role == "merchant" and err.value.needed >= 1


def test_fallback_to_axe_when_axb_is_exhausted(services: Services, numbers: Any) -> None:
    add_relay_numbers(services, X1)
    numbers.bindings.bind(axb("o-1"))
    view = numbers.bindings.bind(axb("o-2", buyer="+14155550199", fallback="axe"))
    assert (view.mode, view.fallback_used, view.relay_number) == ("axe", True, X1)
    assert view.extension is not None and not view.extension.startswith("0")
    via_ext = numbers.router.resolve(X1, MERCHANT, view.extension)
    assert (via_ext.action, via_ext.target_role) == ("connect", "buyer")


def test_axe_allow_list_and_call_back(pool: Any) -> None:
    view = pool.bindings.bind(
        BindRequest(order_id="o-1", mode="axe", parties={"buyer": BUYER}, allow=[COURIER])
    )
    assert len(view.extension or "") == 4
    assert pool.router.resolve(view.relay_number, COURIER).reason == "extension_required"
    assert pool.router.resolve(view.relay_number, "+14155550188", view.extension).reason == "stranger"
    assert pool.router.resolve(view.relay_number, COURIER, view.extension).target_role == "buyer"
    back = pool.router.resolve(view.relay_number, BUYER)
    assert (back.action, back.target_role) == ("connect", "caller")


def test_open_extension_must_be_asked_for(pool: Any) -> None:
    with pytest.raises(InvalidRequest, match=r"^allow: "):
        pool.bindings.bind(BindRequest(order_id="o-1", mode="axe", parties={"buyer": BUYER}))
    view = pool.bindings.bind(BindRequest(order_id="o-1", mode="axe", parties={"buyer": BUYER}, allow="any"))
    assert view.allow == "any"
    assert pool.router.resolve(view.relay_number, "+14155550188", view.extension).action == "connect"


@pytest.mark.parametrize(
    ("request_kw", "field"),
    [
        ({"order_id": ""}, "order_id"),
        ({"mode": "abc"}, "mode"),
        ({"parties": {"buyer": BUYER}}, "parties"),
        ({"parties": {"Buyer!": BUYER, "merchant": MERCHANT}}, "parties"),
        ({"parties": {"buyer": BUYER, "merchant": "12"}}, "parties.merchant"),
        ({"parties": {"buyer": BUYER, "merchant": BUYER}}, "parties."),
        ({"parties": {"buyer": BUYER, "merchant": X1}}, "parties.merchant"),
        ({"ttl": dt.timedelta(seconds=-5)}, "ttl_seconds"),
        ({"ttl": dt.timedelta(days=400)}, "expires_at"),
        ({"fallback": "sms"}, "fallback"),
    ],
)
def test_bad_input_names_the_field_and_changes_nothing(
    services: Services, pool: Any, request_kw: dict[str, Any], field: str
) -> None:
    base: dict[str, Any] = {
        "order_id": "o-1",
        "mode": "axb",
        "parties": {"buyer": BUYER, "merchant": MERCHANT},
    }
    with pytest.raises((InvalidRequest, InvalidPhoneNumber)) as err:
        pool.bindings.bind(BindRequest(**{**base, **request_kw}))
    assert str(err.value).startswith(field)
    assert "4155550132" not in str(err.value)
    with services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Binding)) == 0
        assert session.scalar(select(func.count()).select_from(VaultEntry)) == 0


def test_erasing_a_party_unbinds_its_live_bindings(services: Services, pool: Any) -> None:
    view = pool.bindings.bind(axb())
    token = pool.router.resolve(view.relay_number, MERCHANT).target_token
    with services.db.session() as session:
        services.vault.erase(session, token, actor="dpo", reason="erasure request")
    assert pool.bindings.get(view.id).status == "unbound"
    assert pool.router.resolve(view.relay_number, MERCHANT).action == "reject"


def test_flushed_redis_fails_closed_then_rebuild_restores_only_live(
    services: Services, pool: Any, redis_client: Any, clock: FixedClock
) -> None:
    from maskline.numbers.rebuild import rebuild_routes

    live = pool.bindings.bind(axb("o-1"))
    ended = pool.bindings.bind(axb("o-2", buyer="+14155550166", merchant="+14155550167"))
    short = pool.bindings.bind(
        axb("o-3", buyer="+14155550168", merchant="+14155550169", ttl=dt.timedelta(minutes=5))
    )
    pool.bindings.unbind(ended.id)
    clock.advance(minutes=10)
    redis_client.flushdb()
    assert pool.router.resolve(live.relay_number, BUYER).reason == "unavailable"
    rebuild_routes(
        db=services.db, vault=services.vault, routes=pool.routes, cooldown=dt.timedelta(hours=24), now=clock()
    )
    assert pool.router.resolve(live.relay_number, BUYER).action == "connect"
    assert pool.router.resolve(ended.relay_number, "+14155550166").action == "reject"
    assert pool.router.resolve(short.relay_number, "+14155550168").action == "reject"
    # Idempotent: a second rebuild changes nothing that routes.
    rebuild_routes(
        db=services.db, vault=services.vault, routes=pool.routes, cooldown=dt.timedelta(hours=24), now=clock()
    )
    assert pool.router.resolve(live.relay_number, MERCHANT).target_role == "buyer"


def test_redis_holds_no_party_number(services: Services, pool: Any, redis_client: Any) -> None:
    pool.bindings.bind(axb())
    pool.bindings.bind(
        BindRequest(order_id="o-2", mode="axe", parties={"buyer": "+14155550175"}, allow=[COURIER])
    )
    parts: list[bytes] = []
    for k in redis_client.scan_iter():  # every primary of a cluster, unlike KEYS
        kind = redis_client.type(k)
        parts.append(k)
        if kind == b"hash":
            parts += [b"".join(pair) for pair in redis_client.hgetall(k).items()]
        elif kind == b"zset":  # the selection sets: relay numbers by place
            parts += redis_client.zrange(k, 0, -1)
        elif kind == b"set":
            parts += redis_client.smembers(k)
        else:
            parts.append(redis_client.get(k) or b"")
    dump = b"".join(parts)
    for digits in (b"4155550132", b"2125550143", b"3125550154", b"4155550175"):
        assert digits not in dump


def test_routing_that_finds_its_data_gone_starts_a_rebuild(pool: Any, redis_client: Any) -> None:
    view = pool.bindings.bind(axb())
    redis_client.flushdb()
    assert pool.router.resolve(view.relay_number, BUYER).reason == "unavailable"
    pool.rebuilder.join()
    assert pool.rebuilder.runs == 1
    assert pool.router.resolve(view.relay_number, BUYER).action == "connect"


def test_allocation_fails_closed_while_data_is_gone(pool: Any, redis_client: Any) -> None:
    from maskline.numbers.interfaces import RoutingUnavailable

    redis_client.flushdb()
    with pytest.raises(RoutingUnavailable):
        pool.bindings.bind(axb())
    # ... and has the routes rebuilt, so that it works again without waiting for a call.
    pool.rebuilder.join()
    assert pool.rebuilder.runs == 1
    assert pool.bindings.bind(axb()).status == "active"


def test_number_in_the_buyers_area_is_preferred(services: Services, numbers: Any) -> None:
    add_relay_numbers(services, "+12125550100", "+14155550100", "+13125550100")
    for i in range(3):
        view = numbers.bindings.bind(axb(f"o-{i}", buyer=f"+1415555017{i}", merchant=f"+1212555018{i}"))
        assert view.relay_number == "+14155550100"


def test_strict_geo_policy_fails_clearly_outside_the_area(services: Services, numbers: Any) -> None:
    from maskline.numbers.interfaces import NoNumberInRegion
    from maskline.numbers.services import BindingPolicy

    add_relay_numbers(services, "+12125550100")
    numbers.bindings.policy = BindingPolicy(geo_policy="strict")
    with pytest.raises(NoNumberInRegion, match="area"):
        numbers.bindings.bind(axb())


def test_locked_and_retired_numbers_take_no_new_bindings(services: Services, numbers: Any) -> None:
    add_relay_numbers(services, X1, status="locked")
    add_relay_numbers(services, X2, status="retired")
    with pytest.raises(PoolExhausted):
        numbers.bindings.bind(axb())


def test_relay_numbers_limit_the_choice_and_prefer_relays_go_first(services: Services, numbers: Any) -> None:
    # The buyer's own area (415) would win without either.
    add_relay_numbers(services, "+12125550100", "+14155550100", "+13125550100")
    only = frozenset({"+12125550100", "+13125550100"})
    for i in range(4):
        view = numbers.bindings.bind(
            axb(f"o-{i}", buyer=f"+1415555017{i}", merchant=f"+1212555018{i}", relay_numbers=only)
        )
        assert view.relay_number in only
    preferred = numbers.bindings.bind(
        axb("o-p", buyer="+14155550179", prefer_relays=("+13125550100", "+12125550100"))
    )
    assert preferred.relay_number == "+13125550100"


def test_a_named_relay_number_that_cannot_take_the_binding_is_exhaustion_not_another_number(
    services: Services, numbers: Any
) -> None:
    from maskline.numbers.interfaces import NoNumberInRegion
    from maskline.numbers.services import BindingPolicy

    add_relay_numbers(services, X1, X2)
    add_relay_numbers(services, "+12125550199", status="locked")
    numbers.bindings.bind(axb("o-1", relay_numbers=frozenset({X1})))
    # The same parties again: X1 already carries them, X2 is not allowed.
    with pytest.raises(PoolExhausted, match="none of the 1 relay number") as busy:
        numbers.bindings.bind(axb("o-2", relay_numbers=frozenset({X1})))
    assert busy.value.role in ("buyer", "merchant")
    with pytest.raises(PoolExhausted, match="in the pool, active and voice-capable") as locked:
        numbers.bindings.bind(axb("o-3", relay_numbers=frozenset({"+12125550199"})))
    assert not isinstance(locked.value, NoNumberInRegion)
    # The strict geo policy does not apply to numbers the caller named.
    numbers.bindings.policy = BindingPolicy(geo_policy="strict")
    view = numbers.bindings.bind(axb("o-4", buyer=COURIER, relay_numbers=frozenset({X2})))
    assert view.relay_number == X2
    with services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Binding)) == 2


def test_the_strict_geo_policy_outranks_a_preference(services: Services, numbers: Any) -> None:
    from maskline.numbers.services import BindingPolicy

    add_relay_numbers(services, "+12125550100", "+14155550100")
    numbers.bindings.policy = BindingPolicy(geo_policy="strict")
    view = numbers.bindings.bind(axb(prefer_relays=("+12125550100",)))  # the buyer is in 415
    assert view.relay_number == "+14155550100"
