"""Benchmark of the vault (not a test: it prints figures, never asserts on time).

* seals/s and opens/s through the vault's own API (``maskline.vault.sealing``
  with a KeyRing: the code path VaultService uses), against a bare
  ``cryptography`` baseline doing the same cryptographic work inline, in the
  same run. Per seal: a fresh 32-byte data key, AES-GCM of the E.164 bytes
  under it (random 12-byte nonce, an AAD), AES-GCM of the data key under the
  KEK (its own nonce and AAD); per open, the two decrypts. The AADs are as
  long as the vault's. Rounds are interleaved (and alternate which side goes
  first), so drift in machine load hits both alike, and timed in this
  process's CPU time, so time spent descheduled on a shared machine lands on
  neither. Rates are medians; the ratio is the median of the per-round
  ratios baseline_time / vault_time, printed with its interquartile range.
  Target: ratio >= 0.67, i.e. the vault's own code costs at most 1.5x the
  bare work.
* put/s through ``VaultService.put`` (normalize, blind-index lookup, seal,
  insert), one transaction per put and 100 puts per transaction, into
  PostgreSQL: ``--database-url``, else ``MASKLINE_BENCH_DATABASE_URL``, else
  the local server's ``bench`` database. The schema is migrated and the
  vault tables are emptied first (TRUNCATE ... CASCADE: use a database of
  the bench's own). If PostgreSQL cannot be reached, a SQLite file in a
  temporary directory stands in, and the output says so.

    python bench/vault.py [--quick | --smoke] [--json out.json] [--database-url URL]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder would come first on sys.path; the
# project root is what the imports below need.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import datetime as dt
import gc
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import cryptography
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from maskline.vault import sealing
from maskline.vault.interfaces import PARTY_NUMBER
from maskline.vault.keyring import KeyRing, new_keyring
from maskline.vault.services import new_token

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/bench"
NUMBER = "+14155550132"
TARGET_RATIO = 0.67
BATCH = 100

# Same lengths as the vault's AADs ("maskline/seal/v1|<token>|party-number";
# the wrap AAD also carries the 5-byte blob header), so GHASH does the same work.
_SEAL_AAD_HEAD = b"maskline/seal/v1|"
_WRAP_AAD_HEAD = b"maskline/wrap/v1|\x01\x00\x00\x00\x01|"
_AAD_TAIL = b"|" + PARTY_NUMBER.encode()


# -- the two sides of the crypto comparison ----------------------------------------
# Each runs its whole loop itself, so neither pays for a lambda per call.


def vault_seals(ring: KeyRing, tokens: list[str]) -> None:
    seal = sealing.seal
    for token in tokens:
        seal(ring, NUMBER, entry_id=token, purpose=PARTY_NUMBER)


def bare_seals(kek: bytes, tokens: list[bytes]) -> None:
    number = NUMBER.encode()
    for token in tokens:
        data_key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(12)
        body = AESGCM(data_key).encrypt(nonce, number, _SEAL_AAD_HEAD + token + _AAD_TAIL)
        _ciphertext = b"\x01" + nonce + body
        wrap_nonce = os.urandom(12)
        wrapped = AESGCM(kek).encrypt(wrap_nonce, data_key, _WRAP_AAD_HEAD + token + _AAD_TAIL)
        _wrapped = wrap_nonce + wrapped


def vault_opens(ring: KeyRing, entries: list[tuple[str, bytes, bytes]]) -> None:
    open_sealed = sealing.open_sealed
    for token, wrapped, ciphertext in entries:
        open_sealed(ring, wrapped, ciphertext, entry_id=token, purpose=PARTY_NUMBER)


def bare_opens(kek: bytes, entries: list[tuple[bytes, bytes, bytes]]) -> None:
    for token, wrapped, ciphertext in entries:
        data_key = AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], _WRAP_AAD_HEAD + token + _AAD_TAIL)
        AESGCM(data_key).decrypt(ciphertext[1:13], ciphertext[13:], _SEAL_AAD_HEAD + token + _AAD_TAIL)


def bare_sealed(kek: bytes, token: bytes) -> tuple[bytes, bytes, bytes]:
    data_key = AESGCM.generate_key(bit_length=256)
    nonce, wrap_nonce = os.urandom(12), os.urandom(12)
    body = AESGCM(data_key).encrypt(nonce, NUMBER.encode(), _SEAL_AAD_HEAD + token + _AAD_TAIL)
    wrapped = AESGCM(kek).encrypt(wrap_nonce, data_key, _WRAP_AAD_HEAD + token + _AAD_TAIL)
    return token, wrap_nonce + wrapped, b"\x01" + nonce + body


def timed(run: Callable[[], None]) -> float:
    # CPU time of this process: on a shared machine, time spent descheduled
    # would otherwise land on whichever side happened to be running.
    gc.collect()
    started = time.process_time()
    run()
    return time.process_time() - started


@dataclass
class Pair:
    """Per-round times of the vault and the baseline for one operation."""

    vault: list[float]
    bare: list[float]

    def figures(self, op: str, count: int) -> dict[str, float]:
        ratios = [b / v for b, v in zip(self.bare, self.vault, strict=True)]
        low, _, high = statistics.quantiles(ratios, n=4)
        return {
            f"{op}s_per_s": count / statistics.median(self.vault),
            f"bare_{op}s_per_s": count / statistics.median(self.bare),
            f"{op}_ratio": statistics.median(ratios),
            f"{op}_ratio_q1": low,
            f"{op}_ratio_q3": high,
        }


def bench_crypto(count: int, rounds: int) -> dict[str, float]:
    ring = new_keyring(development=True)
    kek = ring.kek.primary_key()
    tokens = [new_token() for _ in range(count)]
    token_bytes = [t.encode() for t in tokens]
    sealed = [sealing.seal(ring, NUMBER, entry_id=t, purpose=PARTY_NUMBER) for t in tokens]
    vault_entries = [(t, s.wrapped_key, s.ciphertext) for t, s in zip(tokens, sealed, strict=True)]
    bare_entries = [bare_sealed(kek, t) for t in token_bytes]
    # Warm both paths (imports, OpenSSL's first-use set-up) before timing.
    vault_seals(ring, tokens[:200])
    bare_seals(kek, token_bytes[:200])
    vault_opens(ring, vault_entries[:200])
    bare_opens(kek, bare_entries[:200])
    seals, opens = Pair([], []), Pair([], [])
    for i in range(rounds):
        for pair, run_vault, run_bare in (
            (seals, lambda: vault_seals(ring, tokens), lambda: bare_seals(kek, token_bytes)),
            (opens, lambda: vault_opens(ring, vault_entries), lambda: bare_opens(kek, bare_entries)),
        ):
            if i % 2:
                pair.bare.append(timed(run_bare))
                pair.vault.append(timed(run_vault))
            else:
                pair.vault.append(timed(run_vault))
                pair.bare.append(timed(run_bare))
    return {**seals.figures("seal", count), **opens.figures("open", count)}


# -- puts into SQL -------------------------------------------------------------------


def reachable(url: str) -> str | None:
    """None if ``url`` answers, else a one-line reason (never the password)."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from maskline.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except DBAPIError as exc:
        first_line = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        return first_line
    finally:
        engine.dispose()
    return None


