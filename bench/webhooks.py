"""Benchmark of the Twilio voice webhook under gunicorn (not a test: prints figures, never asserts on time).

* signed voice webhooks per second through ``maskline serve`` (a merchant
  calls the buyer: signature, fields, de-duplication record, Lua resolve,
  quota, vault open from PostgreSQL, ``<Dial>``), against a bare Flask
  endpoint that returns constant TwiML (bench/bare_twiml_app.py) under the
  same gunicorn options, worker count and bind style, in the same run, as a
  ratio maskline / bare. Rounds are interleaved and alternate which server
  goes first, so drift in machine load hits both alike; the ratio is the
  median of the rounds' ratios, printed with its interquartile range.
* p50 and p99 latency of both: under that load, and with a single client.
* the answer while Redis is down, in two cases: the Redis process frozen
  (SIGSTOP: connections are accepted by the kernel and nothing answers, so
  the client's socket timeout applies) and killed (connection refused). Each
  answer must be HTTP 200 with the apology TwiML; its latency is recorded.

Targets: ratio >= 0.6, and maskline's p99 < 3x its p50 under load. They are
reported, never asserted: a missed target does not fail the run.

The load generator is wrk, in a process of its own (bench/loadgen.py,
bench/replay.lua), with one connection per request (gunicorn's sync
workers close every connection). It replays requests signed before any
timing starts, each with a distinct CallSid (a repeated one would be a
de-duplicated retry, a cheaper path), and checks every answer (HTTP 200 with
a ``<Dial>``); failures are counted, printed, and make the run exit 1. An
unexpected answer during set-up stops the run. On a 2-CPU machine the
generator competes with the servers; it is the same for both. The CPU time
of each server's processes (and, for maskline, of its Redis and its
PostgreSQL backends) is read from /proc over each round, which gives calls
per CPU-second: the per-core figure a capacity plan needs. The Redis-down
probes are single requests sent one at a time from this process: they time
the fallback, they are not load.

Set-up: PostgreSQL ``--database-url`` (default ``$MASKLINE_BENCH_DATABASE_URL``
or the local ``bench`` database; its tables are dropped and re-created), a
throwaway ``redis-server`` on a free port (never the machine's shared Redis),
a development instance folder in a temporary directory (``maskline init``
makes its key ring), then ``maskline pool add`` and ``maskline bind``. The
per-binding call quotas are raised to their maximum, or the bench would
measure the quota refusal after 20 calls.

    python bench/webhooks.py [--quick | --smoke] [--json out.json] [--database-url URL] [--workers 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder would come first on sys.path, and
# bench/numbers.py would shadow the standard library's numbers module (which
# decimal, fractions and statistics import).
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from bench.loadgen import (
    CpuMeter,
    LoadResult,
    postgres_backends,
    process_tree,
    redact,
    run_wrk,
    wrk_version,
)
from maskline.sim.carrier import VOICE_PATH
from maskline.webhooks import twiml

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/bench"
PUBLIC_URL = "https://relay.bench.invalid"
ACCOUNT_SID = "AC" + "0" * 32
TARGET_RATIO = 0.6
TARGET_TAIL = 3.0  # p99 / p50
# A bound on one request, so that a hang cannot stall the run; gunicorn's
# own worker timeout (30 s) is below it.
REQUEST_TIMEOUT = 60.0
COMMAND_TIMEOUT = 120
START_TIMEOUT = 60


# -- processes -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def maskline_executable() -> str:
    candidate = Path(sys.executable).parent / "maskline"
    return str(candidate) if candidate.exists() else "maskline"


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (gunicorn stops its workers gracefully), SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGCONT)  # a frozen Redis would never see the SIGTERM
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until(
    ready: Callable[[], bool], process: subprocess.Popen[bytes], what: str, *, log: Path | None = None
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                f"bench: {what} exited with status {process.returncode} while starting{tail(log)}"
            )
        if ready():
            return
        time.sleep(0.1)
    raise SystemExit(f"bench: {what} did not start within {START_TIMEOUT} s{tail(log)}")


def tail(log: Path | None, lines: int = 15) -> str:
    if log is None:
        return ""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    return "; its log ends:\n" + "\n".join(text.splitlines()[-lines:])


def start_redis(port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """A throwaway redis-server of this run's own: no persistence, loopback only."""
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise SystemExit("bench: redis-server not found (Debian's redis-server package)")
    options = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [redis_server, *options, "--daemonize", "no"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def pong() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    wait_until(pong, process, "redis-server")
    return process


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Stack:
    """Everything the run started, to be stopped in reverse order."""

    tmp: Path
    env: dict[str, str]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)

    def log(self, name: str) -> IO[bytes]:
        sink = (self.tmp / name).open("wb")
        self.logs.append(sink)
        return sink

    def close(self) -> None:
        for process in reversed(self.processes):
            stop(process)
        for sink in self.logs:
            sink.close()


