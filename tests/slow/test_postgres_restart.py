"""Drills on a throwaway PostgreSQL: a brand-new cluster, and restarts under traffic.

What must hold: ``maskline init`` brings an empty cluster to a working vault;
across a server restart every request either succeeds or fails cleanly with a
SQLAlchemy DBAPIError (never a wrong token or number, never a half-stored
entry), and afterwards the same Services object works again, its pool having
reconnected, with every number still deduplicating to its one token.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from config import load_settings
from maskline import migrate
from maskline.db import make_engine
from maskline.vault import keyring as kr
from maskline.vault.models import VaultEntry
from maskline.wiring import Services, build_services
from tests.slow.conftest import ThrowawayPostgres

pytestmark = pytest.mark.slow

# Puts never reach Redis; a URL nothing listens on keeps the embedded one from starting.
NO_REDIS = "redis://127.0.0.1:1/0"
PROGRESS_WAIT_SECONDS = 60  # a bound on waiting for the traffic thread, never a measurement


def number(i: int) -> str:
    return f"+1415555{i:04d}"


def put(services: Services, e164: str) -> str:
    with services.db.session() as session:
        return services.vault.put(session, e164).token


def open_token(services: Services, token: str) -> str:
    with services.db.session() as session:
        return services.vault.open(session, token)


def entry_count(services: Services) -> int:
    with services.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(VaultEntry)) or 0)


def settings_for(server: ThrowawayPostgres, tmp_path: Path) -> dict[str, object]:
    keys = tmp_path / "keys.json"
    if not keys.exists():
        kr.write_keyring_file(keys, kr.new_keyring(development=True))
    return {
        "env": "testing",
        "instance_path": tmp_path,
        "database_url": server.url,
        "keys_file": keys,
        "redis_url": NO_REDIS,
    }


@pytest.fixture
def services(throwaway_postgres: ThrowawayPostgres, tmp_path: Path) -> Iterator[Services]:
    """The vault on a new cluster, migrated from zero."""
    engine = make_engine(throwaway_postgres.url)
    migrate.upgrade(engine)
    engine.dispose()
    built = build_services(load_settings(settings_for(throwaway_postgres, tmp_path), environ={}))
    yield built
    built.close()


# -- (a) a brand-new cluster ---------------------------------------------------------


def test_the_schema_migrates_from_zero_and_the_vault_works(
    throwaway_postgres: ThrowawayPostgres, tmp_path: Path
) -> None:
    engine = make_engine(throwaway_postgres.url)
    assert migrate.current_revision(engine) is None
    migrate.upgrade(engine)
    assert migrate.is_up_to_date(engine)
    engine.dispose()
    services = build_services(load_settings(settings_for(throwaway_postgres, tmp_path), environ={}))
    try:
        token = put(services, "+1 415 555 0132")
        assert open_token(services, token) == "+14155550132"
        assert put(services, "(415) 555-0132") == token
        with services.db.session() as session:
            assert services.audit.verify(session).ok
    finally:
        services.close()


def test_maskline_init_readies_a_brand_new_cluster(
    throwaway_postgres: ThrowawayPostgres, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MASKLINE_")}
    env |= {
        "MASKLINE_ENV": "development",
        "MASKLINE_INSTANCE_PATH": str(tmp_path / "instance"),
        "MASKLINE_DATABASE_URL": throwaway_postgres.url,
        "MASKLINE_REDIS_URL": NO_REDIS,
    }
    maskline = [sys.executable, "-c", "from maskline.cli import main; main()"]
    first = subprocess.run([*maskline, "init"], env=env, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    assert "created a development key ring" in first.stdout
    again = subprocess.run([*maskline, "init"], env=env, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr  # init is idempotent
    put_cli = subprocess.run(
        [*maskline, "vault", "put", "+14155550132"], env=env, capture_output=True, text=True, check=False
    )
    assert put_cli.returncode == 0, put_cli.stderr
    token = put_cli.stdout.strip()
    # The app's own wiring accepts what init made (schema head, key ring registered).
    services = build_services(
        load_settings(
            {
                "env": "development",
                "instance_path": tmp_path / "instance",
                "database_url": throwaway_postgres.url,
                "redis_url": NO_REDIS,
            },
            environ={},
        )
    )
    try:
        assert open_token(services, token) == "+14155550132"
        assert put(services, "+14155550132") == token
    finally:
        services.close()


# -- (b) restarts ------------------------------------------------------------------


def hold_idle_connections(services: Services, count: int) -> None:
    """Leave ``count`` connections idle in the pool (they go stale in a restart)."""
    with ExitStack() as stack:
        for _ in range(count):
            stack.enter_context(services.db.session()).execute(select(1))


def test_between_requests_a_restart_is_invisible(
    services: Services, throwaway_postgres: ThrowawayPostgres
) -> None:
    before = {number(i): put(services, number(i)) for i in range(5)}
    hold_idle_connections(services, 4)
    throwaway_postgres.restart("fast")
    # pool_pre_ping: each stale connection fails its ping and is replaced on
    # checkout, so not even the first request after the restart fails.
    for i in range(5, 10):
        before[number(i)] = put(services, number(i))
    for e164, token in before.items():
        assert open_token(services, token) == e164
        assert put(services, e164) == token
    assert entry_count(services) == 10


def test_a_put_in_flight_fails_cleanly_and_stores_nothing(
    services: Services, throwaway_postgres: ThrowawayPostgres
) -> None:
    kept = put(services, number(1))
    with pytest.raises(DBAPIError) as failed, services.db.session() as session:
        services.vault.put(session, number(2))  # inserted, not committed
        throwaway_postgres.restart("fast")  # the server ends the session, rolling it back
        services.vault.put(session, number(3))
    assert failed.value.connection_invalidated  # the pool drops the dead connection
    with services.db.session() as session:
        assert services.vault.lookup(session, number(2)) is None
        assert services.vault.lookup(session, number(3)) is None
    # The same Services object, not rebuilt, works again.
    retried = put(services, number(2))
    assert open_token(services, retried) == number(2)
    assert open_token(services, kept) == number(1)
    assert put(services, number(1)) == kept
    assert entry_count(services) == 2


@dataclass
class Traffic:
    """Puts (each followed by an open) in a thread, and what became of each."""

    services: Services
    first: int
    stop: threading.Event = field(default_factory=threading.Event)
    restarted: threading.Event = field(default_factory=threading.Event)
    warmed_up: threading.Event = field(default_factory=threading.Event)
    recovered: threading.Event = field(default_factory=threading.Event)
    tokens: dict[str, str] = field(default_factory=dict)
    clean_failures: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    unexpected: list[BaseException] = field(default_factory=list)
    after_restart: int = 0

    def run(self, limit: int = 5000) -> None:
        for i in range(self.first, self.first + limit):
            if self.stop.is_set():
                return
            e164 = number(i)
            try:
                token = put(self.services, e164)
                opened = open_token(self.services, token)
            except DBAPIError:
                self.clean_failures.append(e164)
                continue
            except BaseException as exc:
                self.unexpected.append(exc)
                return
            self.tokens[e164] = token
            if opened != e164:
                self.wrong.append(f"{token} opened to another number")
            if len(self.tokens) >= 20:
                self.warmed_up.set()
            if self.restarted.is_set():
                self.after_restart += 1
                if self.after_restart >= 20:
                    self.recovered.set()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_traffic_across_a_restart_succeeds_or_fails_cleanly(
    services: Services, throwaway_postgres: ThrowawayPostgres, mode: str
) -> None:
    streams = [Traffic(services, first=0), Traffic(services, first=5000)]
    threads = [threading.Thread(target=t.run, daemon=True) for t in streams]
    for thread in threads:
        thread.start()
    try:
        for t in streams:
            assert t.warmed_up.wait(PROGRESS_WAIT_SECONDS), t.unexpected
        throwaway_postgres.restart(mode)  # while both streams keep sending
        for t in streams:
            t.restarted.set()
        for t in streams:
            assert t.recovered.wait(PROGRESS_WAIT_SECONDS), t.unexpected
    finally:
        for t in streams:
            t.stop.set()
        for thread in threads:
            thread.join()
    for t in streams:
        assert t.unexpected == []
        assert t.wrong == []
    # Afterwards, on the same Services: every stored number opens to itself
    # and still has its one token; a put that failed left no second token
    # (if its commit landed before the connection died, the retry finds it).
    attempted: set[str] = set()
    for t in streams:
        for e164, token in t.tokens.items():
            assert open_token(services, token) == e164
            assert put(services, e164) == token
        for e164 in t.clean_failures:
            assert open_token(services, put(services, e164)) == e164
        attempted |= set(t.tokens) | set(t.clean_failures)
    assert entry_count(services) == len(attempted)
