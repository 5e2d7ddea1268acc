"""Benchmark of binding creation through the REST API under gunicorn (not a test: prints figures).

``POST /v1/bindings`` per second through ``maskline serve`` with PostgreSQL and
Redis on this machine: key check, rate limit, body validation, two party
numbers normalised and sealed into the vault, SQL rows, the Lua claim on a
relay number, the JSON answer. Every request binds a new order with two new
party numbers (the worst case for the vault: nothing is reused). The load
comes from wrk in a process of its own (bench/loadgen.py), replaying
requests built before the run. Every answer is checked (201); failures are
counted, printed, and make the run exit 1. The CPU time of the gunicorn
workers, the throwaway Redis and the PostgreSQL backends over the timed run
gives creations per CPU-second (the per-core figure for a capacity plan).

Target: >= 1,000 creations per second on 2 cores. For scale: Twilio Proxy
allows 30 requests/s per endpoint; Alibaba's number-protection service
5,000 binding calls/s per account on its cloud. Reported, never asserted.

Set-up as bench/webhooks.py: PostgreSQL ``--database-url`` (emptied first), a
throwaway redis-server, a temporary instance folder, ``maskline pool import``
of enough relay numbers, ``maskline apikey create``; the key's rate limit for
bindings:write is raised out of the way.

    python bench/api.py [--quick | --smoke] [--json out.json] [--database-url URL] [--workers 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

# As in bench/webhooks.py: keep bench/numbers.py from shadowing the stdlib.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.loadgen import CpuMeter, LoadResult, postgres_backends, process_tree, run_wrk, wrk_version
from bench.webhooks import (
    Stack,
    cli,
    free_port,
    healthy,
    maskline_executable,
    reset_database,
    start_redis,
    wait_until,
)

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/bench"
TARGET_RATE = 1000.0


def relay_csv(count: int) -> str:
    """``count`` valid US relay numbers (area codes 212 and 415), one per row."""
    rows = ["number"]
    for i in range(count):
        area = "212" if i % 2 else "415"
        rows.append(f"+1{area}55{5000 + i:05d}")
    return "\n".join(rows) + "\n"


def party_number(n: int) -> str:
    """The n-th distinct, valid US party number (exchange 2xx-9xx, never 555)."""
    exchange_digits = 200 + (n // 10_000) % 700
    if exchange_digits == 555:
        exchange_digits = 556
    return f"+1312{exchange_digits:03d}{n % 10_000:04d}"


def _order(i: int) -> dict[str, Any]:
    return {
        "order_id": f"bench-{i}",
        "mode": "axb",
        "parties": {"buyer": party_number(2 * i), "merchant": party_number(2 * i + 1)},
        "ttl_seconds": 86400,
    }


def requests_for(port: int, key: str, count: int, start: int, *, batch: int = 0) -> list[bytes]:
    """``count`` requests from order ``start`` on: single binds, or with
    ``batch`` > 0 ``POST /v1/bindings:batch`` of ``batch`` orders each."""
    payloads = []
    path = "/v1/bindings:batch" if batch else "/v1/bindings"
    per = batch or 1
    for r in range(count):
        first = start + r * per
        if batch:
            body = json.dumps({"items": [_order(i) for i in range(first, first + per)]}).encode()
        else:
            body = json.dumps(_order(first)).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        payloads.append(head.encode() + body)
    return payloads


def count_bindings(database_url: str) -> int:
    from sqlalchemy import text

    from maskline.db import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM bindings")).scalar_one())
    finally:
        engine.dispose()


def per_bind(result: LoadResult, binds: int) -> dict[str, Any]:
    """Binds/s and CPU µs per bind, per tier and in all, of one measured run."""
    cpu = result.cpu
    return {
        "binds": binds,
        "binds_per_second": binds / result.seconds if result.seconds else 0.0,
        "cpu_us_per_bind": {
            **{tier: 1e6 * used / binds for tier, used in cpu.items()},
            "all": 1e6 * sum(cpu.values()) / binds,
        }
        if binds
        else {},
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "failures": result.failures,
    }


def run_pool(args: argparse.Namespace, pool_size: int) -> dict[str, Any]:
    """One stack with ``pool_size`` relay numbers: single binds, then batches."""
    seconds, warmup = (2, 1) if args.quick else (args.seconds, 3)
    concurrency = args.concurrency or 4 * args.workers
    tmp = Path(tempfile.mkdtemp(prefix="maskline-bench-api-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MASKLINE_")}
    stack = Stack(tmp=tmp, env=env)
    try:
        redis_port, port = free_port(), free_port()
        redis_process = start_redis(redis_port, stack.log("redis.log"))
        stack.processes.append(redis_process)
        env.update(
            {
                "MASKLINE_ENV": "development",
                "MASKLINE_INSTANCE_PATH": str(tmp / "instance"),
                "MASKLINE_DATABASE_URL": args.database_url,
                "MASKLINE_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
                "MASKLINE_API_RATE_LIMITS": "bindings:write=1000000/second",
                # The bench's party numbers are new every time: no alert is meant.
                "MASKLINE_ALERT_KEY_DISTINCT_BUYERS_PER_HOUR": "10000000",
                "MASKLINE_ALERT_BINDINGS_PER_MINUTE": "1000000",
            }
        )
        reset_database(args.database_url)
        cli(env, "init")
        numbers_file = tmp / "pool.csv"
        numbers_file.write_text(relay_csv(pool_size))
        cli(env, "pool", "import", str(numbers_file))
        key = json.loads(
            cli(env, "apikey", "create", "--name", "bench", "--owner", "bench", "--scope", "bindings:write")
        )["key"]
        command = [maskline_executable(), "serve", "--host", "127.0.0.1", "--port", str(port)]
        command += ["--workers", str(args.workers)]
        server = subprocess.Popen(
            command,
            env=env,
            stdout=stack.log("maskline.log"),
            stderr=subprocess.STDOUT,
        )
        stack.processes.append(server)
        wait_until(lambda: healthy(port), server, "maskline serve", log=tmp / "maskline.log")
        groups: dict[str, Callable[[], list[int]]] = {
            "web": lambda: process_tree(server.pid),
            "redis": lambda: [redis_process.pid],
        }
        if (backends := postgres_backends(args.database_url)) is not None:
            groups["postgres"] = backends
        orders = Orders(port=port, key=key)
        orders.load(seconds=warmup, connections=concurrency)
        before = count_bindings(args.database_url)
        single = orders.load(seconds=seconds, connections=concurrency, meter=CpuMeter(groups))
        middle = count_bindings(args.database_url)
        batched = orders.load(
            seconds=seconds, connections=concurrency, meter=CpuMeter(groups), batch=args.batch_size
        )
        after = count_bindings(args.database_url)
    finally:
        stack.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "pool_size": pool_size,
        "single": {**figures_of(single), **per_bind(single, middle - before)},
        "batch": {**figures_of(batched), **per_bind(batched, after - middle), "batch_size": args.batch_size},
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every pool size in turn, ``rounds`` times (interleaved: 400, 40000, 400, ...)."""
    if args.quick:
        sizes, repeat = [args.numbers], 1
    else:
        sizes = [int(x) for x in args.pool_sizes.split(",")] if args.pool_sizes else [args.numbers]
        repeat = args.rounds
    rounds = [run_pool(args, size) for _ in range(repeat) for size in sizes]
    first = rounds[0]
    return {
        "cpus": os.cpu_count(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "wrk": wrk_version(),
        "quick": args.quick,
        "workers": args.workers,
        "concurrency": args.concurrency or 4 * args.workers,
        "seconds": args.seconds,
        "relay_numbers": first["pool_size"],
        # The first run's figures, where bench/report.py reads them.
        "load": first["single"],
        "single_client": first["single"],
        "rounds": rounds,
        "failures": [
            f"pool {r['pool_size']} {kind}: {r[kind]['failures']} answers failed"
            for r in rounds
            for kind in ("single", "batch")
            if r[kind]["failures"]
        ],
        "target_rate": TARGET_RATE,
    }


@dataclass
class Orders:
    """Binding requests for one server, each a new order with two new party numbers."""

    port: int
    key: str
    made: int = 0
    best_rate: float = 0.0

    def load(
        self, *, seconds: int, connections: int, meter: CpuMeter | None = None, batch: int = 0
    ) -> LoadResult:
        # Enough distinct orders for three times the best rate seen so far.
        per = batch or 1
        count = max(2000 // per, int(3 * self.best_rate * seconds / per) + 500)
        payloads = requests_for(self.port, self.key, count, self.made, batch=batch)
        self.made += count * per
        result = run_wrk(
            self.port,
            [payloads],
            seconds=seconds,
            connections=connections,
            # A batch answers 200 with each item's status; its binds are counted in SQL.
            expect_status=200 if batch else 201,
            meter=meter,
        )
        self.best_rate = max(self.best_rate, result.rate * per)
        return result


def figures_of(result: LoadResult) -> dict[str, Any]:
    cpu = result.cpu
    per_cpu = {tier: result.passed / used for tier, used in cpu.items() if used > 0}
    if sum(cpu.values()) > 0:
        per_cpu["all"] = result.passed / sum(cpu.values())
    return {
        **result.as_dict(),
        "created": result.passed,
        "requests_per_cpu_second": per_cpu,
    }


def report(figures: dict[str, Any]) -> str:
    lines = [
        f"# API benchmark ({figures['cpus']} CPUs, {figures['date']}, Python {figures['python']}, "
        f"{figures['workers']} gunicorn sync workers, {figures['concurrency']} wrk connections)",
        "",
        "| pool | kind | binds/s | CPU µs/bind: web | Redis | PostgreSQL | all | p50 | p99 | failures |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in figures["rounds"]:
        for kind in ("single", "batch"):
            f = r[kind]
            cpu = f.get("cpu_us_per_bind", {})
            label = kind if kind == "single" else f"batch of {f['batch_size']}"
            lines.append(
                f"| {r['pool_size']:,} | {label} | {f['binds_per_second']:,.0f} | {cpu.get('web', 0):,.0f} "
                f"| {cpu.get('redis', 0):,.0f} | {cpu.get('postgres', 0):,.0f} | {cpu.get('all', 0):,.0f} "
                f"| {f['p50_ms']:.1f} ms | {f['p99_ms']:.1f} ms | {f['failures']} |"
            )
    sizes = sorted({r["pool_size"] for r in figures["rounds"]})
    if len(sizes) == 2:
        cost = {
            size: [
                r["single"]["cpu_us_per_bind"].get("all", 0)
                for r in figures["rounds"]
                if r["pool_size"] == size
            ]
            for size in sizes
        }
        small, large = (sum(cost[s]) / len(cost[s]) for s in sizes)
        if small:
            lines += [
                "",
                f"CPU per single bind, mean of {len(cost[sizes[0]])} interleaved runs: {small:,.0f} µs with "
                f"{sizes[0]:,} relay numbers, {large:,.0f} µs with {sizes[1]:,}: ratio {large / small:.2f} "
                "(target within 10%)",
            ]
    lines += ["", "targets: single <= 2,000 µs CPU per bind (all tiers), batch <= 667 µs per binding"]
    lines += [f"Note: {failure}." for failure in figures["failures"]]
    return "\n".join(lines)


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
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--concurrency", type=int, default=0, help="wrk connections (default 4 x workers)")
    parser.add_argument("--seconds", type=int, default=10, help="length of the timed run (whole seconds)")
    parser.add_argument("--numbers", type=int, default=400, help="relay numbers in the pool")
    parser.add_argument(
        "--pool-sizes",
        default="400,40000",
        help="pool sizes to compare, a fresh stack per run (default %(default)s; --quick: --numbers only)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="interleaved runs of every pool size")
    parser.add_argument("--batch-size", type=int, default=10, help="binds per POST /v1/bindings:batch")
    args = parser.parse_args()
    figures = run(args)
    print(report(figures))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if figures["failures"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
