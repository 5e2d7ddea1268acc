"""One prepared statement, no SQLAlchemy: the SQL read of the webhook connect path.

A connect runs thousands of times a second and needs one row by primary
key. Through SQLAlchemy that read cost a quarter of a webhook worker's CPU
(statement building, compile-cache keys, pool checkout). Here it is a
psycopg connection of this process's own (one per thread, made after the
fork), in autocommit, with each statement prepared on the server the first
time it runs: one round trip. The statement runs through libpq itself
(``PQexecPrepared``, binary results), not psycopg's cursor, whose
per-execute bookkeeping (query conversion, the prepare cache, the wait
generator, adapting each value) cost three times the call itself; the
caller names each column's type, and only those few types are decoded.

On SQLite (the embedded development default) the same statement runs
through the database's own read path: correctness, not speed, matters there.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import make_url

from maskline.db import Database

_EPOCH_2000 = dt.datetime(2000, 1, 1)


def _timestamp(raw: bytes) -> dt.datetime:
    # PostgreSQL's binary timestamp (without time zone, as maskline's columns
    # are): microseconds since 2000-01-01, read as psycopg reads it (naive).
    return _EPOCH_2000 + dt.timedelta(microseconds=int.from_bytes(raw, "big", signed=True))


# How each column of a binary result is read (the types a statement names).
DECODERS: dict[str, Callable[[bytes], Any]] = {
    "text": lambda raw: raw.decode(),
    "bytea": bytes,
    "bool": lambda raw: raw != b"\x00",
    "timestamp": _timestamp,
}


class FastReader:
    """``row(statement, params, types)``: the first row of a read-only
    statement, or None; ``types`` names each column's type (a key of
    :data:`DECODERS`), in order.

    Statements use ``%s`` placeholders and text parameters. Errors of the
    driver propagate (the caller fails closed). A connection that turns out
    dead (PostgreSQL restarted) is replaced and the statement run once more:
    it only reads.
    """

    def __init__(self, *, db: Database, timeout: float | None) -> None:
        self._db = db
        self._postgres = db.dialect == "postgresql"
        self._timeout = timeout
        self._local = threading.local()
        # statement -> (server-side name, its text with $n placeholders)
        self._names: dict[str, tuple[bytes, bytes]] = {}
        # Every thread's connection with the process that made it, for close_all.
        self._opened: list[tuple[Any, int]] = []
        self._opened_lock = threading.Lock()
        if self._postgres:
            url = make_url(db.url).set(drivername="postgresql")
            self._conninfo = url.render_as_string(hide_password=False)

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid() and not conn.closed:
            return conn
        import psycopg

        options: dict[str, Any] = {"autocommit": True}
        if self._timeout is not None:
            options["connect_timeout"] = max(2, round(self._timeout))
            options["options"] = f"-c statement_timeout={max(1, round(self._timeout * 1000))}"
        conn = psycopg.connect(self._conninfo, **options)
        self._local.conn, self._local.pid, self._local.prepared = conn, os.getpid(), set()
        with self._opened_lock:
            self._opened = [(c, pid) for c, pid in self._opened if not c.closed] + [(conn, os.getpid())]
        return conn

    def _name(self, statement: str) -> tuple[bytes, bytes]:
        named = self._names.get(statement)
        if named is None:
            count = iter(range(1, statement.count("%s") + 1))
            text = re.sub("%s", lambda _: f"${next(count)}", statement)
            named = (f"maskline_fast_{len(self._names)}".encode(), text.encode())
            self._names[statement] = named
        return named

    def row(self, statement: str, params: tuple[str, ...], types: tuple[str, ...]) -> tuple[Any, ...] | None:
        if not self._postgres:
            sqlite_statement = statement.replace("%s", "?")
            return self._db.read(lambda c: c.exec_driver_sql(sqlite_statement, params).fetchone())
        import psycopg

        name, text = self._name(statement)
        values = [p.encode() for p in params]
        decoders = [DECODERS[t] for t in types]
        for attempt in (1, 2):
            conn = self._connection()
            try:
                return self._run(conn, name, text, values, decoders)
            except psycopg.OperationalError:
                broken = conn.broken or conn.closed or conn.pgconn.status != _CONNECTION_OK
                self.close()
                if attempt == 2 or not broken:
                    raise  # a timeout, or a server that cannot be reached
        raise AssertionError("unreachable")

    def _run(
        self, conn: Any, name: bytes, text: bytes, values: list[bytes], decoders: list[Callable[[bytes], Any]]
    ) -> tuple[Any, ...] | None:
        import psycopg
        from psycopg import pq

        pgconn = conn.pgconn
        prepared: set[bytes] = self._local.prepared
        if name not in prepared:
            result = pgconn.prepare(name, text)
            if result.status != pq.ExecStatus.COMMAND_OK:
                raise _error(psycopg, result)
            prepared.add(name)
        result = pgconn.exec_prepared(name, values, result_format=1)
        if result.status != pq.ExecStatus.TUPLES_OK:
            raise _error(psycopg, result)
        if result.ntuples == 0:
            return None
        raw = [result.get_value(0, i) for i in range(result.nfields)]
        return tuple(None if v is None else decode(v) for v, decode in zip(raw, decoders, strict=True))

    def rows(self, statement: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Every row of a read-only statement (same rules as :meth:`row`); PostgreSQL only."""
        import psycopg

        for attempt in (1, 2):
            conn = self._connection()
            try:
                found: list[tuple[Any, ...]] = conn.execute(statement, params, prepare=True).fetchall()
                return found
            except psycopg.OperationalError:
                broken = conn.broken or conn.closed
                self.close()
                if attempt == 2 or not broken:
                    raise
        raise AssertionError("unreachable")

    def write(self, statement: str, params: dict[str, Any] | tuple[Any, ...]) -> tuple[Any, ...] | None:
        """Run one writing statement, prepared, as a transaction of its own
        (autocommit); its first row, or None. PostgreSQL only.

        Never retried here: after a connection lost mid-statement, whether it
        committed is unknown, and the caller decides. A statement that fails
        on the server has rolled back whole (it was its own transaction).
        """
        conn = self._connection()
        try:
            row: tuple[Any, ...] | None = conn.execute(statement, params, prepare=True).fetchone()
            return row
        except Exception:
            if conn.broken or conn.closed:
                self.close()
            raise

    @property
    def postgres(self) -> bool:
        return self._postgres

    @property
    def connected(self) -> bool:
        """This thread has a live connection (False after one was lost and closed)."""
        conn = getattr(self._local, "conn", None)
        return conn is not None and not conn.closed and not conn.broken

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(Exception):  # closing a dead connection
                conn.close()

    def close_all(self) -> None:
        """Close every thread's connection (at shutdown; not while in use)."""
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for conn, pid in opened:
            if pid == os.getpid():  # never a parent's, shared after a fork
                with contextlib.suppress(Exception):
                    conn.close()
        self._local.conn = None


_CONNECTION_OK = 0  # libpq's CONNECTION_OK


def _error(psycopg: Any, result: Any) -> Exception:
    """The driver's exception for a failed result: OperationalError for a
    connection that failed (so the caller may reconnect), else DatabaseError."""
    message = (result.error_message or b"").decode("utf-8", "replace").strip()
    sqlstate = result.error_field(ord("C")) or b""
    # Class 08 (connection exception), 57 (operator intervention: a server
    # shutting down, a statement cancelled by its timeout), or none at all
    # (libpq lost the server).
    if not sqlstate or sqlstate[:2] in (b"08", b"57"):
        error: Exception = psycopg.OperationalError(message or "the server closed the connection")
    else:
        error = psycopg.DatabaseError(message)
    return error
