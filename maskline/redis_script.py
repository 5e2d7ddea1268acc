"""One Lua script call in one round trip, with as little client work as redis-py allows.

A webhook connect is one EVALSHA. Through redis-py's command path that call
costs as much client CPU as the round trip itself (per-command
observability hooks, the retry wrapper, response callbacks, two pool
look-ups). On a plain ``redis.Redis`` the call here takes a pooled
connection, sends the command and reads the reply, nothing else; a cluster
client, fakeredis, or anything unusual (the script not loaded yet, a
connection that turns out dead) goes through the script object as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError


def call_script(client: Any, script: Any, *, keys: Sequence[Any], args: Sequence[Any]) -> Any:
    """``script(keys=keys, args=args)``, the same reply and the same errors."""
    if type(client) is not redis.Redis:
        return script(keys=keys, args=args)
    pool = client.connection_pool
    conn: Any = pool.get_connection()
    try:
        conn.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
        return conn.read_response()
    except NoScriptError:
        pass  # a Redis that has not seen the script (a restart, a failover): loaded below
    except RedisConnectionError:
        # A pooled connection the server closed (a Redis restart): dropped, and
        # the call made once more on a fresh one, as redis-py's own path does.
        conn.disconnect()
    except BaseException:
        # A timeout or anything else mid-reply: the connection may hold a
        # late answer, so it is never used again.
        conn.disconnect()
        raise
    finally:
        pool.release(conn)
    return script(keys=keys, args=args)
