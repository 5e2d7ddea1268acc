"""SQL plumbing: the declarative base, engine set-up and the unit of work.

SQL is maskline's source of truth (vault, audit log, later the pool and
bindings). PostgreSQL in production; SQLite for the embedded development
default.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

from sqlalchemy import DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

# Stable constraint names, so that Alembic migrations are the same on every
# backend and can be written by hand.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every maskline table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions
        # begin: otherwise releasing a SAVEPOINT commits the outer transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL lets gunicorn workers read while one writes; busy_timeout makes
        # concurrent writers wait instead of failing at once.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: a transaction that reads
        # and then writes can never fail on a stale WAL snapshot, it waits.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, *, statement_timeout: float | None = None) -> Engine:
    """An engine for ``url`` with the settings maskline relies on.

    ``statement_timeout`` (seconds, PostgreSQL only) caps every statement
    and the wait for a pooled connection: for paths that must answer fast.
    """
    if url.startswith("postgresql://"):
        # psycopg 3 is the driver we ship; plain URLs would ask for psycopg2.
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = create_engine(url)
        _configure_sqlite(engine)
        return engine
    # pre_ping: a PostgreSQL restart shows up as one failed checkout that is
    # retried on a fresh connection, not as an error on the next request.
    if statement_timeout is None:
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    milliseconds = max(1, round(statement_timeout * 1000))
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        pool_timeout=statement_timeout,
        # libpq counts connect_timeout in whole seconds and treats anything
        # under 2 as 2: the shortest bound it offers on reaching the server.
        connect_args={"options": f"-c statement_timeout={milliseconds}", "connect_timeout": 2},
    )


class Database:
    """An engine and its session factory; ``session()`` is the unit of work."""

    def __init__(self, *, url: str, statement_timeout: float | None = None) -> None:
        self.url = url
        self.engine = make_engine(url, statement_timeout=statement_timeout)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed if the block succeeds, rolled back if not."""
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite has no time zones; storing naive UTC there and in PostgreSQL alike
    keeps values (and the audit chain's canonical form) identical.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; maskline stores aware UTC datetimes only")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC)
