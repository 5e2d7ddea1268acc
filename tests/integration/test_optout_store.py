"""The opt-out set on real Redis (or the in-process one): blind indexes, keyed by relay number."""

from __future__ import annotations

import os
from typing import Any

import pytest

from maskline.webhooks.optout import Keyword, OptOutStore, optout_key

X = "+861065520100"
SENDER = "+8613912340003"


@pytest.fixture
def store(redis_client: Any) -> OptOutStore:
    return OptOutStore(redis_client)


def test_stop_then_start_round_trip(store: OptOutStore) -> None:
    index = os.urandom(12)
    assert not store.is_opted_out(X, index)
    assert store.apply(X, index, "退订") is Keyword.OPT_OUT
    assert store.is_opted_out(X, index) and store.count(X) == 1
    assert store.apply(X, index, "hello") is None and store.is_opted_out(X, index)
    assert store.apply(X, index, "START") is Keyword.OPT_IN
    assert not store.is_opted_out(X, index) and store.count(X) == 0


def test_an_opt_out_is_per_relay_number(store: OptOutStore) -> None:
    index = os.urandom(12)
    store.opt_out(X, index)
    assert not store.is_opted_out("+862165520101", index)
    assert store.opt_out(X, index) is False  # already out: no change


def test_redis_holds_the_index_under_the_tagged_key_and_no_number(
    store: OptOutStore, redis_client: Any
) -> None:
    index = os.urandom(12)
    store.opt_out(X, index)
    keys = [k.decode() for k in redis_client.scan_iter(match="*optout*")]
    assert keys == [optout_key(X)] and "{" + X + "}" in keys[0]
    assert redis_client.smembers(optout_key(X)) == {index}
    for key in redis_client.scan_iter():
        dumped = redis_client.dump(key) or b""
        assert SENDER.encode() not in key + dumped and b"13912340003" not in key + dumped


def test_no_index_is_refused(store: OptOutStore) -> None:
    with pytest.raises(ValueError, match="blind index"):
        store.opt_out(X, b"")
