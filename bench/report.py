"""Run every benchmark and write one Markdown report (``make bench``, ``make bench-smoke``).

Each of bench/vault.py, bench/numbers.py, bench/webhooks.py, bench/api.py and
bench/footprint.py runs as a subprocess with ``--json`` (and ``--smoke`` in a smoke run); their
figures become one document: the date, the machine (CPU count and model),
the versions of Python, PostgreSQL, Redis, gunicorn and wrk, the figures a
capacity plan works from, then one table per benchmark with each figure next
to its same-run baseline, the ratio, and the target with met or missed. The
raw figures go beside the Markdown, as JSON (``--out x.md`` -> ``x.json``).

Targets are goals, never gates: a missed target is reported and the run
still exits 0. A benchmark that fails (exits non-zero, or reports answers
that failed their checks) makes this script exit 1, so CI catches a broken
benchmark; if a benchmark produced no figures at all, no report is written.

    python bench/report.py [--smoke] [--out docs/benchmarks.md] [--database-url URL] [--only footprint ...]

``--smoke`` runs each benchmark for a few seconds: proof that they work, with
figures that mean nothing (the report says so at the top).
"""

from __future__ import annotations

import sys
from pathlib import Path

# As in the other scripts: keep bench/numbers.py from shadowing the stdlib.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.footprint import duration as ttl

BENCH_DIR = Path(__file__).resolve().parent
BENCHMARKS = ("vault", "numbers", "webhooks", "api", "footprint")
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/bench"
# A bound on one benchmark, so that a hang cannot stall CI forever.
FULL_TIMEOUT_S = 3600
SMOKE_TIMEOUT_S = 300


@dataclass
class Outcome:
    """One benchmark script's run: its exit status, its figures (if it wrote any), its wall time."""

    name: str
    returncode: int
    figures: dict[str, Any] | None
    seconds: float

    @property
    def failures(self) -> list[str]:
        found = list(self.figures.get("failures", [])) if self.figures else []
        if self.returncode != 0 and not found:
            found.append(f"bench/{self.name}.py exited with status {self.returncode}")
        return found


def run_benchmark(name: str, *, smoke: bool, database_url: str, tmp: Path) -> Outcome:
    out = tmp / f"{name}.json"
    command = [
        sys.executable,
        str(BENCH_DIR / f"{name}.py"),
        "--json",
        str(out),
        "--database-url",
        database_url,
    ]
    if smoke:
        command.append("--smoke")
    print(f"\n==> bench/{name}.py{' --smoke' if smoke else ''}", flush=True)
    started = time.monotonic()
    try:
        returncode = subprocess.run(
            command, timeout=SMOKE_TIMEOUT_S if smoke else FULL_TIMEOUT_S, check=False
        ).returncode
    except subprocess.TimeoutExpired:
        print(f"bench/{name}.py: timed out", file=sys.stderr)
        returncode = -1
    seconds = time.monotonic() - started
    figures = json.loads(out.read_text()) if out.exists() else None
    return Outcome(name=name, returncode=returncode, figures=figures, seconds=seconds)


# -- the machine ---------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def postgres_version(database_url: str) -> str:
    from sqlalchemy import text

    from maskline.db import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar_one())
    except Exception as exc:  # the report still says which benchmark could not reach it
        return f"unreachable ({type(exc).__name__})"
    finally:
        engine.dispose()


def command_version(command: list[str], pick: Callable[[str], str]) -> str:
    if shutil.which(command[0]) is None:
        return "not installed"
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    try:
        return pick(done.stdout or done.stderr)
    except (IndexError, ValueError):
        return "unknown"


def machine(database_url: str) -> dict[str, Any]:
    import gunicorn

    from bench.loadgen import wrk_version

    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "postgresql": postgres_version(database_url),
        # The benchmarks start their own redis-server from this binary.
        "redis": command_version(["redis-server", "--version"], lambda out: out.split("v=")[1].split()[0]),
        "gunicorn": gunicorn.__version__,
        "wrk": wrk_version() if shutil.which("wrk") else "not installed",
        "load_average_before": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


# -- rendering -----------------------------------------------------------------------


