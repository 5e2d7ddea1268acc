"""Storage footprint per unit of work (not a test: it prints figures, never asserts on size).

What a capacity plan needs besides rates: how many bytes each binding, call
and text leaves behind, in Redis and in PostgreSQL.

* Redis, beyond the route hashes (bench/numbers.py measures those): every
  key is scanned before and after the calls, and again after the texts, and
  each new key is classified by its shape (``ml:{X}:c:CA..`` decision record
  of a call, ``ml:{X}:c:SM..`` of a text, ``ml:{X}:q:<binding>:<call|sms>:<h|d>..``
  quota counters, ``ml:alert:..`` alert counters, anything else by its prefix):
  count, MEMORY USAGE (total and median) and TTL per class. Also the growth
  of the server's ``used_memory`` per call and per text.
* PostgreSQL: N bindings made through the real BindingService with an actor
  (as the API makes them, so each writes its audit record), two new parties
  each (two vault entries), then M calls and M texts through the carrier
  simulator (maskline.sim.carrier) against an in-process app (``create_app``
  and its FlaskTransport, every webhook signed as Twilio signs it), each
  followed by its status callback, which is what files the interaction and
  its outbox event. After each phase ``VACUUM ANALYZE`` and, per table, rows
  and ``pg_total_relation_size`` (heap, indexes, TOAST); the growth of each
  phase divided by its bindings, calls or texts.

The clock is fixed for the whole run, so every binding's counters fall in
one hour and one day window (four quota keys at most, as in production
within an hour) and the figures do not depend on when the run starts. The
alert thresholds on binding bursts are raised: a benchmark binds thousands
a minute from one key, which in production would raise one alert row per
window, not per binding; the Redis counters behind those alerts are still
written and measured.

Set-up as in the other benchmarks: PostgreSQL ``--database-url`` (its tables
are dropped and re-created; the database ``test`` is refused), a throwaway
redis-server on a free port (bench/numbers.py, ``throwaway_redis``), a key
ring in a temporary directory. No party number is printed or written.

    python bench/footprint.py [--smoke] [--json out.json] [--database-url URL]
        [--bindings 2000] [--calls 2000]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where
# bench/numbers.py would shadow the standard library's numbers module.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import datetime as dt
import json
import os
import re
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import redis

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/bench"
PUBLIC_URL = "http://localhost"
# One bind per party pair; a relay number carries at most this many here
# (below the routing store's own cap), so the pool is sized from it.
BINDINGS_PER_RELAY = 100
OWNER = "bench-footprint"
# Never called: the outbox rows stay pending, which is what is measured.
EVENTS_URL = "https://events.example.com/maskline"


@dataclass(frozen=True)
class Pair:
    """One binding's relay number and parties. The numbers stay in memory: never printed."""

    relay: str
    buyer: str
    merchant: str


# -- Redis -------------------------------------------------------------------------

# A sid is two letters and 32 hex digits; keep its kind (CA call, SM message).
_DEDUPE = re.compile(r"^ml:\{[^}]*\}:c:(CA|SM|MM)[0-9a-fA-F]+$")
_QUOTA = re.compile(r"^ml:\{[^}]*\}:q:[^:]+:(call|sms):([hd])\d+$")
_LIVE = re.compile(r"^ml:\{[^}]*\}:lv:[^:]+$")
_ALERT = re.compile(r"^ml:alert:([^:]+):")
_TAGGED = re.compile(r"^(ml:)\{[^}]*\}(.*)$")


