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

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(Exception):  # closing a dead connection
                conn.close()


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
