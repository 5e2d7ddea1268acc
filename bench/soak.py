"""Soak run: a steady mix of binds, calls, texts, unbinds and expiries against a real server.

Unlike the benchmarks this is a pass/fail check. It starts what production
runs (``maskline serve`` under gunicorn and ``maskline worker``, with
PostgreSQL and a throwaway Redis), then for ``--seconds`` sends ``--rate``
operations per second, paced by a scheduler (one every 1/rate seconds, never
in bursts), each on a pool of client threads:

* creations through ``POST /v1/bindings`` (axb: buyer + merchant; axe:
  buyer behind an extension, a courier allowed), some ending within seconds
  (``expires_at``), the others living a minute or two (``ttl_seconds``);
  merchants and couriers are few and reused, as in life; buyers are new;
* calls and texts between bound parties through the carrier simulator
  (signed Twilio webhooks, TwiML interpreted), then the call's status callback;
* calls and texts from parties of ended bindings, and from strangers;
* unbinds (``DELETE``), extensions and "delivered" (``PATCH``);
* expiries: the worker sweeps them, in real (wall-clock) time.

A model of what should be live (bench/soak_model.py) judges every call and
text: it must reach exactly the other party of the binding that is live,
with the relay number as caller ID, and be refused when none is. Calls near a
boundary (expiry, or a change in flight) are not judged, and counted apart.

It fails (exit 1) on any 5xx, any misroute, any other unexpected answer, any
party number in a server log or API response, an achieved rate more than 20%
short of the target, a server or worker that died, and memory growth past its
threshold (judged only for runs of 120 s or more; shorter runs report it).

    python bench/soak.py [--seconds 600] [--rate 20] [--json out.json] [--database-url URL]
"""

from __future__ import annotations

import sys
from pathlib import Path

# As in bench/webhooks.py: keep bench/numbers.py from shadowing the stdlib.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import random
import signal
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import redis

from bench.soak_model import Binding, Model, Numbers, Window
from bench.soak_probe import find_party_numbers, growth, sample_redis, tree_by_pid, tree_rss_kib
from bench.soak_stack import COOLDOWN_SECONDS, PUBLIC_URL, Soak
from maskline.sim.carrier import CarrierSimulator, HttpTransport, mask_number

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/bench"
# 20 operations/s keeps a quiet 2-CPU machine at roughly half its capacity
# (a creation costs ~15-25 ms of server CPU, a call ~5-10 ms): enough
# headroom that the rate holds while the worker sweeps, without idling.
DEFAULT_RATE = 20.0
MARGIN = 2.0  # seconds around a boundary within which a call is not judged
RATE_SHORTFALL = 0.20  # fail when the achieved rate is more than this short of target
RSS_GROWTH_LIMIT = 10.0  # % from the middle third of samples to the last
REDIS_GROWTH_LIMIT = 20.0  # % of Redis bytes (keys without TTL) per live binding
JUDGE_MEMORY_FROM = 120.0  # seconds: shorter runs are mostly warm-up
MERCHANTS, COURIERS = 12, 8
MAX_PROBLEMS = 10  # details kept per kind of problem

# Operation mix (weights). An operation that finds nothing to act on (no live
# binding yet) becomes a creation, so the rate holds from the first second.
MIX: dict[str, float] = {
    "create_axb": 16,
    "create_axe": 6,
    "call": 24,
    "call_axe": 6,
    "sms": 14,
    "ended": 9,
    "stranger": 7,
    "unbind": 8,
    "extend": 5,
    "deliver": 5,
}


class Interrupted(Exception):
    """SIGTERM, turned into an exception so that teardown runs."""


# -- results -----------------------------------------------------------------------


@dataclass
class KindStats:
    done: int = 0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    connected: int = 0  # calls and texts that reached the expected party
    refused_as_expected: int = 0
    ambiguous: int = 0  # near a boundary: not judged
    ambiguous_why: Counter[str] = field(default_factory=Counter)


@dataclass
class Results:
    kinds: dict[str, KindStats] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)  # 5xx
    misroutes: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # other wrong answers, transport errors
    leaks: list[str] = field(default_factory=list)  # party numbers in responses
    counts: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def kind(self, name: str) -> KindStats:
        with self.lock:
            return self.kinds.setdefault(name, KindStats())

    def problem(self, bucket: str, text: str) -> None:
        with self.lock:
            self.counts[bucket] += 1
            kept: list[str] = getattr(self, bucket)
            if len(kept) < MAX_PROBLEMS:
                kept.append(text)


