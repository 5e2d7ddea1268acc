"""Test services per pytest-xdist worker.

``make test`` runs the suite on several workers (``pytest -n``). Tests empty
tables and Redis databases freely, so two workers must never share one: each
worker ``gwN`` gets the database ``<name>_gwN`` (created on first use, schema
migrated by the session fixture) and the Redis database ``<db> + N``. Without
xdist, the URLs are used as given.

A Redis Cluster has only database 0, so a cluster URL cannot be split: the
cluster tier runs its tests on one worker.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

REDIS_DATABASES = 16  # redis.conf's default `databases`


def worker_number(environ: dict[str, str] | None = None) -> int | None:
    """N for xdist worker ``gwN``; None when the suite runs in one process."""
    name = (os.environ if environ is None else environ).get("PYTEST_XDIST_WORKER", "")
    return int(name[2:]) if name.startswith("gw") else None


def database_url_for(url: str | None, worker: int | None) -> str | None:
    """The worker's own database: ``<name>_gw<N>`` on the same server."""
    if url is None or worker is None:
        return url
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_gw{worker}").render_as_string(hide_password=False)


def redis_url_for(url: str | None, worker: int | None) -> str | None:
    """The worker's own Redis database: the given one plus N."""
    if url is None or worker is None:
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise RuntimeError(f"{parts.scheme}:// cannot be split between xdist workers; run with -n 0")
    base = int(parts.path.strip("/") or 0)
    db = base + worker
    if db >= REDIS_DATABASES:
        raise RuntimeError(f"worker {worker} would need Redis database {db}; lower the worker count")
    return urlunsplit(parts._replace(path=f"/{db}"))


def ensure_database(url: str) -> None:
    """Create ``url``'s PostgreSQL database if it does not exist yet."""
    target = make_url(url)
    if not target.get_backend_name().startswith("postgresql"):
        return
    # CREATE DATABASE cannot run in a transaction; connect to the server's
    # maintenance database to run it.
    admin = create_engine(
        target.set(drivername="postgresql+psycopg", database="postgres"), isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database}
            ).scalar()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    finally:
        admin.dispose()