def prepare_schema(url: str) -> None:
    """Migrate to head, then empty the vault tables (and what references them)."""
    from sqlalchemy import text

    from maskline import migrate
    from maskline.db import make_engine

    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("TRUNCATE vault_entries, key_versions CASCADE"))
            else:
                conn.execute(text("DELETE FROM binding_members"))
                conn.execute(text("DELETE FROM vault_entries"))
                conn.execute(text("DELETE FROM key_versions"))
    finally:
        engine.dispose()


@contextmanager
def vault_services(url: str) -> Iterator[Any]:
    """The app's own Services over ``url``, with a fresh development key ring."""
    from config import load_settings
    from maskline.vault import keyring as kr
    from maskline.wiring import build_services

    tmp = Path(tempfile.mkdtemp(prefix="maskline-bench-"))
    try:
        keys = tmp / "keys.json"
        kr.write_keyring_file(keys, kr.new_keyring(development=True))
        settings = load_settings(
            {
                "env": "testing",
                "instance_path": tmp,
                "database_url": url,
                "keys_file": keys,
                # Puts never touch Redis; a URL keeps the embedded one from starting.
                "redis_url": "redis://127.0.0.1:6379/15",
                "keyring_reload_seconds": 60.0,
            },
            environ={},
        )
        services = build_services(settings)
        try:
            yield services
        finally:
            services.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_puts(url: str, count: int) -> dict[str, Any]:
    from sqlalchemy import func, select

    from maskline.vault.models import VaultEntry

    fallback = None
    problem = reachable(url)
    if problem is not None:
        fallback = f"PostgreSQL unreachable ({problem}); measured on SQLite in a temporary directory"
        print(f"note: {fallback}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="maskline-bench-sqlite-") as sqlite_dir:
        if fallback is not None:
            url = f"sqlite:///{sqlite_dir}/bench.sqlite3"
        prepare_schema(url)
        with vault_services(url) as services:
            vault, db = services.vault, services.db
            with db.session() as session:  # warm the pool and the statement cache
                for i in range(10):
                    vault.put(session, f"+1773{2000000 + i:07d}")
            started = time.perf_counter()
            for i in range(count):
                with db.session() as session:
                    vault.put(session, f"+1312{2000000 + i:07d}")
            single = time.perf_counter() - started
            batches = max(1, count // BATCH)
            started = time.perf_counter()
            for batch in range(batches):
                with db.session() as session:
                    for i in range(BATCH):
                        vault.put(session, f"+1646{2000000 + batch * BATCH + i:07d}")
            batched = time.perf_counter() - started
            with db.session() as session:
                stored = session.scalar(select(func.count()).select_from(VaultEntry))
            expected = 10 + count + batches * BATCH
            if stored != expected:  # a correctness check on the work done, not on time
                raise SystemExit(f"bench: expected {expected} vault entries, found {stored}")
            backend = db.dialect
    return {
        "backend": backend,
        "fallback": fallback,
        "puts": count,
        "puts_per_s": count / single,
        "batched_puts": batches * BATCH,
        "batched_puts_per_s": batches * BATCH / batched,
    }


# -- output --------------------------------------------------------------------------


def report(figures: dict[str, Any]) -> str:
    crypto, puts = figures["crypto"], figures["puts"]
    lines = [
        f"# vault benchmark ({figures['cpus']} CPUs, {figures['date']}, Python {figures['python']}, "
        f"cryptography {figures['cryptography']})",
        "",
        f"{crypto['count']:,} operations per round, {crypto['rounds']} interleaved rounds; "
        "rates are medians per CPU-second, the ratio is the median of the rounds' ratios.",
        "",
        f"| operation | vault API | bare cryptography | ratio (target >= {TARGET_RATIO}) "
        "| middle half of rounds | met? |",
        "|---|---|---|---|---|---|",
    ]
    for op in ("seal", "open"):
        ratio = crypto[f"{op}_ratio"]
        lines.append(
            f"| {op} | {crypto[f'{op}s_per_s']:,.0f}/s | {crypto[f'bare_{op}s_per_s']:,.0f}/s "
            f"| {ratio:.2f} | {crypto[f'{op}_ratio_q1']:.2f}-{crypto[f'{op}_ratio_q3']:.2f} "
            f"| {'yes' if ratio >= TARGET_RATIO else 'no'} |"
        )
    lines += [
        "",
        f"| VaultService.put into {puts['backend']} | puts | rate |",
        "|---|---|---|",
        f"| one transaction per put | {puts['puts']} | {puts['puts_per_s']:,.0f}/s |",
        f"| {BATCH} puts per transaction | {puts['batched_puts']} | {puts['batched_puts_per_s']:,.0f}/s |",
    ]
    if puts["fallback"]:
        lines += ["", f"Note: {puts['fallback']}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", "--smoke", action="store_true", help="small counts (a smoke run, seconds)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("MASKLINE_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        help="PostgreSQL for the put figures (default: $MASKLINE_BENCH_DATABASE_URL or %(default)s)",
    )
    args = parser.parse_args()
    count, rounds, puts = (500, 7, 100) if args.quick else (2_000, 61, 3_000)
    crypto = bench_crypto(count, rounds)
    figures: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "quick": args.quick,
        "crypto": {"count": count, "rounds": rounds, **crypto},
        "puts": bench_puts(args.database_url, puts),
    }
    print(report(figures))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