def key_class(key: str) -> str:
    """A key's class: its shape with ids, numbers and windows elided (never a number in it)."""
    if m := _DEDUPE.match(key):
        return f"ml:{{X}}:c:{m.group(1)}.. de-dup record ({'call' if m.group(1) == 'CA' else 'sms'})"
    if m := _QUOTA.match(key):
        return f"ml:{{X}}:q:<binding>:{m.group(1)}:{m.group(2)}<window> quota"
    if _LIVE.match(key):
        return "ml:{X}:lv:<binding> live connects"
    if m := _ALERT.match(key):
        return f"ml:alert:{m.group(1)}:<subject>:<window> alert counter"
    if m := _TAGGED.match(key):
        rest = m.group(2)
        # The route hash is "ml:{X}"; anything else on X keeps its first part.
        return "ml:{X} route hash" if not rest else f"ml:{{X}}:{rest.split(':')[1]}:.."
    return ":".join(key.split(":")[:2]) + ":.."


@dataclass(frozen=True)
class KeyInfo:
    """One key's MEMORY USAGE (bytes) and TTL (seconds; -1 for none)."""

    bytes: int
    ttl: int


def scan(client: redis.Redis) -> dict[str, KeyInfo]:
    """Every key of the server with its size and TTL (the throwaway server holds only this run's)."""
    found: dict[str, KeyInfo] = {}
    pipe = client.pipeline(transaction=False)
    names = [k.decode() for k in client.scan_iter(count=1000)]
    for name in names:
        # samples=0: every element counted, not an estimate from five.
        pipe.memory_usage(name, samples=0)
        pipe.ttl(name)
    replies = pipe.execute()
    for i, name in enumerate(names):
        size, ttl = replies[2 * i], replies[2 * i + 1]
        if size is not None:  # expired between SCAN and MEMORY USAGE
            found[name] = KeyInfo(bytes=int(size), ttl=int(ttl))
    return found


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def classify(before: dict[str, KeyInfo], after: dict[str, KeyInfo], per: int) -> dict[str, dict[str, Any]]:
    """New keys by class: count, bytes (total, median, per unit of work), TTLs; and grown keys."""
    classes: dict[str, list[KeyInfo]] = {}
    for name, info in after.items():
        if name not in before:
            classes.setdefault(key_class(name), []).append(info)
    out: dict[str, dict[str, Any]] = {}
    for name, infos in sorted(classes.items()):
        sizes = [i.bytes for i in infos]
        ttls = [i.ttl for i in infos]
        out[name] = {
            "new_keys": len(infos),
            "bytes": sum(sizes),
            "median_bytes": statistics.median(sizes),
            "ttl_min_s": min(ttls),
            "ttl_median_s": statistics.median(ttls),
            "ttl_max_s": max(ttls),
        }
    # Keys that were there already and grew (a route hash, a counter of the binds).
    grown: dict[str, int] = Counter()
    for name, info in after.items():
        if name in before and info.bytes != before[name].bytes:
            grown[key_class(name)] += info.bytes - before[name].bytes
    for name, delta in grown.items():
        entry = out.setdefault(name, {"new_keys": 0, "bytes": 0})
        entry["grown_bytes"] = delta
    for entry in out.values():
        entry["bytes_per_unit"] = (entry["bytes"] + entry.get("grown_bytes", 0)) / per
    return out


# -- PostgreSQL --------------------------------------------------------------------


def table_sizes(engine: Any) -> dict[str, dict[str, int]]:
    """Rows and on-disk bytes of every maskline table, after VACUUM ANALYZE (so sizes are settled)."""
    from sqlalchemy import text

    from maskline.db import Base

    names = [t.name for t in Base.metadata.sorted_tables]
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        sizes = {}
        for name in names:
            rows = conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one()  # noqa: S608 (our tables)
            total, heap = conn.execute(
                text("SELECT pg_total_relation_size(:t), pg_relation_size(:t)"), {"t": f'"{name}"'}
            ).one()
            sizes[name] = {"rows": int(rows), "bytes": int(total), "heap_bytes": int(heap)}
    return sizes


def growth(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]], per: int
) -> dict[str, dict[str, float]]:
    """Per table that grew: new rows and bytes, and both per unit of work."""
    out = {}
    for name, now in after.items():
        rows = now["rows"] - before[name]["rows"]
        size = now["bytes"] - before[name]["bytes"]
        if rows or size:
            out[name] = {
                "rows": rows,
                "bytes": size,
                "rows_per_unit": rows / per,
                "bytes_per_unit": size / per,
            }
    return out


