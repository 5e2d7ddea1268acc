"""Choosing the Redis client from configuration.

* ``MASKLINE_REDIS_URL`` set: a real Redis (redis-py); a ``redis+cluster://``
  URL gives redis-py's cluster client, which sends each command to the
  primary owning its key's slot.
* unset (development): the embedded fakeredis TCP server that ``maskline
  serve`` started, found through its port file under the instance folder;
  with none running, an in-process fakeredis, said loudly. Both are
  configuration choices for ``make run``, not test hooks.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster

from config.redis_url import is_cluster_url, parse_cluster_url

log = logging.getLogger(__name__)

# What any Redis command may raise. redis-py's cluster client also raises
# RedisClusterException subclasses (SlotNotCoveredError while slots move or a
# primary is down, "cannot be connected"), which do not derive from RedisError:
# a caller that must fail closed catches both.
REDIS_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.RedisError,
    redis.exceptions.RedisClusterException,
)

PORT_FILE_NAME = "embedded-redis.json"


def port_file(instance_path: Path) -> Path:
    return instance_path / PORT_FILE_NAME


@dataclass(frozen=True, slots=True)
class EmbeddedServer:
    """A running embedded Redis, as its port file records it."""

    port: int
    pid: int


def read_embedded_server(instance_path: Path) -> EmbeddedServer | None:
    """The embedded server of ``instance_path``, if its port file is current."""
    path = port_file(instance_path)
    try:
        info = json.loads(path.read_text())
        server = EmbeddedServer(port=int(info["port"]), pid=int(info["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(server.pid, 0)
    except ProcessLookupError:
        return None  # stale file from a server that is gone
    except PermissionError:
        pass  # alive, but another user's process
    return server


def read_embedded_port(instance_path: Path) -> int | None:
    """The port of a running embedded server, if its port file is current."""
    server = read_embedded_server(instance_path)
    return None if server is None else server.port


def connect(redis_url: str | None, *, instance_path: Path, timeout: float = 2.0, quiet: bool = False) -> Any:
    """A Redis client for ``redis_url``; ``None`` means the embedded server.

    ``timeout`` bounds connecting and every reply (seconds). ``quiet`` skips
    the development warnings (for a second client in the same process).
    """
    if is_cluster_url(redis_url):
        return connect_cluster(redis_url or "", timeout=timeout)
    if redis_url:
        return redis.Redis.from_url(redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
    port = read_embedded_port(instance_path)
    if port is not None:
        if not quiet:
            # `serve` warns once that it started this server; every process
            # that connects to it (its workers, each CLI command) only notes it.
            log.debug("using the embedded development Redis on 127.0.0.1:%d (not for production)", port)
        return redis.Redis(
            host="127.0.0.1", port=port, socket_timeout=timeout, socket_connect_timeout=timeout
        )
    import fakeredis

    # INFO, not a warning: every CLI command run without `serve` gets here.
    log.info(
        "no Redis configured and no embedded server running: using an in-process "
        "fakeredis (development only; routes are rebuilt from SQL)"
    )
    return fakeredis.FakeRedis()


def connect_cluster(redis_url: str, *, timeout: float) -> RedisCluster:
    """A cluster client over the startup nodes of a ``redis+cluster://`` URL.

    redis-py asks the nodes for the slot map here, at once (not at first
    use): an unreachable cluster raises ``redis.exceptions.ConnectionError``
    (a RedisError, like a down single Redis at its first command), its
    message naming no node or password.
    """
    url = parse_cluster_url("MASKLINE_REDIS_URL", redis_url)
    nodes = [ClusterNode(host, port) for host, port in url.nodes]  # type: ignore[no-untyped-call]
    try:
        return RedisCluster(
            startup_nodes=nodes,
            username=url.username,
            password=url.password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
    except REDIS_ERRORS as exc:
        raise redis.exceptions.ConnectionError(f"Redis Cluster unreachable: {type(exc).__name__}") from None


def is_cluster(client: Any) -> bool:
    """True for redis-py's cluster client."""
    return isinstance(client, RedisCluster)


def ping(client: Any) -> bool:
    """PING every primary of a cluster (redis-py pings one node by default),
    or the one server otherwise; raises what the client raises."""
    if is_cluster(client):
        return bool(client.ping(target_nodes=RedisCluster.PRIMARIES))
    return bool(client.ping())


def is_in_process(client: Any) -> bool:
    """True for the in-process fakeredis fallback, which starts empty in every process."""
    return type(client).__module__.startswith("fakeredis")


def storage_uri(redis_url: str | None, *, instance_path: Path) -> str:
    """Where Flask-Limiter keeps its counters: the same Redis as routing.

    The in-process fakeredis cannot be shared, so the counters then live in
    this process's memory (development only, like that Redis itself). The
    ``limits`` library reads ``redis+cluster://host:port,...`` itself; each
    counter is one key, so it needs no cross-slot command. A cluster URL is
    given a scheme of maskline's that connects on first use, not while the
    app is built (see :mod:`maskline.limiter_storage`).
    """
    if is_cluster_url(redis_url):
        from maskline.limiter_storage import lazy_cluster_uri  # registers its scheme with limits

        return lazy_cluster_uri(redis_url or "")
    from maskline.limiter_storage import one_trip_uri  # registers its scheme with limits

    if redis_url:
        return one_trip_uri(redis_url) if redis_url.startswith(("redis://", "rediss://")) else redis_url
    port = read_embedded_port(instance_path)
    return one_trip_uri(f"redis://127.0.0.1:{port}/0") if port is not None else "memory://"
