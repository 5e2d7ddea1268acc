"""Liveness and readiness endpoints."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from flask import Blueprint, current_app, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from maskline.db import Database

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)

# The key create_app() files the services under (maskline.EXTENSION_KEY),
# named here so that this face need not import the app factory above it.
EXTENSION_KEY = "maskline"


class _Probed(Protocol):
    """What readiness looks at: the wired services' database and Redis."""

    @property
    def db(self) -> Database: ...

    @property
    def redis(self) -> Any: ...


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """The process is up."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """The database and Redis answer; 503 naming what does not."""
    from maskline.redis_backend import ping

    services: _Probed = current_app.extensions[EXTENSION_KEY]
    checks: dict[str, str] = {}
    try:
        with services.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not ready", never a 500
        log.warning("readiness: database unavailable: %s", type(exc).__name__)
        checks["database"] = "unavailable"
    try:
        ping(services.redis)  # every primary of a cluster: any down one fails routing
        checks["redis"] = "ok"
    except Exception as exc:
        log.warning("readiness: redis unavailable: %s", type(exc).__name__)
        checks["redis"] = "unavailable"
    ready = all(v == "ok" for v in checks.values())
    return jsonify(status="ready" if ready else "unavailable", checks=checks), (200 if ready else 503)