def n(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return text + unit


def met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def ratio(value: float | None, low: float | None = None, high: float | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" + (f" ({low:.2f}-{high:.2f})" if low is not None and high is not None else "")


Row = tuple[str, str, str, str, str, str]


def table(rows: list[Row]) -> list[str]:
    return [
        "| figure | value | same-run baseline | ratio | target | met? |",
        "|---|---|---|---|---|---|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def vault_section(f: dict[str, Any]) -> list[str]:
    c, p, target = f["crypto"], f["puts"], 0.67
    rows: list[Row] = []
    for op in ("seal", "open"):
        r = c[f"{op}_ratio"]
        rows.append(
            (
                f"vault {op}s per CPU-second (own API vs bare `cryptography`, same work)",
                n(c[f"{op}s_per_s"], "/s"),
                n(c[f"bare_{op}s_per_s"], "/s"),
                ratio(r, c[f"{op}_ratio_q1"], c[f"{op}_ratio_q3"]),
                f">= {target}",
                met(r >= target),
            )
        )
    rows += [
        (
            f"`VaultService.put` into {p['backend']}, one transaction each",
            n(p["puts_per_s"], "/s"),
            "-",
            "-",
            "-",
            "-",
        ),
        ("the same, 100 per transaction", n(p["batched_puts_per_s"], "/s"), "-", "-", "-", "-"),
    ]
    notes = [
        f"{c['count']:,} operations per round, {c['rounds']} interleaved rounds, timed in process CPU time "
        "(one core); the ratio is the median of the rounds' ratios (middle half in brackets)."
    ]
    if p.get("fallback"):
        notes.append(f"Note: {p['fallback']}.")
    return [*notes, "", *table(rows)]


def numbers_section(f: dict[str, Any]) -> list[str]:
    a, r, m, p = f["allocations"], f["resolves"], f["memory"], f["pool"]
    rows: list[Row] = [
        (
            "full binds (normalize, seal 2 parties, SQL rows, audit, Lua claim), sequential",
            n(a["binds_per_s"], "/s"),
            "-",
            "-",
            "-",
            "-",
        ),
        ("Lua claims alone, sequential", n(a["lua_claims_per_s"], "/s"), "-", "-", "-", "-"),
        (
            "resolves (one Lua round trip) vs raw redis-py GET",
            n(r["resolves_per_s"], "/s"),
            n(r["raw_gets_per_s"], "/s"),
            ratio(r["ratio"]),
            "-",
            "-",
        ),
        (
            f"Redis memory per live axb binding, route hashes (MEMORY USAGE), {m['bindings']:,} bindings",
            n(m["bytes_per_binding"], " B"),
            "-",
            "-",
            "<= 256 B",
            met(m["bytes_per_binding"] <= 256),
        ),
        (
            "the same, growth of Redis `used_memory` per binding (all keys, overheads)",
            n(m.get("used_memory_per_binding"), " B"),
            "-",
            "-",
            "-",
            "-",
        ),
        (
            f"pool for {p['orders']:,} orders, Zipf merchants, 24 h cool-down: smallest pool vs lower bound",
            str(p["smallest_pool"]),
            str(p["lower_bound"]),
            ratio(p["efficiency"]),
            "-",
            "-",
        ),
    ]
    return [
        f"Redis {f.get('redis', '?')} (a throwaway server), hash encoding `{m['hash_encoding']}`; "
        "one client in this process, so the rates are sequential latency, not capacity.",
        "",
        *table(rows),
    ]


def statuses(histogram: dict[str, int]) -> str:
    return ", ".join(f"{status} x {count:,}" for status, count in sorted(histogram.items())) or "none"


def cpu_note(cpu: dict[str, float]) -> str:
    return ", ".join(f"{tier} {used:.1f} s" for tier, used in cpu.items()) or "not measured"


def webhooks_section(f: dict[str, Any]) -> list[str]:
    t, down = f["throughput"], f["redis_down"]
    m, b = t["maskline"], t["bare"]
    tail = m["p99_ms"] / m["p50_ms"]
    mc, bc = m["requests_per_cpu_second"], b["requests_per_cpu_second"]
    rows: list[Row] = [
        (
            f"signed voice webhooks (`<Dial>`), {f['concurrency']} connections, maskline vs bare Flask",
            n(m["requests_per_s"], "/s"),
            n(b["requests_per_s"], "/s"),
            ratio(t["ratio"], t["ratio_q1"], t["ratio_q3"]),
            ">= 0.6",
            met(t["ratio"] >= 0.6),
        ),
        (
            "the same, calls per CPU-second of the web workers",
            n(mc.get("web")),
            n(bc.get("web")),
            ratio(t.get("web_cpu_ratio")),
            "-",
            "-",
        ),
        (
            f"the same, calls per CPU-second of web + Redis + PostgreSQL ({cpu_note(m['cpu_seconds'])})",
            n(mc.get("all")),
            "-",
            "-",
            "-",
            "-",
        ),
        (
            "latency under load, p50 / p99 (medians over rounds)",
            f"{m['p50_ms']:.1f} / {m['p99_ms']:.1f} ms",
            f"{b['p50_ms']:.1f} / {b['p99_ms']:.1f} ms",
            f"p99/p50 {tail:.2f}",
            "p99 < 3 x p50",
            met(tail < 3),
        ),
        (
            "one client",
            n(m["single_client"]["requests_per_s"], "/s"),
            n(b["single_client"]["requests_per_s"], "/s"),
            ratio(
                m["single_client"]["requests_per_s"] / b["single_client"]["requests_per_s"]
                if b["single_client"]["requests_per_s"]
                else None
            ),
            "-",
            "-",
        ),
        (
            "one client, p50 / p99",
            f"{m['single_client']['p50_ms']:.1f} / {m['single_client']['p99_ms']:.1f} ms",
            f"{b['single_client']['p50_ms']:.1f} / {b['single_client']['p99_ms']:.1f} ms",
            "-",
            "-",
            "-",
        ),
    ]
    for key, what in (("frozen", "Redis frozen (SIGSTOP)"), ("killed", "Redis killed")):
        d = down[key]
        rows.append(
            (
                f"{what}: apology answers (HTTP 200), median latency",
                f"{d['apologies']}/{d['requests']}, {n(d['median_ms'], ' ms')}",
                "-",
                "-",
                "every answer the apology",
                met(d["apologies"] == d["requests"]),
            )
        )
    recovery = down["recovery_after_sigcont_s"]
    rows.append(("after SIGCONT, first call connected again after", n(recovery, " s"), "-", "-", "-", "-"))
    return [
        f"`maskline serve` and the bare Flask endpoint (bench/bare_twiml_app.py) under the same gunicorn "
        f"settings, {f['workers']} sync workers each, PostgreSQL and a throwaway Redis; load from wrk "
        f"{f['wrk']} in its own process, one connection per request, {f['rounds']} interleaved rounds of "
        f"{f['seconds']} s per server after {f['warmup']} s of warm-up; every answer checked (HTTP 200 with "
        f"`<Dial>`). Status codes seen: maskline {statuses(m['statuses'])}, bare {statuses(b['statuses'])}.",
        "",
        *table(rows),
    ]


def api_section(f: dict[str, Any]) -> list[str]:
    m, s, target = f["load"], f["single_client"], f["target_rate"]
    c = m["requests_per_cpu_second"]
    rows: list[Row] = [
        (
            f"`POST /v1/bindings` (two new party numbers each), {f['concurrency']} connections",
            n(m["rate"], "/s"),
            "-",
            "-",
            f">= {target:,.0f}/s",
            met(m["rate"] >= target),
        ),
        ("the same, p50 / p99", f"{m['p50_ms']:.1f} / {m['p99_ms']:.1f} ms", "-", "-", "-", "-"),
        ("the same, creations per CPU-second of the web workers", n(c.get("web")), "-", "-", "-", "-"),
        (
            f"the same, creations per CPU-second of web + Redis + PostgreSQL ({cpu_note(m['cpu_seconds'])})",
            n(c.get("all")),
            "-",
            "-",
            "-",
            "-",
        ),
    ]
    if "rounds" not in f:  # runs before the pool-size comparison had a one-client run
        rows += [
            ("one client", n(s["rate"], "/s"), "-", "-", "-", "-"),
            ("one client, p50 / p99", f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f} ms", "-", "-", "-", "-"),
        ]
    return [
        f"`maskline serve`, {f['workers']} sync gunicorn workers, PostgreSQL and a throwaway Redis, "
        f"{f['relay_numbers']} relay numbers; load from wrk in its own process for {f['seconds']} s; every "
        f"answer checked (201). Status codes seen: {statuses(m['statuses'])}. "
        "No same-run baseline: the target is absolute (for scale, Twilio Proxy allows 30 requests/s "
        "per endpoint, Alibaba's service 5,000/s per account).",
        "",
        *table(rows),
        "",
        # Binds and batches per pool size, CPU per bind per tier (bench/api.py's own table).
        *bench_api_rounds(f),
    ]


def bench_api_rounds(f: dict[str, Any]) -> list[str]:
    if "rounds" not in f:
        return []
    from bench.api import report as api_report

    return api_report(f).splitlines()[2:]


def footprint_section(f: dict[str, Any]) -> list[str]:
    r, pg = f["redis_summary"], f["postgres"]
    lines = [
        f"{f['bindings']:,} bindings made through `POST /v1/bindings` in process (API key, so an audit "
        "record; Idempotency-Key, so an idempotency record; an owner with an events URL, so outbox rows), "
        f"two new parties each, on {f['relay_numbers']} relay numbers; then {f['calls']:,} calls and "
        f"{f['texts']:,} texts through the carrier simulator, signed as Twilio signs them, each with its "
        f"status callback. Redis {f.get('redis', '?')} (a throwaway server): every key scanned before and "
        "after each phase, new keys classified by shape, MEMORY USAGE with every element counted. "
        "PostgreSQL: `pg_total_relation_size` (heap, indexes, TOAST) after `VACUUM ANALYZE`, the growth "
        "of each phase divided by its count. The clock is fixed, so each binding's quota counters fall in "
        "one hour and one day window.",
        "",
        "| Redis key class | after | keys | median bytes | bytes per unit | TTL |",
        "|---|---|---|---|---|---|",
    ]
    for phase, unit in (("per_binding", "binding"), ("per_call", "call"), ("per_sms", "text")):
        for name, c in f["redis_keys"][phase].items():
            grown = f" (+{c['grown_bytes']:,} B in existing keys)" if c.get("grown_bytes") else ""
            span = "-"
            if c.get("new_keys"):
                low, high = ttl(c["ttl_min_s"]), ttl(c["ttl_max_s"])
                span = low if low == high else f"{low} to {high}"
            lines.append(
                f"| `{name}` | {unit} | {c['new_keys']:,}{grown} | {n(c.get('median_bytes'))} | "
                f"{n(c['bytes_per_unit'], ' B')} | {span} |"
            )
    lines += [
        "",
        f"All new Redis keys per call / per text: {n(r['redis_bytes_per_call'], ' B')} / "
        f"{n(r['redis_bytes_per_sms'], ' B')}; growth of `used_memory` (with the keyspace's own "
        f"overheads) {n(r['used_memory_per_call'], ' B')} / {n(r['used_memory_per_sms'], ' B')}.",
        "",
        "| PostgreSQL table | rows | bytes | bytes per row | per binding | per call | per text |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, t in pg["tables"].items():
        grew = [pg[k].get(name) for k in ("per_binding", "per_call", "per_sms")]
        if not t["rows"] and not any(grew):
            continue
        lines.append(
            f"| {name} | {t['rows']:,} | {t['bytes']:,} | {n(t.get('bytes_per_row'))} | "
            + " | ".join(
                f"{g['rows_per_unit']:.2f} rows, {n(g['bytes_per_unit'], ' B')}" if g else "-" for g in grew
            )
            + " |"
        )
    lines.append(
        f"| **total** | | | | {n(pg['bytes_per_binding'], ' B')} | {n(pg['bytes_per_call'], ' B')} | "
        f"{n(pg['bytes_per_sms'], ' B')} |"
    )
    return lines


SECTIONS: dict[str, tuple[str, Callable[[dict[str, Any]], list[str]]]] = {
    "vault": ("Vault (bench/vault.py)", vault_section),
    "numbers": ("Numbers: allocation, resolve, Redis memory, pool (bench/numbers.py)", numbers_section),
    "webhooks": ("Voice webhooks under gunicorn (bench/webhooks.py)", webhooks_section),
    "api": ("Binding creation through the REST API (bench/api.py)", api_section),
    "footprint": ("Storage per binding and per call (bench/footprint.py)", footprint_section),
}


def capacity_rows(figures: dict[str, dict[str, Any]]) -> list[str]:
    """The figures docs/scaling.md works from, each with how it was measured."""
    rows = []
    if (num := figures.get("numbers")) is not None:
        m = num["memory"]
        rows.append(
            f"| Redis memory per live axb binding | {n(m['bytes_per_binding'], ' B')} in route hashes, "
            f"{n(m.get('used_memory_per_binding'), ' B')} of `used_memory` growth "
            f"| {m['bindings']:,} bindings, "
            f"200 per relay number, Redis {num.get('redis', '?')} |"
        )
    if (wh := figures.get("webhooks")) is not None:
        m = wh["throughput"]["maskline"]
        c = m["requests_per_cpu_second"]
        rows.append(
            f"| voice webhooks (connect) per core | {n(c.get('all'))} per CPU-second of web + Redis + "
            f"PostgreSQL; {n(c.get('web'))} per CPU-second of web workers alone | "
            f"{n(m['requests_per_s'], '/s')} wall-clock with {wh['workers']} sync workers on "
            f"{wh['cpus']} CPUs shared with PostgreSQL, Redis and wrk |"
        )
    if (api := figures.get("api")) is not None:
        m = api["load"]
        c = m["requests_per_cpu_second"]
        rows.append(
            f"| API binding creations per core | {n(c.get('all'))} per CPU-second of web + Redis + "
            f"PostgreSQL; {n(c.get('web'))} per CPU-second of web workers alone | "
            f"{n(m['rate'], '/s')} wall-clock with {api['workers']} sync workers on {api['cpus']} CPUs |"
        )
    if (v := figures.get("vault")) is not None:
        c = v["crypto"]
        rows.append(
            f"| vault seals / opens per core | {n(c['seals_per_s'], '/s')} / {n(c['opens_per_s'], '/s')} "
            "per CPU-second | one process, CPU time |"
        )
    if (fp := figures.get("footprint")) is not None:
        r, pg = fp["redis_summary"], fp["postgres"]
        rows += [
            f"| Redis de-dup record per call / per text (`ml:{{X}}:c:<SID>`) | "
            f"{n(r['dedupe_call_median_bytes'], ' B')} / {n(r['dedupe_sms_median_bytes'], ' B')} "
            f"(median MEMORY USAGE), kept {ttl(r['dedupe_ended_ttl_s'])} once the call has ended "
            f"(`webhook_ended_ttl`; {ttl(r['dedupe_ttl_s'])}, `webhook_dedupe_ttl`, for a call not "
            "connected) | "
            f"{fp['calls']:,} calls and texts; every new key per call / text "
            f"{n(r['redis_bytes_per_call'], ' B')} / {n(r['redis_bytes_per_sms'], ' B')}, "
            f"`used_memory` growth {n(r['used_memory_per_call'], ' B')} / "
            f"{n(r['used_memory_per_sms'], ' B')} |",
            f"| Redis quota counters per active binding | {n(r['quota_bytes_per_active_binding'], ' B')} in "
            f"{r['quota_keys'] / max(1, r['active_bindings']):.1f} keys (call and sms, hour and day; "
            "each kept to the end of its hour or day, plus a minute) | "
            "a binding with calls and texts in one hour |",
            f"| PostgreSQL bytes per binding | {n(pg['bytes_per_binding'], ' B')} | {fp['bindings']:,} "
            "bindings through the API: vault entries, binding, members, audit, idempotency, outbox |",
            f"| PostgreSQL bytes per call / per text | {n(pg['bytes_per_call'], ' B')} / "
            f"{n(pg['bytes_per_sms'], ' B')} | interaction and its outbox event, after VACUUM ANALYZE |",
        ]
    if not rows:
        return []
    return [
        "## Figures for the capacity plan",
        "",
        "CPU-seconds are read from /proc over the timed runs: the gunicorn master and workers, the "
        "benchmark's own redis-server, and the PostgreSQL backends on the benchmark's database. A rate "
        "per CPU-second is a rate per fully busy core, and holds up better on a shared machine than a "
        "wall-clock rate.",
        "",
        "| figure | value | measured as |",
        "|---|---|---|",
        *rows,
        "",
    ]


def render(outcomes: list[Outcome], info: dict[str, Any], *, smoke: bool) -> str:
    figures = {o.name: o.figures for o in outcomes if o.figures is not None}
    failures = [f"{o.name}: {failure}" for o in outcomes for failure in o.failures]
    load = info.get("load_average_before")
    after = info.get("load_average_after")
    lines = ["# maskline benchmarks", ""]
    if smoke:
        lines += [
            "> **Smoke run** (`make bench-smoke`): every benchmark ran for a few seconds to prove it works. "
            "These figures mean nothing; run `make bench` for real ones.",
            "",
        ]
    lines += [
        f"Generated by `make {'bench-smoke' if smoke else 'bench'}` (bench/report.py) on {info['date']}. "
        "Benchmarks print figures and same-run ratios; they never assert on time, and a missed target is "
        "reported, not failed.",
        "",
        "| machine | |",
        "|---|---|",
        f"| CPUs (`os.cpu_count()`) | {info['cpus']} |",
        f"| CPU model | {info['cpu_model']} |",
        f"| platform | {info['platform']} |",
        f"| Python | {info['python']} |",
        f"| PostgreSQL | {info['postgresql']} |",
        f"| Redis | {info['redis']} |",
        f"| gunicorn / wrk | {info['gunicorn']} / {info['wrk']} |",
    ]
    if load is not None and after is not None:
        lines.append(
            f"| load average (1, 5, 15 min) before / after | {' '.join(f'{x:.2f}' for x in load)} / "
            f"{' '.join(f'{x:.2f}' for x in after)} |"
        )
    lines.append(f"| wall time | {' + '.join(f'{o.name} {o.seconds:.0f} s' for o in outcomes)} |")
    lines.append("")
    if failures:
        lines += ["## Failures", "", *(f"- {failure}" for failure in failures), ""]
    lines += capacity_rows(figures)
    for o in outcomes:
        title, section = SECTIONS[o.name]
        lines += [f"## {title}", ""]
        lines += section(o.figures) if o.figures is not None else ["No figures: the benchmark failed."]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help="a few seconds per benchmark (figures mean nothing)"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"), help="the Markdown report")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("MASKLINE_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL for every benchmark, emptied first (default: $MASKLINE_BENCH_DATABASE_URL or "
        "%(default)s)",
    )
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="run only these (repeatable)")
    args = parser.parse_args()
    info = machine(args.database_url)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="maskline-bench-report-") as tmp:
        outcomes = [
            run_benchmark(name, smoke=args.smoke, database_url=args.database_url, tmp=Path(tmp))
            for name in BENCHMARKS
            if not args.only or name in args.only
        ]
    info["load_average_after"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    info["wall_seconds"] = time.monotonic() - started
    failed = [o for o in outcomes if o.failures]
    if any(o.figures is None for o in outcomes):
        names = ", ".join(o.name for o in outcomes if o.figures is None)
        raise SystemExit(f"bench: no figures from {names}; {args.out} not written")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(outcomes, info, smoke=args.smoke))
    raw = {"smoke": args.smoke, "machine": info, **{o.name: o.figures for o in outcomes}}
    args.out.with_suffix(".json").write_text(json.dumps(raw, indent=2) + "\n")
    print(f"\nbench: wrote {args.out} and {args.out.with_suffix('.json')} in {info['wall_seconds']:.0f} s")
    if failed:
        for o in failed:
            for failure in o.failures:
                print(f"bench: {o.name}: {failure}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
