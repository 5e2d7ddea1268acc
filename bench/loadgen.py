"""Load generation for the benchmarks: wrk, in a process of its own.

The load generator never runs in the process that serves, nor in the one that
orchestrates: ``run_wrk`` starts ``wrk`` (Debian's ``wrk`` package) with
bench/replay.lua, which replays raw HTTP requests built and signed before
the run (``write_stock``) and checks every answer (status, and optionally a
piece of the body). wrk is a C event loop: on a 2-CPU machine it takes far
less CPU per request from the servers under test than a Python client would.

Also here: CPU accounting of the processes under test from /proc
(``CpuMeter``), so that a rate can be given per CPU-second of the web tier,
Redis and PostgreSQL, a figure that holds up better than a wall-clock rate on
a shared machine.

Importable (bench/soak.py and others may use it)::

    from bench.loadgen import run_wrk
    result = run_wrk(port, [payloads], seconds=5, connections=4, expect_status=200, expect_body="<Dial")
    result.rate, result.failures, result.p99_ms
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPLAY_SCRIPT = Path(__file__).resolve().parent / "replay.lua"
# wrk's default of 2 s would count a slow answer as a timeout; gunicorn's own
# worker timeout (30 s) is below this.
WRK_TIMEOUT_S = 60
MARKER = "WRK-JSON "


_NUMBER = re.compile(rb"\+?\d{7,}")


def redact(body: bytes) -> bytes:
    """An answer's body with every phone-number-like run of digits masked (no party number in output)."""
    return _NUMBER.sub(b"<number>", body)


def wrk_executable() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("bench: wrk not found (Debian's package `wrk`: apt-get install wrk)")
    return found


def wrk_version() -> str:
    done = subprocess.run([wrk_executable(), "--version"], capture_output=True, text=True, check=False)
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split(" [")[0].removeprefix("wrk ") if first else "unknown"


def write_stock(path: Path, payloads: Iterable[bytes]) -> int:
    """Raw requests for bench/replay.lua: each as its length, a newline, the bytes."""
    count = 0
    with path.open("wb") as sink:
        for payload in payloads:
            sink.write(b"%d\n" % len(payload))
            sink.write(payload)
            count += 1
    return count


@dataclass(frozen=True)
class LoadResult:
    """What one wrk run saw. Latencies are of every answer, passed or failed."""

    answers: int
    failures: int
    socket_errors: int
    reused: int
    statuses: dict[str, int]
    first_failure: str | None
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    connections: int
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> int:
        return self.answers - self.failures

    @property
    def rate(self) -> float:
        """Answers that passed their check, per second of the run."""
        return self.passed / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "answers": self.answers,
            "passed": self.passed,
            "failures": self.failures,
            "socket_errors": self.socket_errors,
            "reused": self.reused,
            "statuses": self.statuses,
            "first_failure": self.first_failure,
            "seconds": self.seconds,
            "rate": self.rate,
            "connections": self.connections,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "mean_ms": self.mean_ms,
            "cpu_seconds": self.cpu,
        }


def run_wrk(
    port: int,
    stocks: Sequence[Iterable[bytes]],
    *,
    seconds: float,
    connections: int,
    expect_status: int,
    expect_body: str = "",
    meter: CpuMeter | None = None,
    pace_ms: float = 0.0,
) -> LoadResult:
    """``connections`` closed-loop clients for ``seconds`` (whole seconds, at least 1).

    ``pace_ms`` makes each client wait that long before each request: a
    steady rate below saturation (see bench/replay.lua).

    ``stocks`` holds one iterable of raw requests per wrk thread (wrk runs one
    thread per stock; one thread is plenty for a few dozen connections).
    ``meter``, if given, records the CPU time of the processes under test
    over the run, into ``LoadResult.cpu``.
    """
    threads = len(stocks)
    if not 1 <= threads <= connections:
        raise ValueError("need between 1 and `connections` stocks")
    whole = max(1, round(seconds))
    with tempfile.TemporaryDirectory(prefix="maskline-wrk-") as tmp:
        prefix = Path(tmp) / "stock"
        for i, stock in enumerate(stocks):
            write_stock(Path(f"{prefix}.{i}"), stock)
        command = [
            wrk_executable(),
            f"--threads={threads}",
            f"--connections={connections}",
            f"--duration={whole}s",
            f"--timeout={WRK_TIMEOUT_S}s",
            f"--script={REPLAY_SCRIPT}",
            f"http://127.0.0.1:{port}/",
            "--",
            str(prefix),
            str(expect_status),
            expect_body,
            f"{pace_ms:g}",
        ]
        if meter is not None:
            meter.start()
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=whole + WRK_TIMEOUT_S + 30, check=False
        )
        cpu = meter.stop() if meter is not None else {}
    line = next((x for x in done.stdout.splitlines() if x.startswith(MARKER)), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(
            f"bench: wrk failed (status {done.returncode}): {done.stderr.strip() or done.stdout.strip()}"
        )
    raw = json.loads(line.removeprefix(MARKER))
    latency, errors = raw["latency_us"], raw["socket_errors"]
    socket_errors = sum(int(errors[k]) for k in ("connect", "read", "write", "timeout"))
    return LoadResult(
        answers=int(raw["answers"]),
        failures=int(raw["failures"]) + socket_errors,
        socket_errors=socket_errors,
        reused=int(raw["reused"]),
        statuses={k: int(v) for k, v in sorted(raw["statuses"].items())},
        first_failure=raw.get("first_failure"),
        seconds=raw["duration_us"] / 1e6,
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        mean_ms=latency["mean"] / 1000,
        connections=connections,
        cpu=cpu,
    )


# -- CPU accounting ------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user + system CPU seconds) of a live process, from /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def process_tree(root: int) -> list[int]:
    """``root`` and every process below it (gunicorn's master and its workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            children.setdefault(stat[0], []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


class CpuMeter:
    """CPU seconds spent by named groups of processes between start() and stop().

    Each group is a callable returning its current pids. A process that
    appears during the run counts whole (all its CPU is from the run); one
    that exits during the run is lost. Linux only: elsewhere stop() gives {}.
    """

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.enabled = Path("/proc/self/stat").exists()
        self.before: dict[str, dict[int, float]] = {}

    def _snapshot(self) -> dict[str, dict[int, float]]:
        taken = {}
        for name, pids in self.groups.items():
            times = {}
            for pid in pids():
                if (stat := _stat(pid)) is not None:
                    times[pid] = stat[1]
            taken[name] = times
        return taken

    def start(self) -> None:
        if self.enabled:
            self.before = self._snapshot()

    def stop(self) -> dict[str, float]:
        if not self.enabled:
            return {}
        after = self._snapshot()
        return {
            name: sum(t - self.before.get(name, {}).get(pid, 0.0) for pid, t in times.items())
            for name, times in after.items()
        }


def postgres_backends(database_url: str) -> Callable[[], list[int]] | None:
    """The pids of PostgreSQL's backends on the bench's database, if the server is on this machine.

    Returns a callable for ``CpuMeter``, or None when PostgreSQL is remote
    (its processes are not ours to see). The query's own backend is left out.
    """
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from maskline.db import make_engine

    url = make_url(database_url)
    if url.get_backend_name() != "postgresql" or url.host not in (None, "", "127.0.0.1", "localhost", "::1"):
        return None
    engine = make_engine(database_url)
    query = text(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )

    def pids() -> list[int]:
        with engine.connect() as conn:
            return [int(pid) for pid in conn.execute(query).scalars()]

    try:
        pids()
    except Exception:  # no figure is better than no run
        engine.dispose()
        return None
    return pids
