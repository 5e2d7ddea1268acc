"""``/metrics``: Prometheus counters (webhook decisions, requests, latency) and pool gauges.

Labels are reasons and endpoint names only (bounded, never a number), so the
page carries no party data; ``MASKLINE_METRICS_TOKEN`` still keeps it to
whoever holds the token, when set.

Under gunicorn every worker counts for itself. ``maskline serve`` points
prometheus-client's multiprocess mode at a fresh folder before anything
imports it (:func:`use_multiprocess_dir`), and this endpoint sums the
workers' files, so a scrape sees the whole server whichever worker answers.
"""

from __future__ import annotations

import hmac
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, request
from flask.typing import ResponseReturnValue

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SETTINGS_KEY = "maskline.metrics_token"

bp = Blueprint("metrics", __name__)


def use_multiprocess_dir(folder: Path) -> None:
    """Count in files under ``folder`` (emptied first), shared by forked workers.

    Must run before prometheus_client is first imported: it picks its value
    store once, at import.
    """
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before its multiprocess folder was set")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700)
    os.environ[MULTIPROC_ENV] = str(folder)


def worker_exited(pid: int) -> None:
    """Tell prometheus-client a worker is gone (its live gauges stop counting)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def _authorised(token: str | None) -> bool:
    if not token:
        return True
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    if not _authorised(current_app.config.get(SETTINGS_KEY)):
        return Response(
            "unauthorised\n", status=401, mimetype="text/plain", headers={"WWW-Authenticate": "Bearer"}
        )
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

    from maskline.http_metrics import PoolCollector

    counters: Any = REGISTRY
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        counters = CollectorRegistry()
        multiprocess.MultiProcessCollector(counters)  # type: ignore[no-untyped-call]
    # Pool gauges come from SQL, once per scrape, not from any one worker.
    gauges = CollectorRegistry()
    gauges.register(PoolCollector(current_app.extensions["maskline"]))
    body = generate_latest(counters) + generate_latest(gauges)
    return Response(body, status=200, headers={"Content-Type": CONTENT_TYPE_LATEST})
