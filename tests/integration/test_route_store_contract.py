"""The Lua scripts, proven on every backend they run on: real Redis and fakeredis.

One contract, parametrized over backends (as the `limits` library does), so
the scripts are tested where they will run. Time is passed in as integers.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from redis.cluster import key_slot

from maskline.numbers.interfaces import RoutingUnavailable
from maskline.numbers.routes import (
    AllowedCaller,
    Party,
    RouteStore,
    allow_value,
    route_key,
    unpack_binding_id,
    unpack_token,
)
from maskline.redis_backend import connect
from maskline.vault.services import new_token
from tests.conftest import TEST_REDIS_URL

X = "+14155550100"
COOLDOWN = 100


def _backends() -> list[Any]:
    params = [pytest.param("fakeredis", id="fakeredis")]
    if TEST_REDIS_URL:
        params.append(pytest.param(TEST_REDIS_URL, id="redis"))
    return params


@pytest.fixture(params=_backends())
def store(request: pytest.FixtureRequest) -> Iterator[RouteStore]:
    # connect() as the app does: a redis+cluster:// URL gets the cluster client.
    real = request.param != "fakeredis"
    client = connect(request.param, instance_path=Path.cwd()) if real else fakeredis.FakeRedis()
    client.flushdb()
    routes = RouteStore(client)
    routes.register_number(X)
    yield routes
    client.flushdb()


def bid(name: str) -> str:
    """A well-formed binding id, the same for the same name."""
    return unpack_binding_id(hashlib.sha256(name.encode()).digest()[:10])


def token(name: str) -> str:
    return unpack_token(hashlib.sha256(name.encode()).digest()[:15])


def party(role: str) -> Party:
    return Party(index=os.urandom(12), role=role, token=new_token())


def claim_axb(
    store: RouteStore,
    a: Party,
    b: Party,
    *,
    bid: str = bid("bd_1"),
    now: int = 1000,
    exp: int = 5000,
    cap: int = 200,
) -> str:
    return store.claim(
        X,
        binding_id=bid,
        version=1,
        expires=exp,
        mode="axb",
        parties=[a, b],
        now=now,
        cooldown=COOLDOWN,
        cap=cap,
    ).outcome


def test_axb_routes_each_party_to_the_other(store: RouteStore) -> None:
    a, b = party("buyer"), party("merchant")
    assert claim_axb(store, a, b) == "ok"
    to_b = store.resolve(X, caller_index=a.index, extension=None, now=1001)
    to_a = store.resolve(X, caller_index=b.index, extension=None, now=1001)
    assert (to_b.action, to_b.target_role, to_b.target_token) == ("connect", "merchant", b.token)
    assert (to_a.action, to_a.target_role, to_a.target_token) == ("connect", "buyer", a.token)


def test_party_is_on_at_most_one_live_binding_per_number(store: RouteStore) -> None:
    merchant = party("merchant")
    assert claim_axb(store, party("buyer"), merchant, bid=bid("bd_1")) == "ok"
    result = store.claim(
        X,
        binding_id=bid("bd_2"),
        version=1,
        expires=5000,
        mode="axb",
        parties=[party("buyer"), merchant],
        now=1000,
        cooldown=COOLDOWN,
        cap=200,
    )
    assert (result.outcome, result.busy_party) == ("busy", 1)


@pytest.mark.parametrize(
    ("caller", "now", "reason"),
    [("stranger", 1001, "stranger"), ("buyer", 5000, "expired"), ("none", 1001, "stranger")],
)
def test_rejections(store: RouteStore, caller: str, now: int, reason: str) -> None:
    a, b = party("buyer"), party("merchant")
    claim_axb(store, a, b)
    index = {"stranger": os.urandom(12), "buyer": a.index, "none": None}[caller]
    decision = store.resolve(X, caller_index=index, extension=None, now=now)
    assert (decision.action, decision.reason) == ("reject", reason)


def test_number_without_bindings_says_no_binding(store: RouteStore) -> None:
    assert store.resolve(X, caller_index=os.urandom(12), extension=None, now=1).reason == "no_binding"


def test_lost_generation_marker_is_unavailable_not_no_binding(store: RouteStore) -> None:
    a, b = party("buyer"), party("merchant")
    claim_axb(store, a, b)
    store.client.flushdb()
    assert store.resolve(X, caller_index=a.index, extension=None, now=1001).reason == "unavailable"
    with pytest.raises(RoutingUnavailable):
        claim_axb(store, party("buyer"), party("merchant"), bid=bid("bd_2"))


def test_cap_counts_live_bindings(store: RouteStore) -> None:
    assert claim_axb(store, party("buyer"), party("merchant"), bid=bid("bd_1"), cap=1) == "ok"
    assert claim_axb(store, party("buyer"), party("merchant"), bid=bid("bd_2"), cap=1) == "full"


def test_end_leaves_a_cooldown_tombstone_then_purge_frees_the_party(store: RouteStore) -> None:
    a, b = party("buyer"), party("merchant")
    claim_axb(store, a, b)
    assert store.end(
        X,
        binding_id=bid("bd_1"),
        version=2,
        ended=2000,
        mode="axb",
        extension=None,
        indexes=[a.index, b.index],
    )
    assert store.resolve(X, caller_index=b.index, extension=None, now=2001).reason == "expired"
    assert claim_axb(store, party("buyer"), b, bid=bid("bd_2"), now=2050) == "busy"  # cooling down
    assert claim_axb(store, party("buyer"), b, bid=bid("bd_3"), now=2100) == "ok"  # cool-down over
    assert store.resolve(X, caller_index=a.index, extension=None, now=2101).reason == "expired"


def test_extend_moves_expiry_of_a_live_binding_only(store: RouteStore) -> None:
    a, b = party("buyer"), party("merchant")
    claim_axb(store, a, b, exp=2000)
    updated = store.extend(
        X,
        binding_id=bid("bd_1"),
        version=2,
        now=1500,
        expires=9000,
        extension=None,
        indexes=[a.index, b.index],
    )
    assert updated == 2
    assert store.resolve(X, caller_index=a.index, extension=None, now=8000).action == "connect"
    assert (
        store.extend(
            X,
            binding_id=bid("bd_1"),
            version=3,
            now=9500,
            expires=20000,
            extension=None,
            indexes=[a.index, b.index],
        )
        == 0
    )


def claim_axe(
    store: RouteStore,
    bound: Party,
    callers: list[AllowedCaller] | None,
    *,
    bid: str = bid("bd_e"),
    ext: str = "1234",
) -> str | None:
    result = store.claim(
        X,
        binding_id=bid,
        version=1,
        expires=5000,
        mode="axe",
        parties=[bound],
        allow=allow_value(callers),
        extension_candidates=[ext],
        now=1000,
        cooldown=COOLDOWN,
        cap=200,
    )
    return result.extension


def test_axe_connects_allowed_caller_through_extension_only(store: RouteStore) -> None:
    buyer = party("buyer")
    courier = AllowedCaller(index=os.urandom(12), role="courier", token=token("pn_courier"))
    assert claim_axe(store, buyer, [courier]) == "1234"
    assert (
        store.resolve(X, caller_index=courier.index, extension=None, now=1001).reason == "extension_required"
    )
    ok = store.resolve(X, caller_index=courier.index, extension="1234", now=1001)
    assert (ok.action, ok.from_role, ok.target_token) == ("connect", "courier", buyer.token)
    assert store.resolve(X, caller_index=os.urandom(12), extension="1234", now=1001).reason == "stranger"
    assert store.resolve(X, caller_index=courier.index, extension="9999", now=1001).reason == "bad_extension"


def test_bound_party_reaches_most_recent_allowed_caller(store: RouteStore) -> None:
    buyer = party("buyer")
    c1 = AllowedCaller(index=os.urandom(12), role="courier", token=token("pn_c1"))
    c2 = AllowedCaller(index=os.urandom(12), role="courier", token=token("pn_c2"))
    claim_axe(store, buyer, [c1, c2])
    assert store.resolve(X, caller_index=buyer.index, extension=None, now=1001).reason == "no_recent_caller"
    store.resolve(X, caller_index=c1.index, extension="1234", now=1001)
    store.resolve(X, caller_index=c2.index, extension="1234", now=1002)
    back = store.resolve(X, caller_index=buyer.index, extension=None, now=1003)
    assert (back.action, back.target_token) == ("connect", token("pn_c2"))


def test_extension_is_not_reissued_while_cooling_down(store: RouteStore) -> None:
    claim_axe(store, party("buyer"), None, bid=bid("bd_e1"))
    store.end(X, binding_id=bid("bd_e1"), version=2, ended=1500, mode="axe", extension="1234", indexes=[])
    result = store.claim(
        X,
        binding_id=bid("bd_e2"),
        version=1,
        expires=5000,
        mode="axe",
        parties=[party("buyer")],
        allow="*",
        extension_candidates=["1234"],
        now=1550,
        cooldown=COOLDOWN,
        cap=200,
    )
    assert result.outcome == "no_extension"


def test_restore_does_not_revive_a_newer_unbind(store: RouteStore) -> None:
    from maskline.numbers.routes import StoredBinding

    a, b = party("buyer"), party("merchant")
    claim_axb(store, a, b)
    store.end(
        X,
        binding_id=bid("bd_1"),
        version=2,
        ended=1500,
        mode="axb",
        extension=None,
        indexes=[a.index, b.index],
    )
    stale = StoredBinding(
        id=bid("bd_1"),
        version=1,
        active=True,
        expires=5000,
        mode="axb",
        extension=None,
        allow="",
        last_caller="",
        parties=[a, b],
    )
    assert store.restore(X, [stale], generation="g2", now=1600) == 0
    assert store.resolve(X, caller_index=a.index, extension=None, now=1601).reason == "expired"


def test_release_removes_everything_of_a_binding(store: RouteStore) -> None:
    a, b = party("buyer"), party("merchant")
    claim_axb(store, a, b)
    assert store.release(X, binding_id=bid("bd_1"), extension=None, indexes=[a.index, b.index]) >= 2
    assert store.resolve(X, caller_index=a.index, extension=None, now=1001).reason == "no_binding"


class RecordingStore(RouteStore):
    """Our own class, recording the keys of each script call (not a mock of redis-py)."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.calls: list[tuple[str, list[str]]] = []

    def _run(self, name: str, relay_number: str, args: list[Any], *, owner: str | None = None) -> Any:
        self.calls.append((name, [route_key(relay_number)]))
        return super()._run(name, relay_number, args, owner=owner)


def test_every_script_call_stays_on_one_hash_slot() -> None:
    store = RecordingStore(fakeredis.FakeRedis())
    store.register_number(X)
    a, b = party("buyer"), party("merchant")
    claim_axb(store, a, b)
    store.resolve(X, caller_index=a.index, extension=None, now=1001)
    store.extend(
        X, binding_id=bid("bd_1"), version=2, now=1001, expires=6000, extension=None, indexes=[a.index]
    )
    store.end(X, binding_id=bid("bd_1"), version=3, ended=1002, mode="axb", extension=None, indexes=[a.index])
    store.restore(X, [], generation="g", now=1003)
    store.release(X, binding_id=bid("bd_1"), extension=None, indexes=[a.index])
    assert {name for name, _ in store.calls} == set(RouteStore.SCRIPTS)
    for _name, keys in store.calls:
        assert {key_slot(k.encode()) for k in keys} == {key_slot(f"{{{X}}}".encode())}
