"""Benchmark of the vault (not a test: it prints figures, never asserts on time).

* seals/s and opens/s through the vault's own API (maskline.vault.sealing,
  the code path VaultService uses), against a bare-`cryptography` baseline
  doing the same cryptographic work inline, in the same run; the ratio
  baseline_time / vault_time has a target of >= 0.67 (vault code costs at
  most 1.5x the bare work);
* put/s into PostgreSQL through VaultService.put, one transaction per put and
  100 puts per transaction.

    python bench/vault.py [--quick] [--json out.json]
        [--database-url postgresql://postgres@127.0.0.1:5432/bench]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import datetime as dt
import json
import os
import statistics
import tempfile
import time
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from maskline.vault import sealing
from maskline.vault.keyring import new_keyring

NUMBER = "+14155550132"


def bare_seal(kek: bytes, entry_id: bytes, number: bytes) -> tuple[bytes, bytes]:
    """The same cryptographic work as a vault seal, written inline."""
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(12)
    ciphertext = nonce + AESGCM(data_key).encrypt(nonce, number, b"seal|" + entry_id)
    wrap_nonce = os.urandom(12)
    wrapped = wrap_nonce + AESGCM(kek).encrypt(wrap_nonce, data_key, b"wrap|" + entry_id)
    return wrapped, ciphertext


def bare_open(kek: bytes, entry_id: bytes, wrapped: bytes, ciphertext: bytes) -> bytes:
    data_key = AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], b"wrap|" + entry_id)
    return AESGCM(data_key).decrypt(ciphertext[:12], ciphertext[12:], b"seal|" + entry_id)


def timed(func: Any, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        func()
    return time.perf_counter() - started


def bench_crypto(count: int, rounds: int) -> dict[str, float]:
    ring = new_keyring(development=True)
    kek = ring.kek.primary_key()
    entry = "pn_" + "a" * 24
    entry_b = entry.encode()
    number_b = NUMBER.encode()
    sealed = sealing.seal(ring, NUMBER, entry_id=entry, purpose="party-number")
    wrapped, ciphertext = bare_seal(kek, entry_b, number_b)
    seal_vault, seal_bare, open_vault, open_bare = [], [], [], []
    for _ in range(rounds):  # interleaved, so drift in machine load hits both alike
        seal_vault.append(
            timed(lambda: sealing.seal(ring, NUMBER, entry_id=entry, purpose="party-number"), count)
        )
        seal_bare.append(timed(lambda: bare_seal(kek, entry_b, number_b), count))
        open_vault.append(
            timed(
                lambda: sealing.open_sealed(
                    ring, sealed.wrapped_key, sealed.ciphertext, entry_id=entry, purpose="party-number"
                ),
                count,
            )
        )
        open_bare.append(timed(lambda: bare_open(kek, entry_b, wrapped, ciphertext), count))
    sv, sb, ov, ob = (statistics.median(x) for x in (seal_vault, seal_bare, open_vault, open_bare))
    return {
        "seals_per_s": count / sv,
        "bare_seals_per_s": count / sb,
        "seal_ratio": sb / sv,
        "opens_per_s": count / ov,
        "bare_opens_per_s": count / ob,
        "open_ratio": ob / ov,
    }


def bench_puts(database_url: str, count: int) -> dict[str, Any]:
    from sqlalchemy import text

    import maskline.models  # noqa: F401
    from config import load_settings
    from maskline import migrate
    from maskline.db import Base, make_engine
    from maskline.vault import keyring as kr
    from maskline.wiring import build_services

    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            Base.metadata.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    except Exception as exc:  # unreachable PostgreSQL: say so, use SQLite
        print(f"note: {database_url} unreachable ({type(exc).__name__}); using SQLite", file=sys.stderr)
        database_url = f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
        engine = make_engine(database_url)
    migrate.upgrade(engine)
    engine.dispose()
    tmp = Path(tempfile.mkdtemp(prefix="maskline-bench-"))
    keys = tmp / "keys.json"
    kr.write_keyring_file(keys, kr.new_keyring(development=True))
    services = build_services(
        load_settings(
            {
                "env": "testing",
                "instance_path": tmp,
                "database_url": database_url,
                "keys_file": keys,
                "redis_url": "redis://127.0.0.1:6379/15",
                "keyring_reload_seconds": 60.0,
            },
            environ={},
        )
    )
    vault = services.vault
    started = time.perf_counter()
    for i in range(count):
        with services.db.session() as session:
            vault.put(session, f"+1312{2000000 + i:07d}")
    single = count / (time.perf_counter() - started)
    started = time.perf_counter()
    for batch in range(count // 100):
        with services.db.session() as session:
            for i in range(100):
                vault.put(session, f"+1646{2000000 + batch * 100 + i:07d}")
    batched = (count // 100 * 100) / (time.perf_counter() - started)
    services.close()
    backend = database_url.split(":", 1)[0]
    return {"backend": backend, "puts_per_s": single, "batched_puts_per_s": batched}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/bench")
    args = parser.parse_args()
    crypto = bench_crypto(2000 if args.quick else 20000, 5 if args.quick else 9)
    puts = bench_puts(args.database_url, 300 if args.quick else 3000)
    figures = {"cpus": os.cpu_count(), "date": dt.date.today().isoformat(), "crypto": crypto, "puts": puts}
    print(f"# vault benchmark ({figures['cpus']} CPUs, {figures['date']})\n")
    print("| figure | vault | bare cryptography | ratio (target >= 0.67) |\n|---|---|---|---|")
    for op in ("seal", "open"):
        vault, bare, ratio = crypto[f"{op}s_per_s"], crypto[f"bare_{op}s_per_s"], crypto[f"{op}_ratio"]
        print(f"| {op} | {vault:.0f}/s | {bare:.0f}/s | {ratio:.2f} |")
    print(f"\n| put into {puts['backend']} | rate |\n|---|---|")
    print(f"| one transaction per put | {puts['puts_per_s']:.0f}/s |")
    print(f"| 100 puts per transaction | {puts['batched_puts_per_s']:.0f}/s |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