# -- the operations ---------------------------------------------------------------------


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_epoch(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Runner:
    """The soak's operations: each acts, checks the answer, and updates the model."""

    def __init__(self, *, soak: Soak, model: Model, numbers: Numbers, results: Results, seed: int) -> None:
        self.soak = soak
        self.model = model
        self.numbers = numbers
        self.results = results
        self.merchants = numbers.regulars(MERCHANTS, 0)
        self.couriers = numbers.regulars(COURIERS, MERCHANTS)
        self.sim = CarrierSimulator(
            transport=HttpTransport(f"http://127.0.0.1:{soak.port}", timeout=30.0),
            auth_token=soak.auth_token,
            public_url=PUBLIC_URL,
        )
        self.random = random.Random(seed)
        self.rlock = threading.Lock()
        self.orders = 0
        self.relays: list[str] = []
        # Wrong extensions a courier keyed per relay number (times): the server
        # locks a caller out after a few, and a locked-out courier's next good
        # call would be refused, so the soak keeps well below the limit.
        self.wrong_keys: dict[tuple[str, str], list[float]] = {}

    # -- helpers ------------------------------------------------------------------------

    def pick(self, items: list[Any]) -> Any:
        with self.rlock:
            return self.random.choice(items)

    def chance(self, p: float) -> bool:
        with self.rlock:
            return self.random.random() < p

    def uniform(self, a: float, b: float) -> float:
        with self.rlock:
            return self.random.uniform(a, b)

    def api(self, method: str, path: str, body: dict[str, Any] | None, kind: str) -> tuple[int, Any, str]:
        """One API request on its own connection; (status, JSON or None, text)."""
        headers = {"Authorization": f"Bearer {self.soak.api_key}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
            if method == "POST":
                headers["Idempotency-Key"] = str(body.get("order_id"))
        conn = http.client.HTTPConnection("127.0.0.1", self.soak.port, timeout=30)
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            text = response.read().decode(errors="replace")
            status = response.status
        finally:
            conn.close()
        self.check_status(kind, status, text)
        try:
            answer = json.loads(text) if text else None
        except ValueError:
            answer = None
        return status, answer, text

    def check_status(self, kind: str, status: int, text: str) -> None:
        self.results.kind(kind).statuses[status] += 1
        if status >= 500:
            self.results.problem("server_errors", f"{kind}: HTTP {status}: {text[:160]}")

    def check_no_numbers(self, kind: str, text: str) -> None:
        found = find_party_numbers(text.encode(), self.numbers.used)
        if found:
            numbers = ", ".join(str(mask_number(n)) for n in found)
            self.results.problem("leaks", f"{kind}: response holds party numbers ({numbers})")

    # -- creation -----------------------------------------------------------------------

    def create(self, mode: str) -> str:
        kind = f"create_{mode}"
        with self.rlock:
            self.orders += 1
            order = f"soak-{self.orders}"
        buyer = self.numbers.buyer()
        body: dict[str, Any] = {"order_id": order, "mode": mode}
        regular = self.pick(self.merchants if mode == "axb" else self.couriers)
        if mode == "axb":
            body["parties"] = {"buyer": buyer, "merchant": regular}
        else:
            body["parties"] = {"buyer": buyer}
            body["allow"] = [regular]
        now = time.time()
        if self.chance(0.45):
            # Short-lived: ends during the run, swept by the worker. The API's
            # minimum ttl_seconds is 60, expires_at has none.
            body["expires_at"] = iso(now + self.uniform(10, 30))
        else:
            body["ttl_seconds"] = int(self.uniform(60, 150))
        window = self.model.creation_started([buyer, regular], now)
        binding = None
        try:
            status, answer, text = self.api("POST", "/v1/bindings", body, kind)
            self.check_no_numbers(kind, text)
            if status != 201 or not isinstance(answer, dict):
                if status < 500:
                    self.results.problem("unexpected", f"{kind}: HTTP {status}: {text[:160]}")
                return kind
            binding = Binding(
                id=answer["id"],
                mode=mode,
                relay=answer["relay_number"],
                extension=answer.get("extension"),
                parties=dict(body["parties"]),
                allowed=list(body.get("allow", [])),
                expires_at=parse_epoch(answer["expires_at"]),
                sent=now,
                created=time.time(),
            )
        finally:
            self.model.creation_done(window, time.time(), binding)
        return kind

    # -- calls and texts ------------------------------------------------------------------

    def call(self, kind: str, caller: str, relay: str, extension: str | None) -> None:
        start = time.time()
        result = self.sim.call(from_number=caller, to_number=relay, digits=[extension] if extension else None)
        end = time.time()
        self.check_status(kind, result.http_status, result.error or "")
        if result.outcome == "error":
            if result.http_status < 500:
                self.results.problem("unexpected", f"{kind}: {result.http_status} {result.error}")
            return
        self.check_no_numbers(kind, " ".join(result.said))
        reached = result.dialed if result.outcome == "connected" else None
        if extension and result.outcome != "connected" and caller in self.couriers:
            with self.rlock:
                self.wrong_keys.setdefault((caller, relay), []).append(end)
        self.judge(kind, caller, relay, extension, start, end, reached, result.caller_id)
        if result.outcome == "connected":
            status = self.sim.call_status(
                call_sid=result.call_sid,
                from_number=caller,
                to_number=relay,
                duration=int(self.uniform(5, 300)),
            )
            self.check_status("call_status", status, "")
            if status != 200 and status < 500:
                self.results.problem("unexpected", f"call_status: HTTP {status}")

    def sms(self, kind: str, sender: str, relay: str) -> None:
        start = time.time()
        result = self.sim.sms(from_number=sender, to_number=relay, body="Your order is on its way.")
        end = time.time()
        self.check_status(kind, result.http_status, result.error or "")
        if result.outcome == "error":
            if result.http_status < 500:
                self.results.problem("unexpected", f"{kind}: {result.http_status} {result.error}")
            return
        forwards = [m for m in result.messages if m.get("to") and m.get("to") != sender]
        reached = forwards[0]["to"] if len(forwards) == 1 else None
        sent_from = forwards[0].get("from") if len(forwards) == 1 else None
        if len(forwards) > 1:
            self.results.problem("misroutes", f"{kind}: one text forwarded {len(forwards)} times")
            return
        if not forwards:
            self.check_no_numbers(kind, " ".join(m.get("body", "") for m in result.messages))
        self.judge(kind, sender, relay, None, start, end, reached, sent_from)

    def judge(
        self,
        kind: str,
        caller: str,
        relay: str,
        extension: str | None,
        start: float,
        end: float,
        reached: str | None,
        shown: str | None,
    ) -> None:
        """Compare what happened with what the model says must have happened."""
        stats = self.results.kind(kind)
        expectation, target = self.model.expect(
            caller=caller, relay=relay, extension=extension, start=start, end=end
        )
        if expectation.verdict == "ambiguous":
            with self.results.lock:
                stats.ambiguous += 1
                stats.ambiguous_why[expectation.why] += 1
            return
        where = f"{mask_number(caller)} -> {relay}" + (f" ext {extension}" if extension else "")
        if expectation.verdict == "misroute":
            self.results.problem("misroutes", f"{kind} {where}: {expectation.why}")
            return
        if target is None and reached is None:
            with self.results.lock:
                stats.refused_as_expected += 1
        elif target is None:
            self.results.problem(
                "misroutes", f"{kind} {where}: reached {mask_number(reached)}, expected a refusal"
            )
        elif reached != target:
            got = "a refusal" if reached is None else mask_number(reached)
            self.results.problem(
                "misroutes", f"{kind} {where}: got {got}, expected {mask_number(target)} ({expectation.why})"
            )
        elif shown != relay:
            self.results.problem(
                "misroutes", f"{kind} {where}: caller id {mask_number(shown)}, expected the relay number"
            )
        else:
            with self.results.lock:
                stats.connected += 1

    def live_axb(self) -> Binding | None:
        # Far enough from its expiry that it stays live for the whole call.
        found = [b for b in self.model.live(time.time(), away=MARGIN + 5) if b.mode == "axb"]
        return self.pick(found) if found else None

    def op_call(self) -> str | None:
        binding = self.live_axb()
        if binding is None:
            return None
        caller = self.pick(list(binding.parties.values()))
        self.call("call", caller, binding.relay, None)
        return "call"

    def op_call_axe(self) -> str | None:
        found = [b for b in self.model.live(time.time(), away=MARGIN + 5) if b.mode == "axe"]
        if not found:
            return None
        binding: Binding = self.pick(found)
        self.call("call_axe", binding.allowed[0], binding.relay, binding.extension)
        return "call_axe"

    def op_sms(self) -> str | None:
        binding = self.live_axb()
        if binding is None:
            return None
        self.sms("sms", self.pick(list(binding.parties.values())), binding.relay)
        return "sms"

    def op_ended(self) -> str | None:
        """A party of an ended binding calls or texts its relay number again: reaches no one
        (unless the model knows of a newer live binding of that party there)."""
        now = time.time()
        found = self.model.ended(now, since=MARGIN)
        if not found:
            return None
        binding: Binding = self.pick(found)
        if binding.mode == "axb":
            party = self.pick(list(binding.parties.values()))
            if self.chance(0.5):
                self.sms("ended", party, binding.relay)
            else:
                self.call("ended", party, binding.relay, None)
            return "ended"
        courier = binding.allowed[0]
        with self.rlock:
            recent = [t for t in self.wrong_keys.get((courier, binding.relay), []) if t > now - 3600]
            self.wrong_keys[(courier, binding.relay)] = recent
        if len(recent) >= 2:
            # Keep the courier clear of the wrong-extension lock-out; the buyer
            # calls instead (an axe buyer reaches no one once the binding ended).
            self.call("ended", binding.parties["buyer"], binding.relay, None)
        else:
            self.call("ended", courier, binding.relay, binding.extension)
        return "ended"

    def op_stranger(self) -> str:
        stranger = self.numbers.stranger()
        relay = self.pick(self.relays)
        if self.chance(0.3):
            self.sms("stranger", stranger, relay)
        else:
            extension = f"{int(self.uniform(1000, 9999))}" if self.chance(0.3) else None
            self.call("stranger", stranger, relay, extension)
        return "stranger"

    # -- changes ------------------------------------------------------------------------

    def change(self, kind: str, method: str, body: dict[str, Any] | None) -> str | None:
        candidates = [
            b
            for b in self.model.live(time.time(), away=MARGIN + 3)
            if not (kind in ("extend", "deliver") and b.delivered)
        ]
        if not candidates:
            return None
        binding: Binding = self.pick(candidates)
        window = Window(sent=time.time())
        with self.model.lock:
            if binding.unbind is not None or any(c.answered is None for c in binding.changes):
                return None  # another change got there first
            if kind == "unbind":
                binding.unbind = window
            else:
                binding.changes.append(window)
        status, answer, text = self.api(method, f"/v1/bindings/{binding.id}", body, kind)
        self.check_no_numbers(kind, text)
        with self.model.lock:
            if status == 200 and isinstance(answer, dict):
                binding.expires_at = parse_epoch(answer["expires_at"])
                if kind == "deliver":
                    binding.delivered = True
                expected = "unbound" if kind == "unbind" else "active"
                if answer.get("status") != expected:
                    self.results.problem("unexpected", f"{kind}: status {answer.get('status')!r}")
            elif status < 500:
                self.results.problem("unexpected", f"{kind}: HTTP {status}: {text[:160]}")
            window.answered = time.time()
        return kind

    def op_unbind(self) -> str | None:
        return self.change("unbind", "DELETE", None)

    def op_extend(self) -> str | None:
        # A new lifetime from now, which may be earlier than the binding's
        # expiry (the model keeps most bindings short): said so explicitly,
        # as the API asks of any change that shortens.
        body = {"ttl_seconds": int(self.uniform(60, 120)), "allow_shorten": True}
        return self.change("extend", "PATCH", body)

    def op_deliver(self) -> str | None:
        return self.change("deliver", "PATCH", {"status": "delivered"})

    def run(self, name: str) -> None:
        """One scheduled operation; falls back to a creation when it finds nothing to do."""
        started = time.perf_counter()
        try:
            operations: dict[str, Callable[[], str | None]] = {
                "create_axb": lambda: self.create("axb"),
                "create_axe": lambda: self.create("axe"),
                "call": self.op_call,
                "call_axe": self.op_call_axe,
                "sms": self.op_sms,
                "ended": self.op_ended,
                "stranger": self.op_stranger,
                "unbind": self.op_unbind,
                "extend": self.op_extend,
                "deliver": self.op_deliver,
            }
            done = operations[name]() or self.create("axb")
        except Exception as exc:  # a transport error is a finding, not the end of the soak
            self.results.problem("unexpected", f"{name}: {type(exc).__name__}: {str(exc)[:160]}")
            return
        stats = self.results.kind(done)
        with self.results.lock:
            stats.done += 1
            stats.latencies.append(time.perf_counter() - started)


# -- pacing and sampling -------------------------------------------------------------------


@dataclass
class Pacing:
    scheduled: int = 0
    skipped: int = 0  # slots dropped because every client thread was busy
    elapsed: float = 0.0
    late_max: float = 0.0


def drive(runner: Runner, *, rate: float, seconds: float, threads: int, seed: int) -> Pacing:
    """Start one operation every 1/rate seconds for ``seconds``, on ``threads`` clients.

    Open loop: the schedule does not wait for answers. A slot that finds all
    clients busy is dropped (and counted) rather than queued, and a schedule
    that fell more than a second behind (the load process was starved)
    resumes from now: either way no burst follows a stall, and the shortfall
    shows in the achieved rate.
    """
    choose = random.Random(seed ^ 0x5EED)
    names, weights = list(MIX), list(MIX.values())
    pacing = Pacing()
    inflight = threading.Semaphore(threads)
    interval = 1.0 / rate
    begun = time.perf_counter()
    deadline = begun + seconds
    slot = begun

    def task(name: str) -> None:
        try:
            runner.run(name)
        finally:
            inflight.release()

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="soak") as pool:
        while slot < deadline:
            now = time.perf_counter()
            if now < slot:
                time.sleep(slot - now)
                continue
            late = now - slot
            pacing.late_max = max(pacing.late_max, late)
            if late > 1.0:
                missed = int(late / interval)
                pacing.skipped += missed
                slot += missed * interval
                continue
            pacing.scheduled += 1
            if inflight.acquire(blocking=False):
                pool.submit(task, choose.choices(names, weights)[0])
            else:
                pacing.skipped += 1
            slot += interval
        pacing.elapsed = time.perf_counter() - begun
    return pacing


@dataclass
class Sampler:
    """Memory and live bindings every ``interval`` seconds, on a thread of its own."""

    soak: Soak
    model: Model
    interval: float
    keep: float  # seconds an ended binding may stay in Redis: cool-down + the worker's lag
    samples: list[dict[str, Any]] = field(default_factory=list)
    baseline: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    client: redis.Redis | None = None

    def connect(self) -> None:
        """Connect and take the baseline: Redis before any binding (generation markers, pool)."""
        self.client = redis.Redis(host="127.0.0.1", port=self.soak.redis_port, socket_timeout=5)
        self.baseline = self.sample(0.0) or {}

    def run(self) -> None:
        begun = time.perf_counter()
        while not self.stop.wait(self.interval):
            sample = self.sample(time.perf_counter() - begun)
            if sample is not None:
                self.samples.append(sample)
            # Bindings ended long ago can no longer make any call ambiguous;
            # forgetting them keeps every pick cheap in a soak of hours.
            self.model.forget_older_than(time.time(), age=self.keep + 300)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    def sample(self, at: float) -> dict[str, Any] | None:
        assert self.soak.serve is not None and self.soak.worker is not None and self.client is not None
        by_pid = tree_by_pid(self.soak.serve.pid)
        serve_kib, serve_anon_kib = sum(v[0] for v in by_pid.values()), sum(v[1] for v in by_pid.values())
        serve_procs = len(by_pid)
        worker_kib, worker_anon_kib, _ = tree_rss_kib(self.soak.worker.pid)
        try:
            r = sample_redis(self.client)
        except redis.RedisError as exc:
            self.errors.append(f"{at:.0f} s: {exc}")
            return None
        now = time.time()
        return {
            "t": round(at, 1),
            "serve_rss_kib": serve_kib,
            "serve_anon_kib": serve_anon_kib,
            "serve_processes": serve_procs,
            "serve_rss_by_pid": {str(pid): v[0] for pid, v in by_pid.items()},
            "worker_rss_kib": worker_kib,
            "worker_anon_kib": worker_anon_kib,
            "redis_used_memory": r.used_memory,
            "redis_persistent_bytes": r.persistent_bytes,
            "redis_persistent_keys": r.persistent_keys,
            "redis_route_entries": r.route_entries,
            "redis_expiring_keys": r.expiring_keys,
            "redis_cached_scripts": r.cached_scripts,
            "redis_families": r.families,
            "live_bindings": self.model.live_count(now),
            "held_bindings": self.model.held_count(now, keep=self.keep),
        }


def memory_figures(samples: list[dict[str, Any]], baseline: dict[str, Any], judged: bool) -> dict[str, Any]:
    """Growth from the middle third of samples to the last, and whether it is within limits.

    Redis is judged by the bytes of its keys without a TTL, above what they
    held before the first binding, per binding it may rightly hold (live, or
    ended within the cool-down and the worker's lag): that stays level unless
    entries leak. Per live binding is reported too.
    """

    def series(key: str) -> list[float]:
        return [float(s[key]) for s in samples]

    base = baseline.get("redis_persistent_bytes", 0)
    per_held = [
        (s["redis_persistent_bytes"] - base) / s["held_bindings"] for s in samples if s["held_bindings"]
    ]
    per_live = [
        (s["redis_persistent_bytes"] - base) / s["live_bindings"] for s in samples if s["live_bindings"]
    ]
    checks = {
        "serve_rss": (growth(series("serve_rss_kib")), RSS_GROWTH_LIMIT),
        "worker_rss": (growth(series("worker_rss_kib")), RSS_GROWTH_LIMIT),
        "redis_bytes_per_held_binding": (growth(per_held), REDIS_GROWTH_LIMIT),
    }
    figures: dict[str, Any] = {"judged": judged, "samples": len(samples), "checks": {}}
    for name, (value, limit) in checks.items():
        figures["checks"][name] = {
            "growth_pct": value,
            "limit_pct": limit,
            "ok": value is None or value < limit,
        }
    figures["reported"] = {
        "serve_heap_growth_pct": growth(series("serve_anon_kib")),
        "worker_heap_growth_pct": growth(series("worker_anon_kib")),
        "redis_bytes_per_live_binding_growth_pct": growth(per_live),
        "redis_used_memory_growth_pct": growth(series("redis_used_memory")),
    }
    if samples:
        last = samples[-1]
        figures["last"] = {k: v for k, v in last.items() if k != "redis_families"}
        figures["redis_families_at_end"] = last["redis_families"]
        figures["redis_bytes_per_held_binding_median"] = statistics.median(per_held) if per_held else None
        figures["redis_bytes_per_live_binding_median"] = statistics.median(per_live) if per_live else None
        figures["serve_processes_seen"] = sorted({s["serve_processes"] for s in samples})
        figures["cached_scripts_seen"] = sorted({s["redis_cached_scripts"] for s in samples})
    return figures


# -- summary ----------------------------------------------------------------------------------


def quantiles_ms(latencies: list[float]) -> tuple[float, float]:
    if len(latencies) < 2:
        only = latencies[0] * 1000 if latencies else 0.0
        return only, only
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


def worker_totals(log: bytes) -> dict[str, int]:
    """Sums of the worker's per-run report lines (expired, purged, restored, ...)."""
    totals: Counter[str] = Counter()
    for line in log.decode(errors="replace").splitlines():
        if line.startswith("expired "):
            for part in line.split(", "):
                words = part.rsplit(" ", 1)
                if len(words) == 2 and words[1].isdigit():
                    totals[words[0]] += int(words[1])
    return dict(totals)


def summarize(
    args: argparse.Namespace,
    results: Results,
    pacing: Pacing,
    sampler: Sampler,
    log_hits: dict[str, Counter[str]],
    worker: dict[str, int],
    died: list[str],
) -> dict[str, Any]:
    kinds = {}
    for name in sorted(results.kinds):
        s = results.kinds[name]
        p50, p99 = quantiles_ms(s.latencies)
        kinds[name] = {
            "done": s.done,
            "p50_ms": round(p50, 1),
            "p99_ms": round(p99, 1),
            "statuses": {str(k): v for k, v in sorted(s.statuses.items())},
            "reached_expected_party": s.connected,
            "refused_as_expected": s.refused_as_expected,
            "not_judged_near_boundary": s.ambiguous,
            "not_judged_why": dict(s.ambiguous_why),
        }
    done = sum(s.done for s in results.kinds.values())
    achieved = done / pacing.elapsed if pacing.elapsed else 0.0
    judged = args.seconds >= JUDGE_MEMORY_FROM
    memory = memory_figures(sampler.samples, sampler.baseline, judged)
    failures = []
    if results.counts["server_errors"]:
        failures.append(f"{results.counts['server_errors']} responses with HTTP 5xx")
    if results.counts["misroutes"]:
        failures.append(f"{results.counts['misroutes']} misrouted calls or texts")
    if results.counts["unexpected"]:
        failures.append(f"{results.counts['unexpected']} other unexpected answers")
    if results.counts["leaks"]:
        failures.append(f"{results.counts['leaks']} responses holding party numbers")
    hits = sum(sum(c.values()) for c in log_hits.values())
    if hits:
        failures.append(f"party numbers found {hits} times in server logs")
    if achieved < (1 - RATE_SHORTFALL) * args.rate:
        failures.append(
            f"achieved {achieved:.1f} ops/s, more than {RATE_SHORTFALL:.0%} short of {args.rate:g}"
        )
    failures += died
    if judged:
        for name, check in memory["checks"].items():
            if not check["ok"]:
                failures.append(
                    f"memory: {name} grew {check['growth_pct']:.1f}% (limit {check['limit_pct']:g}%)"
                )
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "seconds": args.seconds,
        "target_rate": args.rate,
        "achieved_rate": round(achieved, 2),
        "operations": done,
        "slots_scheduled": pacing.scheduled,
        "slots_skipped_busy": pacing.skipped,
        "schedule_late_max_s": round(pacing.late_max, 3),
        "workers": args.workers,
        "threads": args.threads,
        "kinds": kinds,
        "server_errors": results.counts["server_errors"],
        "misroutes": results.counts["misroutes"],
        "unexpected": results.counts["unexpected"],
        "response_leaks": results.counts["leaks"],
        "problems": {
            "server_errors": results.server_errors,
            "misroutes": results.misroutes,
            "unexpected": results.unexpected,
            "leaks": results.leaks,
        },
        "party_numbers_checked": 0,
        "log_hits": {name: len(c) for name, c in log_hits.items() if c},
        "worker": worker,
        "memory": memory,
        "memory_samples": sampler.samples,
        "sampler_errors": sampler.errors,
        "failures": failures,
        "passed": not failures,
    }