# -- set-up ------------------------------------------------------------------------


def reset_database(url: str) -> None:
    """Drop maskline's tables (``maskline init`` re-creates them under a fresh key ring)."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    import maskline.models  # noqa: F401 (registers every table on Base.metadata)
    from maskline.db import Base, make_engine

    if make_url(url).database == "test":
        raise SystemExit("bench: refusing the database `test` (the test suite's); use `bench`")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            Base.metadata.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    finally:
        engine.dispose()


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [maskline_executable(), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench: `maskline {' '.join(args[:2])}` failed: {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True)
class Call:
    """Who calls which relay number (a merchant calling the buyer of an axb binding)."""

    caller: str
    relay: str


def set_up_bindings(env: dict[str, str], count: int) -> list[Call]:
    relays = [f"+1415200{i:04d}" for i in range(max(1, count // 5))]
    cli(env, "pool", "add", *relays, "--capabilities", "voice,sms")
    calls = []
    for i in range(count):
        merchant = f"+1773200{i:04d}"
        out = cli(
            env,
            "bind",
            "--order",
            f"bench-{i}",
            "--mode",
            "axb",
            "--party",
            f"buyer=+1312200{i:04d}",
            "--party",
            f"merchant={merchant}",
        )
        calls.append(Call(caller=merchant, relay=json.loads(out)["dial"]["merchant"]))
    return calls


# -- requests ----------------------------------------------------------------------


class Signer:
    """Signed voice-webhook requests, as raw HTTP/1.1 bytes, built before timing."""

    def __init__(self, *, auth_token: str, calls: list[Call]) -> None:
        self.validator = RequestValidator(auth_token)
        self.calls = calls
        self.made = 0

    def requests(self, port: int, count: int) -> list[bytes]:
        made = []
        for _ in range(count):
            call = self.calls[self.made % len(self.calls)]
            self.made += 1
            form = {
                "CallSid": "CA" + secrets.token_hex(16),
                "AccountSid": ACCOUNT_SID,
                "From": call.caller,
                "To": call.relay,
                "CallStatus": "ringing",
                "Direction": "inbound",
                "ApiVersion": "2010-04-01",
            }
            signature = self.validator.compute_signature(PUBLIC_URL + VOICE_PATH, form)
            body = urlencode(form).encode()
            head = (
                f"POST {VOICE_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"X-Twilio-Signature: {signature}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            made.append(head.encode() + body)
        return made


def exchange(port: int, payload: bytes, timeout: float = REQUEST_TIMEOUT) -> tuple[int, bytes]:
    """One request on a fresh connection; (HTTP status, body), read until the server closes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
        sock.sendall(payload)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    finally:
        sock.close()
    data = b"".join(chunks)
    status = int(data[9:12]) if data.startswith(b"HTTP/1.") else 0
    return status, data.partition(b"\r\n\r\n")[2]


# -- load --------------------------------------------------------------------------


