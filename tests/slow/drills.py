"""Shared pieces of the failure drills (``test_drill_*.py``).

A drill sets up maskline on its own throwaway PostgreSQL and Redis with the
real ``maskline`` command, serves it with ``maskline serve`` (gunicorn), and
talks to it as its clients do: signed Twilio webhooks from the carrier
simulator, and JSON over HTTP with an API key. Background traffic runs in
threads while the drill breaks a backend, and every answer is kept, so the
drill can check afterwards that each one was a clean outcome.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from config import load_settings
from maskline.clock import Clock, system_clock
from maskline.numbers.interfaces import BindingView, BindRequest
from maskline.sim.carrier import CallResult, CarrierSimulator, HttpTransport
from maskline.webhooks.twiml import PROMPTS
from maskline.wiring import Services, build_services
from tests.e2e.conftest import Cli, RunningServer, maskline_environ
from tests.slow.conftest import ThrowawayPostgres, ThrowawayRedis

AUTH_TOKEN = "drill-twilio-auth-token"
PUBLIC_URL = "https://maskline.example.test"
RELAYS = ("+14155550100", "+14155550101", "+14155550102")
BUYER, MERCHANT, COURIER = "+14155550132", "+12125550143", "+13125550154"
STRANGER = "+16175550199"
APOLOGY = PROMPTS["en-US"].apology
# A bound on waiting for a traffic thread to make progress, never a measurement.
PROGRESS_WAIT_SECONDS = 120

T = TypeVar("T")


def buyer(i: int) -> str:
    """The i-th buyer of generated traffic (distinct from the fixed parties)."""
    return f"+1415555{2000 + i:04d}"


def merchant(i: int) -> str:
    """The i-th merchant of generated traffic."""
    return f"+1212555{2000 + i:04d}"


def national_digits(e164: str) -> str:
    """What a leak of ``e164`` looks like in any format: its last ten digits."""
    return e164[-10:]


def assert_no_party_number(text: str, numbers: Iterator[str] | list[str] | tuple[str, ...]) -> None:
    """No party number (in E.164 or national digits) appears in ``text``."""
    for number in numbers:
        assert national_digits(number) not in text, "an answer carried a party number"


def drill_cli(pg: ThrowawayPostgres, rds: ThrowawayRedis, tmp_path: Path) -> Cli:
    """``maskline init`` and a pool of RELAYS on the throwaway servers."""
    instance = tmp_path / "instance"
    env = maskline_environ(
        instance,
        pg.url,
        rds.url,
        MASKLINE_TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        MASKLINE_PUBLIC_URL=PUBLIC_URL,
        # Drill traffic calls one binding far more often than people do: no
        # call quota may turn its answers into refusals.
        MASKLINE_CALLS_PER_HOUR="100000",
        MASKLINE_CALLS_PER_DAY="100000",
    )
    cli = Cli(instance_path=instance, env=env)
    cli.run("init")
    cli.run("pool", "add", *RELAYS)
    return cli


def bind(cli: Cli, order: str, mode: str, *parties: str, allow: str | None = None) -> dict[str, Any]:
    """``maskline bind`` (parties as ROLE=NUMBER); the binding as printed."""
    args = ["bind", "--order", order, "--mode", mode]
    for party in parties:
        args += ["--party", party]
    if allow is not None:
        args += ["--allow", allow]
    printed: dict[str, Any] = json.loads(cli.out(*args))
    return printed


@contextmanager
def in_process(cli: Cli, *, clock: Clock = system_clock) -> Iterator[Services]:
    """maskline's services in this process, configured as ``cli`` runs it."""
    services = build_services(load_settings(environ=cli.env), clock=clock)
    try:
        yield services
    finally:
        services.close()


def axb(services: Services, order: str, buyer: str, merchant: str, **kw: Any) -> BindingView:
    """An axb binding of ``buyer`` and ``merchant``, made as the CLI makes it."""
    request = BindRequest(order_id=order, mode="axb", parties={"buyer": buyer, "merchant": merchant}, **kw)
    return services.numbers.bindings.bind(request)


