"""SQL plumbing: the declarative base, engine set-up and the unit of work.

SQL is maskline's source of truth (vault, audit log, later the pool and
bindings). PostgreSQL in production; SQLite for the embedded development
default.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from sqlalchemy import DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError
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

T = TypeVar("T")


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


def make_engine(
    url: str, *, statement_timeout: float | None = None, autocommit_reads: bool = False
) -> Engine:
    """An engine for ``url`` with the settings maskline relies on.

    ``statement_timeout`` (seconds, PostgreSQL only) caps every statement
    and the wait for a pooled connection: for paths that must answer fast.
    ``autocommit_reads`` (PostgreSQL only) makes the engine of
    :meth:`Database.read`: AUTOCOMMIT and no ping on checkout.
    """
    if url.startswith("postgresql://"):
        # psycopg 3 is the driver we ship; plain URLs would ask for psycopg2.
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = create_engine(url)
        _configure_sqlite(engine)
        return engine
    options: dict[str, Any] = {"pool_size": 10, "max_overflow": 10}
    if autocommit_reads:
        # A single SELECT needs no BEGIN and no COMMIT: one round trip, not
        # three. No pre-ping either: Database.read retries once instead.
        options["isolation_level"] = "AUTOCOMMIT"
    else:
        # pre_ping: a PostgreSQL restart shows up as one failed checkout that
        # is retried on a fresh connection, not as an error on the next request.
        options["pool_pre_ping"] = True
    if statement_timeout is not None:
        milliseconds = max(1, round(statement_timeout * 1000))
        options["pool_timeout"] = statement_timeout
        # libpq counts connect_timeout in whole seconds and treats anything
        # under 2 as 2: the shortest bound it offers on reaching the server.
        options["connect_args"] = {"options": f"-c statement_timeout={milliseconds}", "connect_timeout": 2}
    return create_engine(url, **options)


class Database:
    """An engine and its session factory; ``session()`` is the unit of work."""

    def __init__(self, *, url: str, statement_timeout: float | None = None) -> None:
        self.url = url
        self.engine = make_engine(url, statement_timeout=statement_timeout)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._statement_timeout = statement_timeout
        self._read_engine: Engine | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed if the block succeeds, rolled back if not."""
        with self._sessions() as session, session.begin():
            yield session

    @property
    def read_engine(self) -> Engine:
        """The engine of :meth:`read` (PostgreSQL: its own pool; SQLite: ``engine``)."""
        if self._read_engine is None:
            if self.dialect == "postgresql":
                self._read_engine = make_engine(
                    self.url, statement_timeout=self._statement_timeout, autocommit_reads=True
                )
            else:
                self._read_engine = self.engine
        return self._read_engine

    def read(self, query: Callable[[Connection], T]) -> T:
        """``query(connection)`` for hot read-only lookups: no ORM, no transaction.

        On PostgreSQL the connection is in AUTOCOMMIT, so one SELECT is one
        round trip, and it is not pinged on checkout. A connection that turns
        out dead (PostgreSQL restarted) invalidates the pool and ``query``
        runs once more on a fresh connection, so a restart costs no request
        an error. ``query`` must only read: it may run twice. A failure to
        reach the server at all, or a statement timeout, is not retried.
        """
        engine = self.read_engine
        for attempt in (1, 2):
            with engine.connect() as connection:
                try:
                    return query(connection)
                except DBAPIError as exc:
                    if attempt == 2 or not exc.connection_invalidated:
                        raise
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        self.engine.dispose()
        if self._read_engine is not None and self._read_engine is not self.engine:
            self._read_engine.dispose()


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