# -- the run -----------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench.numbers import throwaway_redis
    from bench.webhooks import reset_database

    reset_database(args.database_url)  # refuses the database `test`
    with (
        throwaway_redis() as redis_url,
        tempfile.TemporaryDirectory(prefix="maskline-bench-footprint-") as tmp,
    ):
        return measure(args, redis_url, Path(tmp))


def measure(args: argparse.Namespace, redis_url: str, tmp: Path) -> dict[str, Any]:
    from bench.api import party_number
    from config import load_settings
    from maskline import create_app, migrate, services_of
    from maskline.api.views import EXTENSION_KEY as API_EXTENSION
    from maskline.clock import FixedClock
    from maskline.db import make_engine
    from maskline.sim.carrier import SMS_STATUS_PATH, CarrierSimulator, FlaskTransport
    from maskline.vault import keyring as kr

    bindings, calls = args.bindings, args.calls
    keys = tmp / "keys.json"
    kr.write_keyring_file(keys, kr.new_keyring(development=True))
    engine = make_engine(args.database_url)
    migrate.upgrade(engine)
    auth_token = os.urandom(16).hex()
    settings = load_settings(
        {
            "env": "testing",
            "instance_path": tmp,
            "database_url": args.database_url,
            "redis_url": redis_url,
            "keys_file": keys,
            "twilio_auth_token": auth_token,
            "public_url": PUBLIC_URL,
            # The INFO lines (one per bind) would bury the figures.
            "log_level": "WARNING",
            # Every call and text must connect: the quota refusal is not what is measured.
            "calls_per_hour": 100_000,
            "calls_per_day": 100_000,
            "sms_per_hour": 100_000,
            "sms_per_day": 100_000,
            # See the module docstring: one alert row per window, not per binding.
            "alert_bindings_per_minute": 1_000_000,
            "alert_key_distinct_buyers_per_hour": 10_000_000,
        },
        environ={},
    )
    # Whole seconds, at the start of a minute: the same windows all run long.
    clock = FixedClock(dt.datetime.now(dt.UTC).replace(second=0, microsecond=0))
    app = create_app(settings, clock=clock)
    services = services_of(app)
    client = redis.Redis.from_url(redis_url)
    failures: list[str] = []
    try:
        relays = [
            f"+1{'212' if i % 2 else '415'}55{5000 + i:05d}"
            for i in range(max(1, -(-bindings // BINDINGS_PER_RELAY)))
        ]
        with services.db.session() as session:
            services.numbers.pool.add(session, relays)
        # One-off set-up, before the first snapshot: not per binding.
        services.events.owners.set_events(OWNER, url=EVENTS_URL)
        api_key, _ = app.extensions[API_EXTENSION].keys.create(
            name="bench-footprint", owner=OWNER, scopes=["bindings:write"]
        )
        services.alerts.drain()
        pg_empty, redis_empty = table_sizes(engine), scan(client)

        # Phase 1: bindings through POST /v1/bindings in process, as an order
        # system makes them: an API key (so the actor, so the audit record), an
        # Idempotency-Key (so the idempotency record), an owner with an events
        # URL (so the outbox rows; nothing delivers them here).
        api = app.test_client()
        pairs: list[Pair] = []
        started = time.perf_counter()
        for i in range(bindings):
            buyer, merchant = party_number(2 * i), party_number(2 * i + 1)
            response = api.post(
                "/v1/bindings",
                json={
                    "order_id": f"footprint-{i}",
                    "mode": "axb",
                    "parties": {"buyer": buyer, "merchant": merchant},
                    "ttl_seconds": 86400,
                },
                headers={"Authorization": f"Bearer {api_key}", "Idempotency-Key": f"footprint-{i}"},
            )
            if response.status_code != 201:
                # The status only: an error body may quote the request.
                raise SystemExit(f"bench: POST /v1/bindings answered {response.status_code}")
            body = response.get_json()
            pairs.append(Pair(relay=body["relay_number"], buyer=buyer, merchant=merchant))
        bind_seconds = time.perf_counter() - started
        services.alerts.drain()
        pg_bound, redis_bound, mem_bound = table_sizes(engine), scan(client), used_memory(client)

        sim = CarrierSimulator(transport=FlaskTransport(app), auth_token=auth_token, public_url=PUBLIC_URL)
        # Phase 2: M calls, merchant to buyer, spread over the bindings; each
        # ends with its "completed" status callback (which files the interaction).
        outcomes: Counter[str] = Counter()
        started = time.perf_counter()
        for i in range(calls):
            pair = pairs[i % bindings]
            result = sim.call(from_number=pair.merchant, to_number=pair.relay)
            outcomes[f"call {result.outcome}"] += 1
            status = sim.call_status(
                call_sid=result.call_sid,
                from_number=pair.merchant,
                to_number=pair.relay,
                status="completed",
                duration=42,
            )
            outcomes[f"call status HTTP {status}"] += 1
        call_seconds = time.perf_counter() - started
        services.alerts.drain()
        pg_called, redis_called, mem_called = table_sizes(engine), scan(client), used_memory(client)

        # Phase 3: M texts, buyer to merchant; each ends with its "delivered"
        # callback on the <Message action> maskline gave (ref = the incoming sid).
        started = time.perf_counter()
        for i in range(calls):
            pair = pairs[i % bindings]
            sms = sim.sms(from_number=pair.buyer, to_number=pair.relay, body="at the door")
            outcomes[f"sms {sms.outcome}"] += 1
            forwarded_sid = "SM" + os.urandom(16).hex()
            code, _ = sim.signed_post(
                f"{SMS_STATUS_PATH}?ref={sms.message_sid}",
                {"MessageSid": forwarded_sid, "MessageStatus": "delivered", "AccountSid": sim.account_sid},
            )
            outcomes[f"sms status HTTP {code}"] += 1
        sms_seconds = time.perf_counter() - started
        services.alerts.drain()
        pg_texted, redis_texted, mem_texted = table_sizes(engine), scan(client), used_memory(client)
        redis_version = str(client.info("server")["redis_version"])
    finally:
        services.close()
        client.close()
        engine.dispose()

    expected = {
        "call connected": calls,
        "call status HTTP 200": calls,
        "sms forwarded": calls,
        "sms status HTTP 200": calls,
    }
    for what, count in expected.items():
        if outcomes[what] != count:
            failures.append(f"{what}: {outcomes[what]} of {count}")
    for what, count in outcomes.items():
        if what not in expected:
            failures.append(f"unexpected: {what} x {count}")

    binds_redis = classify(redis_empty, redis_bound, bindings)
    calls_redis = classify(redis_bound, redis_called, calls)
    sms_redis = classify(redis_called, redis_texted, calls)
    quota_keys = [k for k in redis_texted if _QUOTA.match(k)]
    quota_bytes = sum(redis_texted[k].bytes for k in quota_keys)
    active = len({re.sub(r":(call|sms):[hd]\d+$", "", k) for k in quota_keys})
    tables = {
        name: {
            **pg_texted[name],
            "bytes_per_row": pg_texted[name]["bytes"] / pg_texted[name]["rows"]
            if pg_texted[name]["rows"]
            else None,
        }
        for name in pg_texted
    }
    per_binding = growth(pg_empty, pg_bound, bindings)
    per_call = growth(pg_bound, pg_called, calls)
    per_sms = growth(pg_called, pg_texted, calls)
    dedupe_ttl = int(settings.webhook_dedupe_ttl.total_seconds())
    # A connected call's record is shortened to this once its end is in SQL.
    ended_ttl = int(min(settings.webhook_ended_ttl, settings.webhook_dedupe_ttl).total_seconds())
    return {
        "cpus": os.cpu_count(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "smoke": args.smoke,
        "redis": redis_version,
        "bindings": bindings,
        "calls": calls,
        "texts": calls,
        "relay_numbers": len(relays),
        "seconds": {"bind": bind_seconds, "calls": call_seconds, "texts": sms_seconds},
        "outcomes": dict(outcomes),
        "failures": failures,
        "redis_keys": {
            "after_binds": len(redis_bound),
            "before_binds": len(redis_empty),
            "per_binding": binds_redis,
            "per_call": calls_redis,
            "per_sms": sms_redis,
        },
        "redis_summary": {
            "dedupe_ttl_s": dedupe_ttl,
            "dedupe_ended_ttl_s": ended_ttl,
            "dedupe_call_median_bytes": _median_of(calls_redis, "(call)"),
            "dedupe_sms_median_bytes": _median_of(sms_redis, "(sms)"),
            "redis_bytes_per_call": _total(calls_redis) / calls,
            "redis_bytes_per_sms": _total(sms_redis) / calls,
            "used_memory_per_call": (mem_called - mem_bound) / calls,
            "used_memory_per_sms": (mem_texted - mem_called) / calls,
            "quota_keys": len(quota_keys),
            "active_bindings": active,
            "quota_bytes_per_active_binding": quota_bytes / active if active else None,
        },
        "postgres": {
            "tables": tables,
            "per_binding": per_binding,
            "per_call": per_call,
            "per_sms": per_sms,
            "bytes_per_binding": sum(t["bytes"] for t in per_binding.values()) / bindings,
            "bytes_per_call": sum(t["bytes"] for t in per_call.values()) / calls,
            "bytes_per_sms": sum(t["bytes"] for t in per_sms.values()) / calls,
        },
    }


def _total(classes: dict[str, dict[str, Any]]) -> int:
    """Bytes of the new keys and of the growth of existing ones."""
    return sum(c["bytes"] + c.get("grown_bytes", 0) for c in classes.values())


def _median_of(classes: dict[str, dict[str, Any]], kind: str) -> float | None:
    for name, entry in classes.items():
        if "de-dup record" in name and name.endswith(kind) and "median_bytes" in entry:
            return float(entry["median_bytes"])
    return None


# -- output ------------------------------------------------------------------------


def duration(seconds: float | None) -> str:
    """A TTL for people: -1 is none, else the largest unit it reaches (rounded)."""
    if seconds is None:
        return "-"
    if seconds < 0:
        return "none"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        # A key read a moment after it was set has 3599 s left of its hour.
        if seconds >= size * 0.98:
            return f"{seconds / size:.1f}".removesuffix(".0") + f" {unit}"
    return f"{seconds:.0f} s"


def ttl_range(c: dict[str, Any]) -> str:
    if not c.get("new_keys"):
        return "-"
    low, high = duration(c["ttl_min_s"]), duration(c["ttl_max_s"])
    return low if low == high else f"{low} to {high}"


def redis_rows(classes: dict[str, dict[str, Any]], unit: str) -> list[str]:
    rows = []
    for name, c in classes.items():
        grown = f", +{c['grown_bytes']:,} B in existing keys" if c.get("grown_bytes") else ""
        rows.append(
            f"| `{name}` | {c['new_keys']:,} | {c['bytes']:,} B{grown} | "
            f"{c.get('median_bytes', 0):,.0f} B | {c['bytes_per_unit']:,.1f} B/{unit} | {ttl_range(c)} |"
        )
    return rows


def pg_rows(f: dict[str, Any]) -> list[str]:
    pg = f["postgres"]
    rows = []
    for name, t in pg["tables"].items():
        b, c, s = (pg[k].get(name, {}) for k in ("per_binding", "per_call", "per_sms"))
        if not (t["rows"] or b or c or s):
            continue
        per_row = f"{t['bytes_per_row']:,.0f}" if t["bytes_per_row"] else "-"
        rows.append(
            f"| {name} | {t['rows']:,} | {t['bytes']:,} | {per_row} | "
            + " | ".join(
                f"{g['rows_per_unit']:.2f} rows, {g['bytes_per_unit']:,.0f} B" if g else "-"
                for g in (b, c, s)
            )
            + " |"
        )
    return rows


def report(f: dict[str, Any]) -> str:
    r, pg = f["redis_summary"], f["postgres"]
    lines = [
        f"# storage footprint ({f['cpus']} CPUs, {f['date']}, Redis {f['redis']}"
        f"{', smoke: figures mean nothing' if f['smoke'] else ''})",
        "",
        f"{f['bindings']:,} bindings on {f['relay_numbers']} relay numbers, {f['calls']:,} calls and "
        f"{f['texts']:,} texts (each with its status callback).",
        "",
        "## Redis: new keys per binding (the route hashes are bench/numbers.py's)",
        "",
        "| class | new keys | bytes | median | per binding | TTL |",
        "|---|---|---|---|---|---|",
        *redis_rows(f["redis_keys"]["per_binding"], "binding"),
        "",
        "## Redis: new keys per call",
        "",
        "| class | new keys | bytes | median | per call | TTL |",
        "|---|---|---|---|---|---|",
        *redis_rows(f["redis_keys"]["per_call"], "call"),
        "",
        "## Redis: new keys per text",
        "",
        "| class | new keys | bytes | median | per text | TTL |",
        "|---|---|---|---|---|---|",
        *redis_rows(f["redis_keys"]["per_sms"], "text"),
        "",
        "| Redis figure | value |",
        "|---|---|",
        "| de-dup record per call / per text (median MEMORY USAGE) | "
        f"{r['dedupe_call_median_bytes']:.0f} B / "
        f"{r['dedupe_sms_median_bytes']:.0f} B, TTL {duration(r['dedupe_ended_ttl_s'])} once ended "
        f"({duration(r['dedupe_ttl_s'])} for a call not connected) |",
        f"| all new keys per call / per text | {r['redis_bytes_per_call']:.0f} B / "
        f"{r['redis_bytes_per_sms']:.0f} B |",
        f"| `used_memory` growth per call / per text | {r['used_memory_per_call']:.0f} B / "
        f"{r['used_memory_per_sms']:.0f} B |",
        "| quota counters per active binding (calls and texts) | "
        f"{r['quota_bytes_per_active_binding']:.0f} B in "
        f"{r['quota_keys'] / max(1, r['active_bindings']):.1f} keys |",
        "",
        "## PostgreSQL, per table (after VACUUM ANALYZE; growth of each phase over its count)",
        "",
        "| table | rows | bytes | bytes/row | per binding | per call | per text |",
        "|---|---|---|---|---|---|---|",
        *pg_rows(f),
        "",
        f"PostgreSQL bytes per binding {pg['bytes_per_binding']:,.0f}, per call {pg['bytes_per_call']:,.0f}, "
        f"per text {pg['bytes_per_sms']:,.0f}.",
    ]
    if f["failures"]:
        lines += ["", *(f"FAILED: {x}" for x in f["failures"])]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--smoke", "--quick", action="store_true", help="small counts (seconds)")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("MASKLINE_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL to empty and use (default: $MASKLINE_BENCH_DATABASE_URL or %(default)s)",
    )
    parser.add_argument("--bindings", type=int, help="bindings to make (2,000; 200 with --smoke)")
    parser.add_argument("--calls", type=int, help="calls, and as many texts (2,000; 200 with --smoke)")
    args = parser.parse_args()
    default = 200 if args.smoke else 2000
    args.bindings = args.bindings or default
    args.calls = args.calls or default
    figures = run(args)
    print(report(figures))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if figures["failures"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
