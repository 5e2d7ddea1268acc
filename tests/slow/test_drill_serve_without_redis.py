"""Drill: ``maskline serve`` (re)started while Redis is down.

A restart during a Redis outage must give a degraded service, not none: the
server starts (one clear log line instead of the start-up route rebuild),
is alive but not ready, answers webhooks with the apology and binding
creation with a clean 503. When Redis comes back (empty: it kept nothing),
the same server process becomes ready, rebuilds the routes from SQL by
itself, and a fresh binding routes; nobody restarts anything.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningServer, serving
from tests.slow.conftest import ThrowawayPostgres, ThrowawayRedis
from tests.slow.drills import (
    BUYER,
    MERCHANT,
    ApiClient,
    Reply,
    api_client,
    assert_apology,
    assert_clean_503,
    axb,
    buyer,
    carrier_for,
    drill_cli,
    in_process,
    merchant,
)

pytestmark = pytest.mark.slow

NEW_PARTIES = {"buyer": buyer(7), "merchant": merchant(7)}
ATTEMPTS = 600  # bounded polling of real state, 0.05 s apart
UNREACHABLE_LINE = "Redis is unreachable"


def health(server: RunningServer, path: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(server.base_url + path, timeout=30) as response:  # noqa: S310 (loopback)
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), json.loads(exc.read())


def poll(probe_ok: Callable[[], bool], what: str) -> None:
    """Call ``probe_ok()`` until it is true, a bounded number of times."""
    for _ in range(ATTEMPTS):
        if probe_ok():
            return
        time.sleep(0.05)  # polling, bounded by ATTEMPTS
    raise AssertionError(f"never happened: {what}")


def create(api: ApiClient) -> Reply:
    return api.create_binding("o-new", NEW_PARTIES, key="k-new")


def test_serve_starts_while_redis_is_down_and_recovers_when_it_is_back(
    throwaway_postgres: ThrowawayPostgres, throwaway_redis: ThrowawayRedis, tmp_path: Path
) -> None:
    cli = drill_cli(throwaway_postgres, throwaway_redis, tmp_path)
    with in_process(cli) as services:
        live = axb(services, "o-live", BUYER, MERCHANT)
    throwaway_redis.kill()  # nothing listens on its port now

    with serving(cli, tmp_path / "serve.log") as server:
        master = server.process.pid
        assert server.log_text().count(UNREACHABLE_LINE) == 1
        assert health(server, "/healthz") == (200, {"status": "ok"})
        status, body = health(server, "/readyz")
        assert (status, body["checks"]) == (503, {"database": "ok", "redis": "unavailable"})
        carrier = carrier_for(server)
        assert_apology(carrier.call(from_number=MERCHANT, to_number=live.relay_number))
        api = api_client(cli, server)
        assert_clean_503(create(api))

        throwaway_redis.start()  # back, and empty: no routes, no generation markers

        poll(lambda: health(server, "/readyz")[0] == 200, "/readyz ready once Redis is back")
        poll(lambda: create(api).status != 503, "binding creation once Redis is back")
        created = create(api)  # the same Idempotency-Key: the binding made above
        assert created.status == 201, created
        call = carrier.call(from_number=NEW_PARTIES["merchant"], to_number=created.json["relay_number"])
        assert (call.dialed, call.caller_id) == (NEW_PARTIES["buyer"], created.json["relay_number"])
        # The binding made before the outage is routed again too: rebuilt from SQL.
        old = carrier.call(from_number=MERCHANT, to_number=live.relay_number)
        assert (old.dialed, old.caller_id) == (BUYER, live.relay_number)
        assert server.process.poll() is None and server.process.pid == master  # no restart
