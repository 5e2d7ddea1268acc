"""The soak's set-up: the services it starts and the commands it runs.

The pieces the benchmarks already have (free port, throwaway redis-server,
emptied database, ``maskline`` commands, stopping processes) are imported
from bench/webhooks.py and bench/api.py here and only here, behind thin
wrappers: when those move to a shared module, this file is the one to change.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bench import api as bench_api
from bench import webhooks as bench_webhooks

PUBLIC_URL = "https://relay.soak.invalid"
COOLDOWN_SECONDS = 30

# Settings that make a soak of minutes reach its steady state. Each one shortens
# how long something ended is kept, so that keeping it (and purging it) happens
# many times within the run instead of once a day:
SOAK_SETTINGS = {
    # Ended bindings stay in Redis through the cool-down, then the worker
    # purges them; 24 h would make every route entry of the run look leaked.
    "MASKLINE_COOLDOWN": f"{COOLDOWN_SECONDS}s",
    # De-duplication records of webhooks (7 d by default) expire by TTL.
    "MASKLINE_WEBHOOK_DEDUPE_TTL": "2m",
    # Idempotency records of binding creation: purged by the worker.
    "MASKLINE_IDEMPOTENCY_TTL": "2m",
    # A "delivered" order's binding ends this long after (one of the soak's expiries).
    "MASKLINE_DELIVERY_GRACE": "20s",
    # The soak is about routing, not quotas: a quota refusal would read as a misroute.
    "MASKLINE_CALLS_PER_HOUR": "100000",
    "MASKLINE_CALLS_PER_DAY": "100000",
    "MASKLINE_SMS_PER_HOUR": "100000",
    "MASKLINE_SMS_PER_DAY": "100000",
    # The order system's normal peak (as the README asks it to be set).
    "MASKLINE_ALERT_KEY_DISTINCT_BUYERS_PER_HOUR": "1000000",
    "MASKLINE_ALERT_BINDINGS_PER_MINUTE": "100000",
}


def free_port() -> int:
    return bench_webhooks.free_port()


def maskline_executable() -> str:
    return bench_webhooks.maskline_executable()


def reset_database(url: str) -> None:
    """Drop maskline's tables; refuses the test suite's database ``test``."""
    bench_webhooks.reset_database(url)


def cli(env: dict[str, str], *args: str) -> str:
    return bench_webhooks.cli(env, *args)


def relay_csv(count: int) -> str:
    return bench_api.relay_csv(count)


def healthy(port: int) -> bool:
    return bench_webhooks.healthy(port)


def stop(process: subprocess.Popen[bytes]) -> None:
    bench_webhooks.stop(process)


@dataclass
class Soak:
    """Everything the soak started; ``close()`` stops it all and removes the folder."""

    tmp: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="maskline-soak-")))
    env: dict[str, str] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    sinks: list[IO[bytes]] = field(default_factory=list)
    auth_token: str = field(default_factory=lambda: secrets.token_hex(16))
    port: int = 0
    redis_port: int = 0
    api_key: str = ""
    serve: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None

    def log(self, name: str) -> IO[bytes]:
        sink = (self.tmp / name).open("wb")
        self.sinks.append(sink)
        return sink

    def start(self, *, database_url: str, pool: int, workers: int, worker_interval: float) -> None:
        self.redis_port, self.port = free_port(), free_port()
        self.processes.append(bench_webhooks.start_redis(self.redis_port, self.log("redis.log")))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MASKLINE_")}
        self.env.update(
            {
                "MASKLINE_ENV": "development",
                "MASKLINE_INSTANCE_PATH": str(self.tmp / "instance"),
                "MASKLINE_DATABASE_URL": database_url,
                "MASKLINE_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                "MASKLINE_TWILIO_AUTH_TOKEN": self.auth_token,
                "MASKLINE_PUBLIC_URL": PUBLIC_URL,
                "MASKLINE_LOG_FILE": str(self.tmp / "app-serve.log"),
                **SOAK_SETTINGS,
            }
        )
        reset_database(database_url)
        cli(self.env, "init")
        numbers_file = self.tmp / "pool.csv"
        numbers_file.write_text(relay_csv(pool))
        cli(self.env, "pool", "import", str(numbers_file))
        scopes = ("bindings:write", "bindings:read")
        created = cli(
            self.env,
            "apikey",
            "create",
            "--name",
            "soak",
            "--owner",
            "soak-shop",
            *(arg for scope in scopes for arg in ("--scope", scope)),
        )
        self.api_key = json.loads(created)["key"]
        exe = maskline_executable()
        self.serve = subprocess.Popen(
            [exe, "serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers)],
            env=self.env,
            stdout=self.log("serve.log"),
            stderr=subprocess.STDOUT,
        )
        self.processes.append(self.serve)
        # The worker logs to a file of its own: two processes appending to one
        # file could interleave lines, and the scan reads every file anyway.
        worker_env = {**self.env, "MASKLINE_LOG_FILE": str(self.tmp / "app-worker.log")}
        self.worker = subprocess.Popen(
            [exe, "worker", "--interval", f"{worker_interval:g}"],
            env=worker_env,
            stdout=self.log("worker.log"),
            stderr=subprocess.STDOUT,
        )
        self.processes.append(self.worker)
        serve = self.serve
        bench_webhooks.wait_until(
            lambda: healthy(self.port), serve, "maskline serve", log=self.tmp / "serve.log"
        )

    def logs(self) -> dict[str, bytes]:
        """Every log the run's processes wrote (read after they stopped)."""
        return {p.name: p.read_bytes() for p in sorted(self.tmp.glob("*.log")) if p.name != "redis.log"}

    def stop_processes(self) -> None:
        for process in reversed(self.processes):
            stop(process)
        self.processes.clear()
        for sink in self.sinks:
            sink.close()
        self.sinks.clear()

    def close(self) -> None:
        try:
            self.stop_processes()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
