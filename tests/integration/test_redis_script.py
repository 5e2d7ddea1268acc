"""call_script: a Lua script in one round trip, the same reply and errors as the script object.

On a real Redis this takes the direct path (one pooled connection, no
redis-py command machinery); on fakeredis, the script object itself. Both
must answer the same.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
import redis

from maskline.redis_script import call_script

_ECHO = "return {KEYS[1], ARGV[1], #ARGV}"


def _fresh(client: Any, source: str = _ECHO) -> Any:
    # A comment of its own: a script no Redis has seen (so not yet loaded).
    return client.register_script(f"-- {secrets.token_hex(8)}\n{source}")


def test_the_reply_is_the_script_objects_reply(redis_client: Any) -> None:
    script = _fresh(redis_client)
    keys, args = ["ml:{+14155550100}"], [b"\x00\xffraw", 42, "two"]
    # The first call finds the script not loaded (NOSCRIPT) and loads it.
    first = call_script(redis_client, script, keys=keys, args=args)
    assert first == script(keys=keys, args=args)
    assert first == [b"ml:{+14155550100}", b"\x00\xffraw", 3]
    assert call_script(redis_client, script, keys=keys, args=args) == first  # loaded now


def test_an_error_of_the_script_is_raised_as_redis_py_raises_it(redis_client: Any) -> None:
    script = _fresh(redis_client, "return redis.error_reply('BUSYKEY nope')")
    with pytest.raises(redis.exceptions.ResponseError) as direct:
        call_script(redis_client, script, keys=["k"], args=[])
    with pytest.raises(redis.exceptions.ResponseError) as through_redis_py:
        script(keys=["k"], args=[])
    assert str(direct.value) == str(through_redis_py.value)
    # The connection stays usable after an error reply.
    assert call_script(redis_client, _fresh(redis_client), keys=["k"], args=["v"]) == [b"k", b"v", 1]


def test_a_connection_the_server_closed_is_replaced_and_the_call_made_again(redis_client: Any) -> None:
    if type(redis_client) is not redis.Redis:
        return  # fakeredis: no server connection to lose
    pool = redis_client.connection_pool
    pool.disconnect()
    script = _fresh(redis_client)
    call_script(redis_client, script, keys=["k"], args=["v"])  # one pooled connection now
    conn = pool.get_connection()
    try:
        conn.send_command("CLIENT", "ID")
        mine = conn.read_response()
    finally:
        pool.release(conn)
    killer = redis.Redis(connection_pool=redis.ConnectionPool(**pool.connection_kwargs))
    try:
        assert killer.client_kill_filter(_id=mine) == 1
    finally:
        killer.close()
    assert call_script(redis_client, script, keys=["k"], args=["again"]) == [b"k", b"again", 1]


def test_a_timeout_leaves_no_connection_holding_a_late_reply(redis_client: Any) -> None:
    if type(redis_client) is not redis.Redis:
        return  # fakeredis: no timeouts
    kwargs = dict(redis_client.connection_pool.connection_kwargs, socket_timeout=0.05)
    client = redis.Redis(connection_pool=redis.ConnectionPool(**kwargs))
    try:
        slow = _fresh(
            client,
            "local t = redis.call('TIME'); local s = t[1] * 1e6 + t[2]\n"
            "repeat local n = redis.call('TIME') until n[1] * 1e6 + n[2] - s > 150000\n"
            "return ARGV[1]",
        )
        redis_client.script_load(slow.script)  # loaded, so the direct path runs it
        with pytest.raises(redis.exceptions.TimeoutError):
            call_script(client, slow, keys=["k"], args=["late"])
        redis_client.ping()  # answered once the slow script is over
        # The next call on the pool never reads the late "late".
        quick = _fresh(client)
        assert call_script(client, quick, keys=["k"], args=["now"]) == [b"k", b"now", 1]
    finally:
        client.close()
