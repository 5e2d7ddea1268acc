"""Drills on the webhooks: Redis killed or frozen while ``maskline serve`` takes calls.

A throwaway Redis and PostgreSQL, and the real server (gunicorn, two
workers) driven over HTTP by the carrier simulator. What must hold: while
Redis is gone or frozen, every call is answered HTTP 200 with the apology
(``<Say>`` then ``<Hangup/>``), never a ``<Dial>`` and never a 500; status
callbacks are answered 200; texts are forwarded to no one. When Redis is
back, calls route again: after a freeze at once, after a restart (empty)
once the server has rebuilt its routes from SQL by itself.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from maskline.sim.carrier import VOICE_PATH, CallResult, CarrierSimulator, HttpTransport
from maskline.sim.twiml import parse_twiml
from maskline.webhooks.twiml import PROMPTS
from tests.e2e.conftest import Cli, RunningServer, maskline_environ, serving
from tests.slow.conftest import ThrowawayPostgres, ThrowawayRedis

pytestmark = pytest.mark.slow

AUTH_TOKEN = "drill-twilio-auth-token"
PUBLIC_URL = "https://maskline.example.test"
RELAYS = ("+14155550100", "+14155550101")
BUYER, MERCHANT, COURIER = "+14155550132", "+12125550143", "+13125550154"
APOLOGY = PROMPTS["en-US"].apology


@dataclass
class Drill:
    cli: Cli
    server: RunningServer
    carrier: CarrierSimulator
    axb: dict[str, str]  # the bindings as `maskline bind` printed them
    axe: dict[str, str]

    @property
    def axb_relay(self) -> str:
        return self.axb["relay_number"]

    @property
    def axe_relay(self) -> str:
        return self.axe["relay_number"]

    @property
    def extension(self) -> str:
        return self.axe["extension"]

    def call(self, caller: str, relay: str, **kw: object) -> CallResult:
        return self.carrier.call(from_number=caller, to_number=relay, **kw)  # type: ignore[arg-type]

    def readyz(self) -> int:
        try:
            with urllib.request.urlopen(self.server.base_url + "/readyz", timeout=30) as response:  # noqa: S310
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)


@pytest.fixture
def drill(
    throwaway_postgres: ThrowawayPostgres, throwaway_redis: ThrowawayRedis, tmp_path: Path
) -> Iterator[Drill]:
    instance = tmp_path / "instance"
    env = maskline_environ(
        instance,
        throwaway_postgres.url,
        throwaway_redis.url,
        MASKLINE_TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        MASKLINE_PUBLIC_URL=PUBLIC_URL,
    )
    cli = Cli(instance_path=instance, env=env)
    cli.run("init")
    cli.run("pool", "add", *RELAYS)
    axb = cli.out(
        "bind",
        "--order",
        "o-1",
        "--mode",
        "axb",
        "--party",
        f"buyer={BUYER}",
        "--party",
        f"merchant={MERCHANT}",
    )
    axe = cli.out("bind", "--order", "o-2", "--mode", "axe", "--party", f"buyer={BUYER}", "--allow", COURIER)
    with serving(cli, tmp_path / "serve.log") as server:
        carrier = CarrierSimulator(
            transport=HttpTransport(server.base_url, timeout=60), auth_token=AUTH_TOKEN, public_url=PUBLIC_URL
        )
        yield Drill(cli=cli, server=server, carrier=carrier, axb=json.loads(axb), axe=json.loads(axe))


def assert_apology(result: CallResult) -> None:
    """HTTP 200, the apology said, then hang up; nobody dialed."""
    assert (result.outcome, result.http_status, result.dialed) == ("rejected", 200, None), result
    assert result.said == [APOLOGY], result


def _when_routed_again(drill: Drill, *, attempts: int = 600) -> CallResult:
    """Call (bounded, 0.05 s apart) until the merchant's call connects again."""
    for _ in range(attempts):
        result = drill.call(MERCHANT, drill.axb_relay)
        if result.outcome == "connected":
            return result
        assert_apology(result)  # until the routes are back: the apology, nothing else
        time.sleep(0.05)  # polling for the rebuild, bounded by ``attempts``
    raise AssertionError("calls never routed again after Redis came back empty: no rebuild from SQL")