def percentiles(latencies: list[float]) -> dict[str, float]:
    """p50, p99 and max in milliseconds of latencies in seconds (for in-process timings)."""
    if len(latencies) < 2:
        raise SystemExit(f"bench: only {len(latencies)} successful requests in a run; see the failures")
    cuts = statistics.quantiles(latencies, n=100)
    return {"p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000, "max_ms": max(latencies) * 1000}


@dataclass
class Side:
    """One server under test: where it listens, how to make requests for it, what it did.

    ``stock(n)`` makes n requests; ``reuse_ok`` says whether a replayed
    request is as good as a new one (the bare server: yes; maskline: no, a
    repeated CallSid is a de-duplicated retry, a cheaper path).
    """

    name: str
    port: int
    stock: Callable[[int], list[bytes]]
    reuse_ok: bool
    meter: CpuMeter | None = None
    rounds: list[LoadResult] = field(default_factory=list)
    best_rate: float = 0.0

    def load(self, *, seconds: float, connections: int, pace_ms: float = 0.0) -> LoadResult:
        # Enough distinct requests for three times the best rate seen so far.
        count = 500 if self.reuse_ok else max(2000, int(3 * self.best_rate * max(1, round(seconds))) + 500)
        result = run_wrk(
            self.port,
            [self.stock(count)],
            seconds=seconds,
            connections=connections,
            expect_status=200,
            expect_body="<Dial",
            meter=self.meter,
            pace_ms=pace_ms,
        )
        if not pace_ms:
            self.best_rate = max(self.best_rate, result.rate)
        return result

    def summary(self, single: LoadResult) -> dict[str, Any]:
        runs = [*self.rounds, single]
        passed = sum(s.passed for s in self.rounds)
        elapsed = sum(s.seconds for s in self.rounds)
        cpu: dict[str, float] = {}
        for s in self.rounds:
            for tier, used in s.cpu.items():
                cpu[tier] = cpu.get(tier, 0.0) + used
        statuses: dict[str, int] = {}
        for s in runs:
            for status, n in s.statuses.items():
                statuses[status] = statuses.get(status, 0) + n
        return {
            "requests": passed,
            "requests_per_s": passed / elapsed if elapsed else 0.0,
            "round_rates": [s.rate for s in self.rounds],
            "failures": sum(s.failures for s in runs),
            "first_failure": next((s.first_failure for s in runs if s.first_failure), None),
            "statuses": statuses,
            "reused": 0 if self.reuse_ok else sum(s.reused for s in runs),
            # wrk gives percentiles per run: these are the medians over the rounds.
            "p50_ms": statistics.median(s.p50_ms for s in self.rounds),
            "p99_ms": statistics.median(s.p99_ms for s in self.rounds),
            "max_ms": max(s.max_ms for s in self.rounds),
            "cpu_seconds": cpu,
            "requests_per_cpu_second": {tier: passed / used for tier, used in cpu.items() if used > 0}
            | ({"all": passed / sum(cpu.values())} if sum(cpu.values()) > 0 else {}),
            "single_client": {
                "requests_per_s": single.rate,
                "p50_ms": single.p50_ms,
                "p99_ms": single.p99_ms,
            },
        }


def check_answer(port: int, payload: bytes, what: str) -> None:
    """A correctness check of the set-up, not of time: the call must connect."""
    status, body = exchange(port, payload)
    if status != 200 or b"<Dial" not in body:
        raise SystemExit(f"bench: {what} answered HTTP {status} without <Dial>: {redact(body[:300])!r}")


def bench_throughput(
    maskline: Side, bare: Side, *, rounds: int, seconds: float, concurrency: int
) -> dict[str, Any]:
    for i in range(rounds):
        order = (maskline, bare) if i % 2 == 0 else (bare, maskline)
        for side in order:
            side.rounds.append(side.load(seconds=seconds, connections=concurrency))
    ratios = [m.rate / b.rate for m, b in zip(maskline.rounds, bare.rounds, strict=True) if b.rate]
    singles = {side.name: side.load(seconds=seconds, connections=1) for side in (maskline, bare)}
    # Latency at a steady half of maskline's peak: what a caller waits for
    # when the server is busy but not saturated (under saturation p99
    # measures the queue, not the server).
    peak = statistics.median(r.rate for r in maskline.rounds) if maskline.rounds else 0.0
    paced = None
    if peak > 0:
        pace_ms = concurrency * 1000.0 / (peak / 2)
        paced = maskline.load(seconds=max(seconds, 3), connections=concurrency, pace_ms=pace_ms)
    if not ratios:
        raise SystemExit("bench: the bare server passed no request; see its failures")
    low, _, high = (
        statistics.quantiles(ratios, n=4, method="inclusive") if len(ratios) > 1 else (ratios[0],) * 3
    )
    m = maskline.summary(singles["maskline"])
    b = bare.summary(singles["bare"])
    web_m = m["requests_per_cpu_second"].get("web")
    web_b = b["requests_per_cpu_second"].get("web")
    return {
        "maskline": m,
        "bare": b,
        "ratio": statistics.median(ratios),
        "ratio_q1": low,
        "ratio_q3": high,
        # Same run, per CPU-second of the web tier alone: the cost of maskline's
        # own request work against bare Flask, whatever else the machine ran.
        "web_cpu_ratio": web_m / web_b if web_m and web_b else None,
        # CPU per request across every tier (web workers, Redis, PostgreSQL
        # backends), bare over maskline: the figure the target is set on.
        "all_cpu_ratio": (
            m["requests_per_cpu_second"]["all"] / b["requests_per_cpu_second"]["all"]
            if m["requests_per_cpu_second"].get("all") and b["requests_per_cpu_second"].get("all")
            else None
        ),
        "cpu_us_per_request": {
            side: {tier: 1e6 * used / s["requests"] for tier, used in s["cpu_seconds"].items()}
            for side, s in (("maskline", m), ("bare", b))
            if s["requests"]
        },
        "paced": None
        if paced is None
        else {
            "target_per_s": peak / 2,
            "requests_per_s": paced.rate,
            "p50_ms": paced.p50_ms,
            "p99_ms": paced.p99_ms,
            "p99_over_p50": paced.p99_ms / paced.p50_ms if paced.p50_ms else None,
        },
    }


# -- Redis down --------------------------------------------------------------------


def outage_calls(port: int, requests: list[bytes], apology: bytes) -> dict[str, Any]:
    """Requests one at a time: latency, and whether each is HTTP 200 with the apology."""
    latencies, answered, other = [], 0, None
    for payload in requests:
        begun = time.perf_counter()
        try:
            status, body = exchange(port, payload)
        except OSError as exc:
            status, body = 0, type(exc).__name__.encode()
        latencies.append(time.perf_counter() - begun)
        if status == 200 and body == apology:
            answered += 1
        elif other is None:
            other = f"HTTP {status}: {redact(body[:160])!r}"
    return {
        "requests": len(requests),
        "apologies": answered,
        "other_answer": other,
        "min_ms": min(latencies) * 1000,
        "median_ms": statistics.median(latencies) * 1000,
        "max_ms": max(latencies) * 1000,
        "latencies_ms": [round(t * 1000, 1) for t in latencies],
    }


def seconds_until_connecting(port: int, signer: Signer, limit: float = 60.0) -> float | None:
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        try:
            status, body = exchange(port, signer.requests(port, 1)[0])
        except OSError:
            status, body = 0, b""
        if status == 200 and b"<Dial" in body:
            return time.perf_counter() - started
        time.sleep(0.05)
    return None


def bench_redis_down(
    port: int, redis_process: subprocess.Popen[bytes], signer: Signer, *, frozen: int, killed: int
) -> dict[str, Any]:
    # The answer maskline gives with default voice settings (the bench sets none).
    apology = twiml.Voice(language="en-US", voice="alice").apology.encode()
    frozen_requests = signer.requests(port, frozen)
    killed_requests = signer.requests(port, killed)
    os.kill(redis_process.pid, signal.SIGSTOP)
    try:
        frozen_result = outage_calls(port, frozen_requests, apology)
    finally:
        os.kill(redis_process.pid, signal.SIGCONT)
    recovery = seconds_until_connecting(port, signer)
    redis_process.kill()
    redis_process.wait()
    killed_result = outage_calls(port, killed_requests, apology)
    return {"frozen": frozen_result, "recovery_after_sigcont_s": recovery, "killed": killed_result}


# -- output ------------------------------------------------------------------------


def met(ok: bool) -> str:
    return "yes" if ok else "no"


def failures(figures: dict[str, Any]) -> list[str]:
    """What went wrong in the run (answers that failed their check): empty if nothing."""
    t, down = figures["throughput"], figures["redis_down"]
    found = []
    for name in ("maskline", "bare"):
        s = t[name]
        if s["failures"]:
            found.append(f"{name}: {s['failures']} answers failed their check (first: {s['first_failure']})")
    for key in ("frozen", "killed"):
        d = down[key]
        if d["apologies"] != d["requests"]:
            found.append(
                f"Redis {key}: {d['requests'] - d['apologies']} answers not the apology: {d['other_answer']}"
            )
    if down["recovery_after_sigcont_s"] is None:
        found.append("after SIGCONT, no call connected again within 60 s")
    return found


TIERS = ("web", "redis", "postgres")


def report(figures: dict[str, Any]) -> str:
    t, down = figures["throughput"], figures["redis_down"]
    m, b = t["maskline"], t["bare"]
    tail = m["p99_ms"] / m["p50_ms"]
    lines = [
        f"# webhooks benchmark ({figures['cpus']} CPUs, {figures['date']}, Python {figures['python']}, "
        f"gunicorn {figures['gunicorn']}, {figures['workers']} sync workers per server, "
        f"wrk {figures['wrk']})",
        "",
        f"Signed voice webhooks (a merchant calls the buyer: <Dial>), {figures['rounds']} interleaved rounds "
        f"of {figures['seconds']:g} s per server after {figures['warmup']:g} s of warm-up, "
        f"{figures['concurrency']} wrk connections in a closed loop, one connection per request, "
        f"same generator for both; {figures['bindings']} bindings. "
        f"Single client: {figures['seconds']:g} s each. "
        "p50 / p99: medians over the rounds.",
        "",
        "| server | requests/s | p50 | p99 | p99/p50 | max | per web CPU-s "
        "| 1 client: requests/s | p50 | p99 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in (("maskline serve", m), ("bare Flask, constant TwiML", b)):
        one = s["single_client"]
        per_web = s["requests_per_cpu_second"].get("web")
        lines.append(
            f"| {name} | {s['requests_per_s']:,.0f}/s | {s['p50_ms']:.1f} ms | {s['p99_ms']:.1f} ms "
            f"| {s['p99_ms'] / s['p50_ms']:.2f} | {s['max_ms']:.0f} ms "
            f"| {f'{per_web:,.0f}' if per_web else '-'} | {one['requests_per_s']:,.0f}/s "
            f"| {one['p50_ms']:.1f} ms | {one['p99_ms']:.1f} ms |"
        )
    lines += [
        "",
        "| figure | value | target | met? |",
        "|---|---|---|---|",
        f"| requests/s, maskline / bare (median of rounds; middle half) | {t['ratio']:.2f} "
        f"({t['ratio_q1']:.2f}-{t['ratio_q3']:.2f}) | >= {TARGET_RATIO} "
        f"| {met(t['ratio'] >= TARGET_RATIO)} |",
        f"| maskline p99 / p50 at saturation (measures the queue) | {tail:.2f} | - | - |",
    ]
    paced = t.get("paced")
    if paced:
        ok = paced["p99_over_p50"] is not None and paced["p99_over_p50"] <= TARGET_TAIL
        lines.append(
            f"| maskline p99 / p50 at a steady half of its peak ({paced['requests_per_s']:,.0f}/s: "
            f"p50 {paced['p50_ms']:.1f} ms, p99 {paced['p99_ms']:.1f} ms) "
            f"| {paced['p99_over_p50'] or 0:.2f} | <= {TARGET_TAIL:g} | {met(ok)} |"
        )
    all_ratio = t.get("all_cpu_ratio")
    if all_ratio is not None:
        lines.append(
            f"| CPU per request, all tiers: bare / maskline | {all_ratio:.2f} | >= {TARGET_RATIO} "
            f"| {met(all_ratio >= TARGET_RATIO)} |"
        )
    per_cpu = m["requests_per_cpu_second"]
    if per_cpu:
        tiers = ", ".join(f"{tier} {m['cpu_seconds'][tier]:.1f} s" for tier in m["cpu_seconds"])
        lines.append(
            f"| maskline calls per CPU-second, web + Redis + PostgreSQL ({tiers}) "
            f"| {per_cpu.get('all', 0):,.0f} | - | - |"
        )
    per_request = t.get("cpu_us_per_request", {})
    if per_request:
        lines += ["", "CPU per request, by tier (µs):", "", "| server | " + " | ".join(TIERS) + " | all |"]
        lines.append("|---|" + "---|" * (len(TIERS) + 1))
        for side, tiers_us in per_request.items():
            cells = [f"{tiers_us[tier]:,.0f}" if tier in tiers_us else "-" for tier in TIERS]
            lines.append(f"| {side} | " + " | ".join(cells) + f" | {sum(tiers_us.values()):,.0f} |")
    lines += [
        "",
        "Redis down, requests one at a time (every answer must be HTTP 200 with the apology TwiML):",
        "",
        "| case | requests | 200 + apology | min | median | max |",
        "|---|---|---|---|---|---|",
    ]
    for name, key in (
        ("frozen (SIGSTOP): socket timeout", "frozen"),
        ("killed: connection refused", "killed"),
    ):
        d = down[key]
        lines.append(
            f"| {name} | {d['requests']} | {d['apologies']} | {d['min_ms']:,.0f} ms "
            f"| {d['median_ms']:,.0f} ms | {d['max_ms']:,.0f} ms |"
        )
    recovery = down["recovery_after_sigcont_s"]
    lines += [
        "",
        "After SIGCONT, the first call connected again after "
        + (f"{recovery:.2f} s." if recovery is not None else "more than 60 s (never, within the limit)."),
    ]
    notes = failures(figures)
    if m["reused"]:
        notes.append(
            f"maskline: {m['reused']} requests replayed a used CallSid (a cheaper, de-duplicated path)"
        )
    if notes:
        lines += ["", *(f"Note: {n}." for n in notes)]
    return "\n".join(lines)


# -- main --------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    import gunicorn

    q = args.quick
    rounds, seconds, warmup = (2, 1, 1) if q else (args.rounds, args.seconds, 3)
    bindings, frozen, killed = (2, 2, 3) if q else (10, 3, 10)
    concurrency = args.concurrency or 2 * args.workers
    tmp = Path(tempfile.mkdtemp(prefix="maskline-bench-webhooks-"))
    auth_token = secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MASKLINE_")}
    stack = Stack(tmp=tmp, env=env)
    try:
        redis_port, maskline_port, bare_port = free_port(), free_port(), free_port()
        redis_process = start_redis(redis_port, stack.log("redis.log"))
        stack.processes.append(redis_process)
        env.update(
            {
                "MASKLINE_ENV": "development",
                "MASKLINE_INSTANCE_PATH": str(tmp / "instance"),
                "MASKLINE_DATABASE_URL": args.database_url,
                "MASKLINE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                "MASKLINE_TWILIO_AUTH_TOKEN": auth_token,
                "MASKLINE_PUBLIC_URL": PUBLIC_URL,
                "MASKLINE_CALLS_PER_HOUR": "100000",
                "MASKLINE_CALLS_PER_DAY": "100000",
            }
        )
        reset_database(args.database_url)
        cli(env, "init")
        calls = set_up_bindings(env, bindings)
        workers = str(args.workers)
        serve = [maskline_executable(), "serve", "--host", "127.0.0.1", "--port", str(maskline_port)]
        maskline_server = subprocess.Popen(
            [*serve, "--workers", workers],
            env=env,
            stdout=stack.log("maskline.log"),
            stderr=subprocess.STDOUT,
        )
        stack.processes.append(maskline_server)
        bare = [sys.executable, str(BENCH_DIR / "bare_twiml_app.py"), "--host", "127.0.0.1"]
        bare_server = subprocess.Popen(
            [*bare, "--port", str(bare_port), "--workers", workers],
            env=env,
            stdout=stack.log("bare.log"),
            stderr=subprocess.STDOUT,
        )
        stack.processes.append(bare_server)
        wait_until(
            lambda: healthy(maskline_port), maskline_server, "maskline serve", log=tmp / "maskline.log"
        )
        wait_until(lambda: healthy(bare_port), bare_server, "the bare server", log=tmp / "bare.log")

        signer = Signer(auth_token=auth_token, calls=calls)
        check_answer(maskline_port, signer.requests(maskline_port, 1)[0], "maskline")
        check_answer(bare_port, signer.requests(bare_port, 1)[0], "the bare server")
        # CPU time of each server's process tree (gunicorn master and workers),
        # and for maskline of its Redis and PostgreSQL backends too.
        groups: dict[str, Callable[[], list[int]]] = {
            "web": lambda: process_tree(maskline_server.pid),
            "redis": lambda: [redis_process.pid],
        }
        if (backends := postgres_backends(args.database_url)) is not None:
            groups["postgres"] = backends
        # The bare server gets requests built the same way, reused in a cycle.
        bare_stock = signer.requests(bare_port, 500)
        maskline_side = Side(
            "maskline",
            maskline_port,
            stock=lambda n: signer.requests(maskline_port, n),
            reuse_ok=False,
            meter=CpuMeter(groups),
        )
        bare_side = Side(
            "bare",
            bare_port,
            stock=lambda _n: bare_stock,
            reuse_ok=True,
            meter=CpuMeter({"web": lambda: process_tree(bare_server.pid)}),
        )
        # Warm both (imports, connection pools, the pool directory, caches);
        # the warm-up rate sizes the stock of distinct CallSids for maskline.
        for side in (maskline_side, bare_side):
            side.load(seconds=warmup, connections=concurrency)
        throughput = bench_throughput(
            maskline_side, bare_side, rounds=rounds, seconds=seconds, concurrency=concurrency
        )
        redis_down = bench_redis_down(maskline_port, redis_process, signer, frozen=frozen, killed=killed)
    finally:
        stack.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "cpus": os.cpu_count(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "gunicorn": gunicorn.__version__,
        "wrk": wrk_version(),
        "quick": q,
        "workers": args.workers,
        "concurrency": concurrency,
        "rounds": rounds,
        "seconds": seconds,
        "warmup": warmup,
        "bindings": bindings,
        "throughput": throughput,
        "redis_down": redis_down,
        "targets": {"ratio": TARGET_RATIO, "p99_over_p50": TARGET_TAIL},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--quick", "--smoke", action="store_true", help="a smoke run of seconds (figures mean nothing)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("MASKLINE_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL, emptied first (default: $MASKLINE_BENCH_DATABASE_URL or %(default)s)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="gunicorn workers per server (serve's default)"
    )
    parser.add_argument("--concurrency", type=int, default=0, help="wrk connections (default 2 x workers)")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved rounds per server")
    parser.add_argument("--seconds", type=int, default=4, help="length of a round (whole seconds)")
    args = parser.parse_args()
    figures = run(args)
    figures["failures"] = failures(figures)
    print(report(figures))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if figures["failures"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
