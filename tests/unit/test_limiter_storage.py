"""The rate limiter's one-call storage: a hit returns what the headers need."""

from __future__ import annotations

import fakeredis
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from maskline.limiter_storage import OneTripRedisStorage, one_trip_uri


def storage() -> tuple[OneTripRedisStorage, fakeredis.FakeRedis]:
    client = fakeredis.FakeRedis()
    return OneTripRedisStorage(one_trip_uri("redis://unused"), connection_pool=client.connection_pool), client


def test_the_scheme_selects_the_one_call_storage() -> None:
    assert isinstance(storage_from_string(one_trip_uri("redis://127.0.0.1:1/0")), OneTripRedisStorage)


def test_a_hit_counts_and_sets_the_window_once() -> None:
    store, client = storage()
    limiter = FixedWindowRateLimiter(store)
    item = parse("2/minute")
    assert limiter.hit(item, "k") and limiter.hit(item, "k") and not limiter.hit(item, "k")
    key = store.prefixed_key(item.key_for("k"))
    assert int(client.get(key) or 0) == 3 and 0 < client.ttl(key) <= 60


def test_the_headers_are_read_from_the_hit_not_from_redis_again() -> None:
    store, client = storage()
    limiter = FixedWindowRateLimiter(store)
    item = parse("5/minute")
    limiter.hit(item, "k")
    client.flushdb()  # a read of Redis would now see nothing
    stats = limiter.get_window_stats(item, "k")
    assert stats.remaining == 4 and stats.reset_time > 0
    other = parse("5/hour")  # never hit here: read from Redis as usual
    assert limiter.get_window_stats(other, "k").remaining == 5