def report(s: dict[str, Any]) -> str:
    lines = [
        f"# soak: {s['seconds']:g} s at {s['target_rate']:g} ops/s ({s['cpus']} CPUs, {s['date']}, "
        f"{s['workers']} gunicorn workers, {s['threads']} client threads)",
        "",
        f"operations {s['operations']}, achieved {s['achieved_rate']:.1f}/s of {s['target_rate']:g}/s "
        f"(slots dropped while every client was busy: {s['slots_skipped_busy']}; "
        f"schedule at most {s['schedule_late_max_s'] * 1000:.0f} ms late)",
        "",
        "| kind | done | p50 | p99 | HTTP statuses | reached expected party | refused as expected | "
        "not judged (boundary) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, k in s["kinds"].items():
        statuses = " ".join(f"{code}x{n}" for code, n in k["statuses"].items())
        # call_status has answers but no operations of its own (it is part of a call).
        p50, p99 = (f"{k['p50_ms']:.0f} ms", f"{k['p99_ms']:.0f} ms") if k["done"] else ("-", "-")
        lines.append(
            f"| {name} | {k['done']} | {p50} | {p99} | {statuses} "
            f"| {k['reached_expected_party']} | {k['refused_as_expected']} "
            f"| {k['not_judged_near_boundary']} |"
        )
    why: Counter[str] = Counter()
    for k in s["kinds"].values():
        why.update(k["not_judged_why"])
    w = s["worker"]
    lines += [
        "not judged, why: " + (", ".join(f"{reason} x{n}" for reason, n in why.most_common()) or "-"),
        "",
        f"5xx: {s['server_errors']}   misroutes: {s['misroutes']}   other unexpected: {s['unexpected']}   "
        f"party numbers in responses: {s['response_leaks']}   in logs: {sum(s['log_hits'].values())} "
        f"(of {s['party_numbers_checked']} numbers searched)",
        "worker (summed over its runs): "
        + (", ".join(f"{k} {v}" for k, v in w.items()) if w else "no run reported"),
    ]
    m = s["memory"]
    verdict = (
        "judged"
        if m["judged"]
        else f"REPORTED ONLY, NOT JUDGED (runs under {JUDGE_MEMORY_FROM:g} s are warm-up)"
    )
    lines += ["", f"memory, {m['samples']} samples, median of last third vs middle third: {verdict}"]
    for name, c in m["checks"].items():
        value = "n/a (too few samples)" if c["growth_pct"] is None else f"{c['growth_pct']:+.1f}%"
        lines.append(f"  {name}: {value} (limit < {c['limit_pct']:g}%)")
    rep = m["reported"]
    lines.append(
        "  reported, not judged: heap (RssAnon) growth serve "
        + ", worker ".join(
            "n/a" if v is None else f"{v:+.1f}%"
            for v in (rep["serve_heap_growth_pct"], rep["worker_heap_growth_pct"])
        )
        + "; Redis used_memory (TTL'd keys included) "
        + (
            "n/a"
            if rep["redis_used_memory_growth_pct"] is None
            else f"{rep['redis_used_memory_growth_pct']:+.1f}%"
        )
    )
    if "last" in m:
        last = m["last"]
        held, live = m["redis_bytes_per_held_binding_median"], m["redis_bytes_per_live_binding_median"]
        lines += [
            f"  at the end: serve {last['serve_rss_kib'] / 1024:.0f} MiB "
            f"(heap {last['serve_anon_kib'] / 1024:.0f} MiB) in {last['serve_processes']} processes, "
            f"worker {last['worker_rss_kib'] / 1024:.0f} MiB (heap {last['worker_anon_kib'] / 1024:.0f} MiB)",
            f"  Redis: used_memory {last['redis_used_memory'] / 1024:.0f} KiB; live bindings "
            f"{last['live_bindings']}, held (live or cooling down) {last['held_bindings']}, "
            f"route entries {last['redis_route_entries']}",
            f"  Redis keys without TTL: {last['redis_persistent_keys']} "
            f"({last['redis_persistent_bytes'] / 1024:.0f} KiB; above the empty pool, median "
            + ("n/a" if held is None else f"{held:.0f}")
            + " bytes per held binding, "
            + ("n/a" if live is None else f"{live:.0f}")
            + f" per live one); keys with a TTL (not judged): {last['redis_expiring_keys']}",
            "  key shapes at the end: "
            + ", ".join(f"{k} x{v}" for k, v in sorted(m["redis_families_at_end"].items())),
        ]
    for bucket in ("server_errors", "misroutes", "unexpected", "leaks"):
        for text in s["problems"][bucket]:
            lines.append(f"  {bucket}: {text}")
    for name, count in s["log_hits"].items():
        lines.append(f"  log {name}: {count} distinct party numbers")
    lines += ["", "PASS" if s["passed"] else "FAIL: " + "; ".join(s["failures"])]
    return "\n".join(lines)


# -- main -------------------------------------------------------------------------------------


def check_scanner(numbers: Numbers) -> None:
    """Proof that the scan for party numbers finds them, in each written form,
    before its silence is taken as proof that there were none."""
    number = numbers.buyer()
    n = number[2:]
    forms = [
        number,
        n,
        f"({n[:3]}) {n[3:6]}-{n[6:]}",
        f"{n[:3]}-{n[3:6]}-{n[6:]}",
        f"1 {n[:3]} {n[3:6]} {n[6:]}",
    ]
    for form in forms:
        if number not in find_party_numbers(f"x={form}; ".encode(), numbers.used):
            raise SystemExit(f"soak: the log scan misses the form {form!r}")


def run(args: argparse.Namespace) -> dict[str, Any]:
    soak = Soak()
    model = Model(margin=MARGIN)
    numbers = Numbers()
    results = Results()
    sample_every = min(5.0, max(1.0, args.seconds / 60))
    keep = COOLDOWN_SECONDS + 2 * args.worker_interval + 10  # + the worker's reconcile pause and run
    sampler = Sampler(soak=soak, model=model, interval=sample_every, keep=keep)
    sampler_thread = threading.Thread(target=sampler.run, name="soak-sampler", daemon=True)
    try:
        soak.start(
            database_url=args.database_url,
            pool=args.pool,
            workers=args.workers,
            worker_interval=args.worker_interval,
        )
        runner = Runner(soak=soak, model=model, numbers=numbers, results=results, seed=args.seed)
        runner.relays = [line for line in (soak.tmp / "pool.csv").read_text().split()[1:]]
        check_scanner(numbers)
        sampler.connect()
        print(f"soak: serving on port {soak.port}; {args.seconds:g} s at {args.rate:g} ops/s", flush=True)
        sampler_thread.start()
        pacing = drive(runner, rate=args.rate, seconds=args.seconds, threads=args.threads, seed=args.seed)
        sampler.stop.set()
        sampler_thread.join(timeout=30)
        died = [
            f"{name} exited during the run (status {p.returncode})"
            for name, p in (("maskline serve", soak.serve), ("maskline worker", soak.worker))
            if p is not None and p.poll() is not None
        ]
        soak.stop_processes()  # flushes and closes every log before they are read
        logs = soak.logs()
        if args.keep_logs:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for name, blob in logs.items():
                (args.keep_logs / name).write_bytes(blob)
        log_hits = {name: find_party_numbers(blob, numbers.used) for name, blob in logs.items()}
        summary = summarize(
            args, results, pacing, sampler, log_hits, worker_totals(logs.get("worker.log", b"")), died
        )
        summary["party_numbers_checked"] = len(numbers.used)
        return summary
    finally:
        sampler.stop.set()
        sampler.close()
        soak.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=600.0, help="length of the load (default %(default)s)"
    )
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="operations per second")
    parser.add_argument("--json", type=Path, help="also write the summary to this JSON file")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("MASKLINE_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL, emptied first (default: $MASKLINE_BENCH_DATABASE_URL or %(default)s)",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=16, help="client threads (operations in flight)")
    parser.add_argument("--pool", type=int, default=80, help="relay numbers in the pool")
    parser.add_argument("--worker-interval", type=float, default=5.0, help="seconds between worker runs")
    parser.add_argument("--seed", type=int, default=7, help="seed of the operation mix")
    parser.add_argument("--keep-logs", type=Path, help="copy the server and worker logs to this folder")
    args = parser.parse_args()

    def interrupted(_signum: int, _frame: FrameType | None) -> None:
        raise Interrupted()

    signal.signal(signal.SIGTERM, interrupted)
    try:
        summary = run(args)
    except (KeyboardInterrupt, Interrupted):
        print("soak: interrupted; everything it started was stopped", file=sys.stderr)
        raise SystemExit(130) from None
    print(report(summary))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    raise SystemExit(0 if summary["passed"] else 1)


if __name__ == "__main__":
    main()
