"""One prepared statement, no SQLAlchemy: the SQL read of the webhook connect path.

A connect runs thousands of times a second and needs one row by primary
key. Through SQLAlchemy that read cost a quarter of a webhook worker's CPU
(statement building, compile-cache keys, pool checkout). Here it is a
psycopg connection of this process's own (one per thread, made after the
fork), in autocommit, with each statement prepared on the server the first
time it runs (``prepare=True``): one round trip, a few dozen microseconds.

On SQLite (the embedded development default) the same statement runs
through the database's own read path: correctness, not speed, matters there.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any

from sqlalchemy.engine import make_url

from maskline.db import Database


class FastReader:
    """``row(statement, params)``: the first row of a read-only statement, or None.

    Statements use ``%s`` placeholders. Errors of the driver propagate (the
    caller fails closed). A connection that turns out dead (PostgreSQL
    restarted) is replaced and the statement run once more: it only reads.
    """

    def __init__(self, *, db: Database, timeout: float | None) -> None:
        self._db = db
        self._postgres = db.dialect == "postgresql"
        self._timeout = timeout
        self._local = threading.local()
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
        self._local.conn, self._local.pid = conn, os.getpid()
        with self._opened_lock:
            self._opened = [(c, pid) for c, pid in self._opened if not c.closed] + [(conn, os.getpid())]
        return conn

    def row(self, statement: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if not self._postgres:
            sqlite_statement = statement.replace("%s", "?")
            return self._db.read(lambda c: c.exec_driver_sql(sqlite_statement, params).fetchone())
        import psycopg

        for attempt in (1, 2):
            conn = self._connection()
            try:
                row: tuple[Any, ...] | None = conn.execute(statement, params, prepare=True).fetchone()
                return row
            except psycopg.OperationalError:
                broken = conn.broken or conn.closed
                self.close()
                if attempt == 2 or not broken:
                    raise  # a timeout, or a server that cannot be reached
        raise AssertionError("unreachable")

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
