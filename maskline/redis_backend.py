"""Choosing the Redis client from configuration.

* ``MASKLINE_REDIS_URL`` set: a real Redis (redis-py).
* unset (development): the embedded fakeredis TCP server that ``maskline
  serve`` started, found through its port file under the instance folder;
  with none running, an in-process fakeredis, said loudly. Both are
  configuration choices for ``make run``, not test hooks.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import redis

log = logging.getLogger(__name__)

PORT_FILE_NAME = "embedded-redis.json"


def port_file(instance_path: Path) -> Path:
    return instance_path / PORT_FILE_NAME


def read_embedded_port(instance_path: Path) -> int | None:
    """The port of a running embedded server, if its port file is current."""
    path = port_file(instance_path)
    try:
        info = json.loads(path.read_text())
        port, pid = int(info["port"]), int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except OSError:
        return None  # stale file from a server that is gone
    return port


def connect(redis_url: str | None, *, instance_path: Path) -> Any:
    """A Redis client for ``redis_url``; ``None`` means the embedded server."""
    if redis_url:
        return redis.Redis.from_url(redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
    port = read_embedded_port(instance_path)
    if port is not None:
        log.warning("using the embedded development Redis on 127.0.0.1:%d (not for production)", port)
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2.0)
    import fakeredis

    log.warning(
        "no Redis configured and no embedded server running: using an in-process "
        "fakeredis (development only; routes are rebuilt from SQL)"
    )
    return fakeredis.FakeRedis()
