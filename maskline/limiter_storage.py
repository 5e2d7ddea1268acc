"""The rate limiter's storages: one Redis call per request, and a Redis
Cluster storage connected on first use.

The ``limits`` library's :class:`~limits.storage.RedisClusterStorage` asks the
cluster for its slot map in its constructor, and Flask-Limiter builds it
while the app is built: with the cluster down, ``create_app()`` would fail,
and ``maskline serve`` could not start at all. Built on first use instead,
a cluster that is down costs each rate-limited request a failed connect,
which Flask-Limiter swallows (rate limits fail open, and say so in the log).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from limits.storage import RedisClusterStorage, RedisStorage, Storage

from maskline.redis_backend import REDIS_ERRORS

# A scheme of our own: ``limits`` picks the storage class by the URI's scheme.
LAZY_CLUSTER_PREFIX = "maskline+"


def lazy_cluster_uri(cluster_uri: str) -> str:
    """The storage URI for a ``redis+cluster://`` URL that selects :class:`LazyClusterStorage`."""
    return LAZY_CLUSTER_PREFIX + cluster_uri


class LazyClusterStorage(Storage):
    """:class:`~limits.storage.RedisClusterStorage`, built (connected) on first use."""

    STORAGE_SCHEME = [LAZY_CLUSTER_PREFIX + "redis+cluster"]

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._uri = uri.removeprefix(LAZY_CLUSTER_PREFIX)
        self._options = options
        self._storage: RedisClusterStorage | None = None
        self._lock = threading.Lock()

    @property
    def base_exceptions(self) -> tuple[type[Exception], ...]:
        return REDIS_ERRORS

    def _cluster(self) -> RedisClusterStorage:
        if self._storage is None:
            with self._lock:
                if self._storage is None:  # raises (and is retried next time) while the cluster is down
                    self._storage = RedisClusterStorage(
                        self._uri, wrap_exceptions=self.wrap_exceptions, **self._options
                    )
        return self._storage

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return self._cluster().incr(key, expiry, amount)

    def get(self, key: str) -> int:
        return self._cluster().get(key)

    def get_expiry(self, key: str) -> float:
        return self._cluster().get_expiry(key)

    def check(self) -> bool:
        try:
            return self._cluster().check()
        except REDIS_ERRORS:
            return False

    def reset(self) -> int | None:
        return self._cluster().reset()

    def clear(self, key: str) -> None:
        self._cluster().clear(key)


# -- one Redis call per rate-limited request ---------------------------------------------

ONE_TRIP_PREFIX = "maskline+"

# INCRBY, the window's expiry on its first hit, and what the headers need (the
# count and the seconds left), in one call. As limits' own incr_expire.lua,
# plus the TTL.
_INCR_TTL = """
local amount = tonumber(ARGV[2])
local current = redis.call("INCRBY", KEYS[1], amount)
if current == amount then redis.call("EXPIRE", KEYS[1], ARGV[1]) end
return {current, redis.call("TTL", KEYS[1])}
"""

# How long a hit's answer stands in for reading the counter again: the
# headers Flask-Limiter adds are read right after the hit, in the same request.
_MEMO_SECONDS = 0.5


def one_trip_uri(redis_uri: str) -> str:
    """The storage URI for a single Redis that selects :class:`OneTripRedisStorage`."""
    return ONE_TRIP_PREFIX + redis_uri


class OneTripRedisStorage(RedisStorage):
    """limits' Redis storage, in one round trip per rate-limited request.

    Flask-Limiter counts a hit (``incr``), then reads the counter and its
    expiry again (``get``, ``get_expiry``) for the ``X-RateLimit-*``
    headers: three round trips. Here the hit's script returns the count and
    the seconds left together, and this thread's next reads of that key
    within half a second are answered from them.
    """

    STORAGE_SCHEME = [ONE_TRIP_PREFIX + "redis", ONE_TRIP_PREFIX + "rediss"]

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri.removeprefix(ONE_TRIP_PREFIX), **options)
        self._memo = threading.local()

    def initialize_storage(self, _uri: str) -> None:
        super().initialize_storage(_uri)
        self.lua_incr_ttl = self.get_connection().register_script(_INCR_TTL.encode())

    def _known(self, key: str) -> tuple[int, float] | None:
        memo: dict[str, tuple[int, float, float]] = getattr(self._memo, "hits", {})
        found = memo.get(key)
        if found is None or time.monotonic() - found[2] > _MEMO_SECONDS:
            return None
        return found[0], found[1]

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        prefixed = self.prefixed_key(key)
        count, ttl = self.lua_incr_ttl([prefixed], [expiry, amount])
        # Only the latest hit of each key: one entry per limit of the request.
        hits = getattr(self._memo, "hits", None)
        if hits is None:
            hits = self._memo.hits = {}
        hits[key] = (int(count), max(int(ttl), 0) + time.time(), time.monotonic())
        return int(count)

    def get(self, key: str) -> int:
        known = self._known(key)
        return known[0] if known is not None else super().get(key)

    def get_expiry(self, key: str) -> float:
        known = self._known(key)
        return known[1] if known is not None else super().get_expiry(key)
