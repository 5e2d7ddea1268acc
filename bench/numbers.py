"""Benchmark of maskline.numbers (not a test: it prints figures, never asserts on time).

* allocations per second: full binds (vault + SQL + Redis Lua claim), and
  the Lua claim alone;
* resolves per second through the routing store's Lua script, against raw
  redis-py GETs on the same server in the same run, as a ratio;
* Redis memory per live axb binding over 100,000 bindings (target <= 256 B):
  MEMORY USAGE of the relay numbers' route hashes, and the growth of the
  server's ``used_memory`` (everything the claims stored, with the key
  overheads), both divided by the bindings;
* pool efficiency on a synthetic trace with Zipf-distributed merchants: the
  smallest pool that serves it with no failure, next to the lower bound (the
  most live-or-cooling axb bindings any one party holds at once).

    python bench/numbers.py [--quick | --smoke] [--json out.json]
        [--redis-url URL] [--database-url postgresql://postgres@127.0.0.1:5432/bench]

Without ``--redis-url`` it starts a throwaway redis-server of its own on a
free port (bench/webhooks.py, start_redis); a Redis given with ``--redis-url``
is flushed (its selected database), so never point it at a shared one.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where
# "numbers.py" would shadow the standard library's numbers module.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import contextlib
import datetime as dt
import heapq
import json
import os
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import redis

from maskline.numbers.interfaces import BindRequest
from maskline.numbers.route_copies import CopyOptions, copies_key, seal_copy
from maskline.numbers.routes import Party, RouteStore, route_key, unpack_binding_id, unpack_token
from maskline.numbers.services import new_binding_id
from maskline.vault.keyring import new_keyring
from maskline.vault.services import new_token


def relay(i: int) -> str:
    return f"+1415{2000000 + i:07d}"


def party_number(i: int) -> str:
    return f"+1312{2000000 + i:07d}"


def zipf_merchants(rng: random.Random, count: int, merchants: int, s: float = 1.1) -> list[int]:
    weights = [1 / (k**s) for k in range(1, merchants + 1)]
    return rng.choices(range(merchants), weights=weights, k=count)


# -- allocations ----------------------------------------------------------------


def bench_allocations(database_url: str, redis_url: str, count: int) -> dict[str, float]:
    # The instance folder holds a key ring: never leave it behind.
    with tempfile.TemporaryDirectory(prefix="maskline-bench-") as tmp:
        return allocations_in(Path(tmp), database_url, redis_url, count)


def allocations_in(tmp: Path, database_url: str, redis_url: str, count: int) -> dict[str, float]:
    from sqlalchemy import text

    from config import load_settings
    from maskline import migrate
    from maskline.db import Base, make_engine
    from maskline.vault import keyring as kr
    from maskline.wiring import build_services

    keys = tmp / "keys.json"
    kr.write_keyring_file(keys, kr.new_keyring(development=True))
    engine = make_engine(database_url)
    import maskline.models  # noqa: F401

    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    migrate.upgrade(engine)
    engine.dispose()
    settings = load_settings(
        {
            "env": "testing",
            "instance_path": tmp,
            "database_url": database_url,
            "redis_url": redis_url,
            "keys_file": keys,
            "keyring_reload_seconds": 60.0,
        },
        environ={},
    )
    services = build_services(settings)
    services.redis.flushdb()
    numbers = services.numbers
    rng = random.Random(7)
    merchants = zipf_merchants(rng, count, merchants=max(10, count // 50))
    # Enough numbers for the busiest merchant, who holds one per live order.
    pool_size = max(Counter(merchants).values()) + 10
    numbers_added = [relay(i) for i in range(pool_size)]
    with services.db.session() as session:
        numbers.pool.add(session, numbers_added)
    started = time.perf_counter()
    for i in range(count):
        numbers.bindings.bind(
            BindRequest(
                order_id=f"o-{i}",
                mode="axb",
                parties={"buyer": party_number(100000 + i), "merchant": party_number(merchants[i])},
                # As through the API: every bind has an actor, so an audit record.
                actor="apikey:bench",
            )
        )
    full = count / (time.perf_counter() - started)

    routes: RouteStore = numbers.routes
    claims = count * 2
    started = time.perf_counter()
    for i in range(claims):
        a = Party(index=os.urandom(12), role="buyer", token=new_token())
        b = Party(index=os.urandom(12), role="merchant", token=new_token())
        routes.claim(
            numbers_added[i % pool_size],
            binding_id=new_binding_id(),
            version=1,
            expires=2_000_000_000,
            mode="axb",
            parties=[a, b],
            now=1_000_000_000,
            cooldown=86400,
            cap=10**9,
        )
    claim_only = claims / (time.perf_counter() - started)
    services.redis.flushdb()
    services.close()
    return {"binds_per_s": full, "lua_claims_per_s": claim_only}


# -- resolves -------------------------------------------------------------------


def bench_resolves(redis_url: str, count: int, rounds: int = 5) -> dict[str, float]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    routes = RouteStore(client)
    callers = []
    for i in range(200):
        x = relay(i)
        routes.register_number(x)
        for _j in range(20):
            a = Party(index=os.urandom(12), role="buyer", token=new_token())
            b = Party(index=os.urandom(12), role="merchant", token=new_token())
            routes.claim(
                x,
                binding_id=new_binding_id(),
                version=1,
                expires=2_000_000_000,
                mode="axb",
                parties=[a, b],
                now=1_000_000_000,
                cooldown=86400,
                cap=200,
            )
            callers.append((x, a.index))
    client.set("bench:plain", b"x" * 60)
    lua_rates, get_rates = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        for k in range(count):
            x, index = callers[k % len(callers)]
            routes.resolve(x, caller_index=index, extension=None, now=1_000_000_100)
        lua_rates.append(count / (time.perf_counter() - started))
        started = time.perf_counter()
        for _k in range(count):
            client.get("bench:plain")
        get_rates.append(count / (time.perf_counter() - started))
    client.flushdb()
    lua, get = statistics.median(lua_rates), statistics.median(get_rates)
    return {"resolves_per_s": lua, "raw_gets_per_s": get, "ratio": lua / get}


# -- memory ---------------------------------------------------------------------


def bench_memory(redis_url: str, bindings: int, per_number: int = 200) -> dict[str, Any]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    used_before = int(client.info("memory")["used_memory"])
    routes = RouteStore(client)
    numbers_needed = max(1, bindings // per_number)
    rng = random.Random(3)
    ring = new_keyring(development=True)
    options = CopyOptions(record=False, sms_redact=None, sms_media=None, language=None)
    made = 0
    for i in range(numbers_needed):
        x = relay(i)
        routes.register_number(x)
        for _j in range(per_number):
            if made == bindings:
                break
            a = Party(index=rng.randbytes(12), role="buyer", token=unpack_token(rng.randbytes(15)))
            b = Party(index=rng.randbytes(12), role="merchant", token=unpack_token(rng.randbytes(15)))
            binding_id = unpack_binding_id(rng.randbytes(10))
            # The sealed route copy a bind writes with the routes (13-digit numbers).
            numbers = {
                "buyer": f"+86{rng.randrange(10**10, 10**11)}",
                "merchant": f"+1{rng.randrange(10**9, 10**10)}",
            }
            copy = seal_copy(ring, relay=x, binding_id=binding_id, numbers=numbers, options=options)
            routes.claim(
                x,
                binding_id=binding_id,
                version=1,
                expires=2_000_000_000,
                mode="axb",
                parties=[a, b],
                now=1_000_000_000,
                cooldown=86400,
                cap=10**9,
                copy=copy,
            )
            made += 1
    total = 0
    for i in range(numbers_needed):
        total += int(client.memory_usage(route_key(relay(i)), samples=0) or 0)
        total += int(client.memory_usage(copies_key(relay(i)), samples=0) or 0)
    encoding = client.object("encoding", route_key(relay(0)))
    copies_encoding = client.object("encoding", copies_key(relay(0)))
    used = int(client.info("memory")["used_memory"]) - used_before
    client.flushdb()
    return {
        "bindings": made,
        "bytes_per_binding": total / made,
        "used_memory_per_binding": used / made,
        "hash_encoding": encoding.decode() if isinstance(encoding, bytes) else str(encoding),
        "copies_encoding": copies_encoding.decode()
        if isinstance(copies_encoding, bytes)
        else str(copies_encoding),
    }


# -- pool efficiency ---------------------------------------------------------------


def make_trace(rng: random.Random, orders: int, merchants: int) -> list[tuple[int, int, int, int]]:
    """(start, end, merchant, buyer): Poisson arrivals over a week, 1-72 h lifetimes."""
    span = 7 * 86400
    trace = []
    t = 0.0
    for i, m in enumerate(zipf_merchants(rng, orders, merchants)):
        t += rng.expovariate(orders / span)
        life = int(rng.uniform(3600, 72 * 3600))
        trace.append((int(t), int(t) + life, m, 1_000_000 + i))
    return trace


def lower_bound(trace: list[tuple[int, int, int, int]], cooldown: int) -> int:
    """The most bindings (live or cooling down) any one party holds at once."""
    events: dict[int, list[tuple[int, int]]] = {}
    for start, end, merchant, _buyer in trace:
        events.setdefault(merchant, []).extend([(start, 1), (end + cooldown, -1)])
    best = 0
    for evs in events.values():
        level = 0
        for _t, delta in sorted(evs, key=lambda e: (e[0], e[1])):
            level += delta
            best = max(best, level)
    return best


def serves(client: Any, trace: list[tuple[int, int, int, int]], pool: int, cooldown: int) -> bool:
    """Replay the trace with the real Lua claims, least-loaded number first."""
    client.flushdb()
    routes = RouteStore(client)
    xs = [relay(i) for i in range(pool)]
    for x in xs:
        routes.register_number(x)
    load = dict.fromkeys(xs, 0)
    index = {}

    def idx(n: int) -> bytes:
        if n not in index:
            index[n] = n.to_bytes(12, "big")
        return index[n]

    ends: list[tuple[int, str, str, int, int]] = []
    for n, (start, end, merchant, buyer) in enumerate(trace):
        while ends and ends[0][0] <= start:
            t, x, bid, m, b = heapq.heappop(ends)
            routes.end(
                x, binding_id=bid, version=2, ended=t, mode="axb", extension=None, indexes=[idx(m), idx(b)]
            )
            load[x] -= 1
        bid = unpack_binding_id(n.to_bytes(10, "big"))
        placed = False
        for x in sorted(xs, key=load.__getitem__):
            result = routes.claim(
                x,
                binding_id=bid,
                version=1,
                expires=end,
                mode="axb",
                parties=[
                    Party(index=idx(buyer), role="buyer", token=unpack_token(buyer.to_bytes(15, "big"))),
                    Party(
                        index=idx(merchant), role="merchant", token=unpack_token(merchant.to_bytes(15, "big"))
                    ),
                ],
                now=start,
                cooldown=cooldown,
                cap=200,
            )
            if result.outcome == "ok":
                heapq.heappush(ends, (end, x, bid, merchant, buyer))
                load[x] += 1
                placed = True
                break
        if not placed:
            return False
    return True


def bench_pool(redis_url: str, orders: int) -> dict[str, float]:
    client = redis.Redis.from_url(redis_url)
    rng = random.Random(11)
    cooldown = 86400
    trace = make_trace(rng, orders, merchants=max(20, orders // 25))
    bound = lower_bound(trace, cooldown)
    low, high = bound, bound
    while not serves(client, trace, high, cooldown):
        low, high = high + 1, high * 2
    while low < high:
        mid = (low + high) // 2
        if serves(client, trace, mid, cooldown):
            high = mid
        else:
            low = mid + 1
    client.flushdb()
    return {"orders": orders, "lower_bound": bound, "smallest_pool": high, "efficiency": bound / high}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", "--smoke", action="store_true", help="small counts (a smoke run, seconds)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--redis-url", help="a Redis to flush and use (default: a throwaway redis-server)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("MASKLINE_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/bench"),
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        redis_url = args.redis_url or stack.enter_context(throwaway_redis())
        figures = run(args, redis_url)
    a, r, m, p = figures["allocations"], figures["resolves"], figures["memory"], figures["pool"]
    print(f"# numbers benchmark ({figures['cpus']} CPUs, {figures['date']}, Redis {figures['redis']})\n")
    print("| figure | value |\n|---|---|")
    print(f"| full binds (vault + SQL + Lua) | {a['binds_per_s']:.0f}/s |")
    print(f"| Lua claims alone | {a['lua_claims_per_s']:.0f}/s |")
    print(f"| resolves (Lua, one round trip) | {r['resolves_per_s']:.0f}/s |")
    print(f"| raw redis-py GET, same run | {r['raw_gets_per_s']:.0f}/s |")
    print(f"| resolve / GET ratio | {r['ratio']:.2f} |")
    print(
        f"| Redis bytes per live axb binding ({m['bindings']:,}) | {m['bytes_per_binding']:.0f} "
        f"(target <= 256; encoding {m['hash_encoding']}); used_memory growth "
        f"{m['used_memory_per_binding']:.0f} |"
    )
    print(
        f"| pool for {p['orders']} Zipf orders: smallest / lower bound | {p['smallest_pool']} / "
        f"{p['lower_bound']} (efficiency {p['efficiency']:.2f}) |"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


def run(args: argparse.Namespace, redis_url: str) -> dict[str, Any]:
    q = args.quick
    return {
        "cpus": os.cpu_count(),
        "date": dt.date.today().isoformat(),
        "quick": q,
        "redis": str(redis.Redis.from_url(redis_url).info("server")["redis_version"]),
        "allocations": bench_allocations(args.database_url, redis_url, 50 if q else 2000),
        "resolves": bench_resolves(redis_url, 1000 if q else 20000),
        "memory": bench_memory(redis_url, 2_000 if q else 100_000),
        "pool": bench_pool(redis_url, 150 if q else 2000),
    }


@contextlib.contextmanager
def throwaway_redis() -> Iterator[str]:
    """A redis-server of this run's own on a free port; yields its URL."""
    from bench.webhooks import free_port, start_redis, stop

    port = free_port()
    with (
        tempfile.TemporaryDirectory(prefix="maskline-bench-numbers-") as tmp,
        (Path(tmp) / "redis.log").open("wb") as log,
    ):
        process = start_redis(port, log)
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            stop(process)


if __name__ == "__main__":
    main()
