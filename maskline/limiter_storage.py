"""The rate limiter's Redis Cluster storage, connected on first use.

The ``limits`` library's :class:`~limits.storage.RedisClusterStorage` asks the
cluster for its slot map in its constructor, and Flask-Limiter builds it
while the app is built: with the cluster down, ``create_app()`` would fail,
and ``maskline serve`` could not start at all. Built on first use instead,
a cluster that is down costs each rate-limited request a failed connect,
which Flask-Limiter swallows (rate limits fail open, and say so in the log).
"""

from __future__ import annotations

import threading
from typing import Any

from limits.storage import RedisClusterStorage, Storage

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
