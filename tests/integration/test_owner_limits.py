"""Per-owner caps on live bindings (issue 17, pool hogging), written as the attack:
one owner's key binding as fast as it can must not leave the next owner a
pool with nothing in it, and concurrent binds at the cap never overshoot it."""

from __future__ import annotations

import dataclasses
import multiprocessing
import re
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from config import Settings
from maskline import services_of
from maskline.audit.models import AuditRecord
from maskline.numbers.interfaces import BindRequest, NumbersError, OwnerLimitReached
from maskline.numbers.models import Binding
from maskline.numbers.owner_limits import owner_key
from maskline.wiring import Services
from tests.conftest import add_relay_numbers
from tests.integration.api_helpers import ApiClient, make_key
from tests.integration.conftest import AppMaker

MERCHANT = "+12125550143"


def relay(i: int) -> str:
    return f"+1415555{1000 + i:04d}"


def buyer(i: int) -> str:
    return f"+1312555{1000 + i:04d}"


def capped(numbers: Any, cap: int) -> None:
    numbers.bindings.policy = dataclasses.replace(numbers.bindings.policy, owner_max_live=cap)


def bind(numbers: Any, owner: str, i: int) -> Any:
    request = BindRequest(
        owner=owner, order_id=f"o-{i}", mode="axb", parties={"buyer": buyer(i), "merchant": MERCHANT}
    )
    return numbers.bindings.bind(request)


def live(services: Services, owner: str) -> int:
    with services.db.session() as session:
        return int(
            session.scalar(select(func.count()).where(Binding.owner == owner, Binding.status == "active"))
            or 0
        )


def test_a_hog_stops_at_its_cap_and_the_next_owner_still_binds(services: Services, numbers: Any) -> None:
    add_relay_numbers(services, *(relay(i) for i in range(12)))
    capped(numbers, 5)
    for i in range(5):
        bind(numbers, "hog", i)

    with pytest.raises(OwnerLimitReached) as refused:
        bind(numbers, "hog", 5)

    assert refused.value.limit == 5 and "cap of 5 live bindings" in str(refused.value)
    assert "312555" not in str(refused.value) and "212555" not in str(refused.value)
    assert live(services, "hog") == 5
    assert bind(numbers, "next", 0).relay_number


def test_an_unbind_frees_a_place_at_once(services: Services, numbers: Any) -> None:
    add_relay_numbers(services, *(relay(i) for i in range(4)))
    capped(numbers, 2)
    first = bind(numbers, "shop", 0)
    bind(numbers, "shop", 1)
    with pytest.raises(OwnerLimitReached):
        bind(numbers, "shop", 2)

    numbers.bindings.unbind(first.id, owner="shop")

    assert bind(numbers, "shop", 2).status == "active"


def test_a_refused_bind_changes_nothing(services: Services, numbers: Any, redis_client: Any) -> None:
    add_relay_numbers(services, relay(0), relay(1))
    capped(numbers, 1)
    bind(numbers, "shop", 0)
    before = {relay(i): numbers.routes.fields(relay(i)) for i in range(2)}

    with pytest.raises(OwnerLimitReached):
        bind(numbers, "shop", 1)

    assert {relay(i): numbers.routes.fields(relay(i)) for i in range(2)} == before
    assert int(redis_client.hget(owner_key("shop"), "n")) == 1


def test_threads_binding_at_cap_minus_one_never_overshoot(services: Services, numbers: Any) -> None:
    add_relay_numbers(services, *(relay(i) for i in range(40)))
    capped(numbers, 10)
    for i in range(9):
        bind(numbers, "hog", i)

    def attempt(i: int) -> str:
        try:
            bind(numbers, "hog", 100 + i)
            return "bound"
        except OwnerLimitReached:
            return "capped"
        except NumbersError as exc:
            return type(exc).__name__

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(attempt, range(24)))

    assert outcomes.count("bound") == 1 and outcomes.count("capped") == 23
    assert live(services, "hog") == 10


def test_an_owner_s_own_cap_wins_over_the_deployment_s(services: Services, numbers: Any) -> None:
    add_relay_numbers(services, *(relay(i) for i in range(6)))
    capped(numbers, 1)
    owners = services.events.owners

    shown = owners.set_limits("big", max_live_bindings=3, actor="cli:ops").to_json()
    for i in range(3):
        bind(numbers, "big", i)
    with pytest.raises(OwnerLimitReached) as refused:
        bind(numbers, "big", 3)
    owners.set_limits("big", max_live_bindings=0, actor="cli:ops")  # 0: no cap at all
    bind(numbers, "big", 3)
    back = owners.set_limits("big", max_live_bindings=None, actor="cli:ops").to_json()

    assert shown["max_live_bindings"] == 3 and refused.value.limit == 3
    assert back["max_live_bindings"] is None and back["live_bindings"] == 4
    with pytest.raises(OwnerLimitReached):  # the deployment's cap of 1 again
        bind(numbers, "big", 4)
    with services.db.session() as session:
        audited = session.scalars(
            select(AuditRecord.action).where(AuditRecord.subject == "big").order_by(AuditRecord.seq)
        ).all()
    assert audited == ["owner.limits_set"] * 3