def carrier_for(server: RunningServer) -> CarrierSimulator:
    """The carrier simulator, signing for PUBLIC_URL, posting to ``server``."""
    return CarrierSimulator(
        transport=HttpTransport(server.base_url, timeout=60), auth_token=AUTH_TOKEN, public_url=PUBLIC_URL
    )


def assert_apology(result: CallResult) -> None:
    """HTTP 200, the apology (routing unavailable, not "no binding"), hang up; nobody dialed."""
    assert (result.outcome, result.http_status, result.dialed) == ("rejected", 200, None), result
    assert result.said == [APOLOGY], result


def assert_refused(result: CallResult) -> None:
    """HTTP 200 and a refusal that is not the apology: routing ran and found no live binding."""
    assert (result.outcome, result.http_status, result.dialed) == ("rejected", 200, None), result
    assert APOLOGY not in result.said, result


# -- the REST API ------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text)


@dataclass
class ApiClient:
    """``/v1`` over HTTP with one API key."""

    base_url: str
    key: str

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Reply:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 (loopback)
            self.base_url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.key}",
                "Content-Type": "application/json",
                **(headers or {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                return Reply(int(response.status), dict(response.headers), response.read().decode())
        except urllib.error.HTTPError as exc:
            return Reply(int(exc.code), dict(exc.headers), exc.read().decode(errors="replace"))

    def create_binding(self, order: str, parties: dict[str, str], *, key: str | None = None) -> Reply:
        body = {"order_id": order, "mode": "axb", "parties": parties}
        return self.request("POST", "/v1/bindings", body, {"Idempotency-Key": key} if key else None)


def api_client(cli: Cli, server: RunningServer) -> ApiClient:
    """A key with the bindings scopes, made with ``maskline apikey create``."""
    created = cli.run(
        "apikey", "create", "--name", "drill", "--owner", "shop", "--scope", "bindings:write",
        "--scope", "bindings:read",
    )  # fmt: skip
    return ApiClient(base_url=server.base_url, key=json.loads(created.stdout)["key"])


def assert_clean_503(reply: Reply) -> None:
    """A 503 a client can act on: a JSON error and a Retry-After, never a traceback."""
    assert reply.status == 503, reply
    assert reply.json["error"]["code"] == "unavailable", reply
    assert int(reply.headers["Retry-After"]) >= 1, reply
    assert "Traceback" not in reply.text


# -- background traffic ------------------------------------------------------------


@dataclass
class Traffic(Generic[T]):
    """``step(i)`` for i = 0, 1, 2... in a thread until stopped; keeps every outcome.

    ``step`` returns what it saw; an exception it raises is kept too and
    stops the thread (a drill asserts there were none).
    """

    step: Callable[[int], T]
    outcomes: list[T] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _progress: threading.Condition = field(default_factory=threading.Condition)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            try:
                outcome = self.step(i)
            except BaseException as exc:  # kept for the drill to report
                with self._progress:
                    self.errors.append(exc)
                    self._progress.notify_all()
                return
            with self._progress:
                self.outcomes.append(outcome)
                self._progress.notify_all()
            i += 1

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> list[T]:
        """Stop after the step in progress; returns every outcome."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        assert self.errors == [], self.errors
        return list(self.outcomes)

    def wait_until(self, done: Callable[[list[T]], bool]) -> None:
        """Until ``done(outcomes)`` holds (checked at each new outcome, bounded)."""
        with self._progress:
            ok = self._progress.wait_for(
                lambda: bool(self.errors) or done(self.outcomes), timeout=PROGRESS_WAIT_SECONDS
            )
        assert self.errors == [], self.errors
        assert ok, f"traffic made no progress: {len(self.outcomes)} outcomes"

    def wait_for_more(self, count: int) -> None:
        """Until ``count`` more outcomes than now have been seen."""
        target = len(self.outcomes) + count
        self.wait_until(lambda outcomes: len(outcomes) >= target)


@contextmanager
def running(*traffic: Traffic[Any]) -> Iterator[None]:
    """Start the traffic; stop it on the way out, whatever happened."""
    for t in traffic:
        t.start()
    try:
        yield
    finally:
        for t in traffic:
            t._stop.set()
        for t in traffic:
            if t._thread is not None:
                t._thread.join()