def test_redis_killed_during_calls_gets_apologies_then_routes_again_once_restarted_empty(
    drill: Drill, throwaway_redis: ThrowawayRedis
) -> None:
    live = drill.call(MERCHANT, drill.axb_relay)
    assert (live.outcome, live.dialed) == ("connected", BUYER)
    ringing = drill.call(COURIER, drill.axe_relay)  # asked for the extension
    assert ringing.outcome == "gather"

    throwaway_redis.kill()

    # The courier keys the extension of the call already in progress.
    form = {"CallSid": ringing.call_sid, "From": COURIER, "To": drill.axe_relay, "Digits": drill.extension}
    status, body = drill.carrier.signed_post("/webhooks/twilio/voice/extension?attempt=1", form)
    keyed = parse_twiml(body)
    assert (status, keyed.dial_number, keyed.said, keyed.hangup) == (200, None, [APOLOGY], True)
    for caller, relay in [(MERCHANT, drill.axb_relay), (BUYER, drill.axb_relay), (COURIER, drill.axe_relay)]:
        assert_apology(drill.call(caller, relay))
    text = drill.carrier.sms(from_number=BUYER, to_number=drill.axb_relay, body="hello?")
    assert (text.http_status, text.outcome, text.messages) == (200, "refused", [])
    assert (
        drill.carrier.call_status(call_sid=live.call_sid, from_number=MERCHANT, to_number=drill.axb_relay)
        == 200
    )
    assert drill.readyz() == 503

    rebuilds = drill.server.log_text().count("rebuilt routes for")  # the one at start-up
    throwaway_redis.start()  # the same port, nothing in it
    with throwaway_redis.client() as client:
        assert client.dbsize() == 0

    # Nobody runs `maskline routes rebuild`: the server sees its routes gone and rebuilds them from SQL.
    again = _when_routed_again(drill)
    assert (again.dialed, again.caller_id) == (BUYER, drill.axb_relay)
    assert drill.server.log_text().count("rebuilt routes for") > rebuilds
    assert drill.call(BUYER, drill.axb_relay).dialed == MERCHANT
    courier = drill.call(COURIER, drill.axe_relay, digits=[drill.extension])
    assert (courier.outcome, courier.dialed) == ("connected", BUYER)
    assert drill.readyz() == 200


def test_redis_frozen_during_calls_gets_apologies_then_routes_again_at_once(
    drill: Drill, throwaway_redis: ThrowawayRedis
) -> None:
    form = {"CallSid": "CA" + "f" * 32, "From": MERCHANT, "To": drill.axb_relay, "CallStatus": "ringing"}
    live = drill.carrier.signed_post(VOICE_PATH, form)
    assert parse_twiml(live[1]).dial_number == BUYER

    throwaway_redis.freeze()
    try:
        during = drill.call(BUYER, drill.axb_relay)
        # A Twilio retry of the live call cannot read its stored answer.
        retry = drill.carrier.signed_post(VOICE_PATH, form)
        callback = drill.carrier.call_status(
            call_sid=form["CallSid"], from_number=MERCHANT, to_number=drill.axb_relay
        )
    finally:
        throwaway_redis.thaw()

    assert_apology(during)
    retried = parse_twiml(retry[1])
    assert (retry[0], retried.dial_number, retried.said, retried.hangup) == (200, None, [APOLOGY], True)
    assert callback == 200
    after = drill.call(BUYER, drill.axb_relay)
    assert (after.outcome, after.dialed, after.caller_id) == ("connected", MERCHANT, drill.axb_relay)
