"""Fixtures shared by every tier.

Real PostgreSQL and Redis when MASKLINE_TEST_DATABASE_URL / MASKLINE_TEST_REDIS_URL
are set (as .ci/run does); SQLite and fakeredis otherwise. Each test starts
from empty tables and an empty Redis database. Time is passed in (FixedClock).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from config import Settings, load_settings, service_urls_for_tests
from maskline import migrate
from maskline.clock import FixedClock
from maskline.db import Base, make_engine
from maskline.vault import keyring as kr
from maskline.wiring import Services, build_services
from tests.workers import database_url_for, ensure_database, redis_url_for, worker_number

# No per-example deadline: CI machines are shared and timing is not a property.
hypothesis_settings.register_profile("maskline", deadline=None)
hypothesis_settings.load_profile("maskline")

_SHARED_DATABASE_URL, _SHARED_REDIS_URL = service_urls_for_tests()
# Under pytest-xdist, each worker has a database and a Redis database of its own.
TEST_DATABASE_URL = database_url_for(_SHARED_DATABASE_URL, worker_number())
TEST_REDIS_URL = redis_url_for(_SHARED_REDIS_URL, worker_number())
EPOCH = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


@event.listens_for(Engine, "connect")
def _throwaway_sqlite_skips_fsync(dbapi_connection: Any, _record: Any) -> None:
    """Every SQLite database of a test is thrown away at its end, so none needs
    to survive a power cut: ``synchronous=OFF`` spares the fsync that each
    commit would wait for (1-3 ms each, tens of them per test). Locking,
    transactions and WAL are unchanged; only this process's engines (tests and
    in-process commands) are affected, not a served subprocess's."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute("PRAGMA synchronous=OFF")


def pytest_sessionstart(session: pytest.Session) -> None:
    if TEST_DATABASE_URL and TEST_DATABASE_URL != _SHARED_DATABASE_URL:
        ensure_database(TEST_DATABASE_URL)


def _reset_schema(engine: Engine) -> None:
    import maskline.models  # noqa: F401

    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    migrate.upgrade(engine)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    if TEST_DATABASE_URL:
        return TEST_DATABASE_URL
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"


@pytest.fixture(scope="session")
def migrated_engine(database_url: str) -> Iterator[Engine]:
    """The test database, migrated from scratch once per run."""
    engine = make_engine(database_url)
    _reset_schema(engine)
    yield engine
    engine.dispose()


def clean_tables(engine: Engine) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # DELETE, children first, in one round trip. TRUNCATE gives every
            # table new files and waits for the server to sync them: for ~30
            # nearly empty tables that was tens to hundreds of milliseconds
            # per test of the server's time, where these DELETEs take a few.
            conn.execute(text("; ".join(f"DELETE FROM {name}" for name in tables)))  # noqa: S608
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))  # noqa: S608 (our own table names)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(EPOCH)


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    kr.write_keyring_file(path, kr.new_keyring(development=True))
    return path


@pytest.fixture
def settings(tmp_path: Path, database_url: str, keys_file: Path) -> Settings:
    return load_settings(
        {
            "env": "testing",
            "instance_path": tmp_path,
            "database_url": database_url,
            "redis_url": TEST_REDIS_URL,
            "keys_file": keys_file,
            "default_region": "US",
            # Re-read the key file on every access: tests change it.
            "keyring_reload_seconds": 0.0,
            "log_file": tmp_path / "maskline.log",
        },
        environ={},
    )


@pytest.fixture
def services(settings: Settings, migrated_engine: Engine, clock: FixedClock) -> Iterator[Services]:
    clean_tables(migrated_engine)
    built = build_services(settings, clock=clock)
    yield built
    built.close()


@pytest.fixture
def redis_client(services: Services) -> Iterator[Any]:
    client = services.redis
    client.flushdb()
    yield client
    client.flushdb()


def add_relay_numbers(services: Services, *numbers: str, status: str = "active") -> None:
    """Put relay numbers in the pool directly (the pool service has its own tests)."""
    from maskline.numbers.models import RelayNumber
    from maskline.numbers.regions import describe

    with services.db.session() as session:
        for e164 in numbers:
            country, area = describe(e164)
            session.add(
                RelayNumber(
                    e164=e164,
                    country=country,
                    area=area,
                    voice=True,
                    sms=True,
                    status=status,
                    created_at=services.clock(),
                )
            )
    for e164 in numbers:
        services.numbers.routes.register_number(e164)


@pytest.fixture
def numbers(services: Services, redis_client: Any) -> Any:
    """The numbers services over a clean Redis database."""
    return services.numbers