def test_the_worker_brings_a_count_back_to_sql(services: Services, numbers: Any, redis_client: Any) -> None:
    add_relay_numbers(services, *(relay(i) for i in range(4)))
    capped(numbers, 2)
    bind(numbers, "shop", 0)
    sync = numbers.sweeper.owner_limits
    # A claim that died between Redis and SQL left the count too high.
    redis_client.hset(owner_key("shop"), "n", 2)
    with pytest.raises(OwnerLimitReached):
        bind(numbers, "shop", 1)

    sync.reconcile()  # a first pass only notes it: a bind in flight looks the same
    assert int(redis_client.hget(owner_key("shop"), "n")) == 2
    numbers.sweeper.run_once(services.clock())

    assert int(redis_client.hget(owner_key("shop"), "n")) == 1
    assert bind(numbers, "shop", 1).status == "active"


def test_a_lost_count_comes_back_at_once_with_the_cap(
    services: Services, numbers: Any, redis_client: Any
) -> None:
    add_relay_numbers(services, *(relay(i) for i in range(4)))
    services.events.owners.set_limits("shop", max_live_bindings=2)
    bind(numbers, "shop", 0)
    bind(numbers, "shop", 1)
    redis_client.delete(owner_key("shop"))  # Redis lost it

    numbers.sweeper.run_once(services.clock())

    assert int(redis_client.hget(owner_key("shop"), "n")) == 2
    with pytest.raises(OwnerLimitReached):
        bind(numbers, "shop", 2)


# -- through the API -------------------------------------------------------------------


@pytest.fixture
def capped_app(make_app: AppMaker) -> Flask:
    app = make_app(owner_max_live_bindings=1)
    add_relay_numbers(services_of(app), relay(0), relay(1), relay(2))
    return app


def _body(i: int) -> dict[str, Any]:
    return {"order_id": f"o-{i}", "mode": "axb", "parties": {"buyer": buyer(i), "merchant": MERCHANT}}


def test_the_api_answers_409_owner_limit_reached_naming_the_cap(capped_app: Flask) -> None:
    api = ApiClient(capped_app, make_key(capped_app, "shop-a"))
    assert api.post("/v1/bindings", _body(0)).status == 201

    refused = api.post("/v1/bindings", _body(1))

    assert refused.status == 409
    assert refused.body["error"]["code"] == "owner_limit_reached"
    assert "cap of 1 live bindings" in refused.body["error"]["message"]
    assert "312555" not in refused.text and "212555" not in refused.text
    other = ApiClient(capped_app, make_key(capped_app, "shop-b"))
    assert other.post("/v1/bindings", _body(2)).status == 201


def test_a_batch_answers_each_item_past_the_cap_with_the_code(capped_app: Flask) -> None:
    api = ApiClient(capped_app, make_key(capped_app, "shop-a"))

    answer = api.post("/v1/bindings:batch", {"items": [_body(0), _body(1)]})

    statuses = [item["status"] for item in answer.body["results"]]
    assert statuses == [201, 409]
    assert answer.body["results"][1]["body"]["error"]["code"] == "owner_limit_reached"


# -- eight workers at once ---------------------------------------------------------------


def _worker_binds(settings: Settings, key: str, first: int, count: int, start: Any) -> list[int]:
    """One server worker (its own app, connections and scripts), binding
    through the HTTP API as soon as every worker is ready."""
    from maskline import create_app

    app = create_app(settings)
    api = ApiClient(app, key)
    start.wait()
    try:
        return [api.post("/v1/bindings", _body(first + i)).status for i in range(count)]
    finally:
        services_of(app).close()


def test_eight_workers_binding_at_cap_minus_one_never_overshoot(
    capped_app: Flask, settings: Settings
) -> None:
    """Eight processes on real Redis and PostgreSQL (with the embedded
    defaults, which live in one process, eight threads of one)."""
    services = services_of(capped_app)
    add_relay_numbers(services, *(relay(i) for i in range(3, 40)))
    services.events.owners.set_limits("hog", max_live_bindings=6)
    key = make_key(capped_app, "hog")
    api = ApiClient(capped_app, key)
    assert [api.post("/v1/bindings", _body(i)).status for i in range(5)] == [201] * 5

    if settings.redis_url is not None and not settings.database_url.startswith("sqlite"):
        context = multiprocessing.get_context("spawn")
        start = context.Manager().Barrier(8)
        with ProcessPoolExecutor(max_workers=8, mp_context=context) as pool:
            runs = [pool.submit(_worker_binds, settings, key, 100 + 10 * w, 3, start) for w in range(8)]
            statuses = [status for run in runs for status in run.result()]
    else:
        barrier = threading.Barrier(8)

        def thread(w: int) -> list[int]:
            barrier.wait()
            return [api.post("/v1/bindings", _body(100 + 10 * w + i)).status for i in range(3)]

        with ThreadPoolExecutor(max_workers=8) as threads:
            statuses = [status for run in threads.map(thread, range(8)) for status in run]

    assert statuses.count(201) == 1 and statuses.count(409) == 23
    assert live(services, "hog") == 6


def test_the_console_pool_page_shows_each_owner_s_count_and_cap(capped_app: Flask) -> None:
    from tests.integration.admin_helpers import Console, make_admin

    services = services_of(capped_app)
    services.events.owners.set_limits("big", max_live_bindings=4)
    bind(services.numbers, "big", 0)
    bind(services.numbers, "big", 1)
    bind(services.numbers, "small", 2)
    make_admin(capped_app, "vera", "viewer")
    browser = Console(capped_app)
    assert browser.login("vera").status_code == 303

    page = browser.text("/admin/pool")

    table = page[page.index('id="owners"') :]
    rows = re.findall(r"<tr><td>([^<]*)</td><td>(\d+)</td>\s*<td>(\d+)", table)
    assert rows == [("big", "2", "4"), ("small", "1", "1")]
    assert "50%" in table and "(default)" in table
