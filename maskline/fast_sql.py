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

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(Exception):  # closing a dead connection
                conn.close()
