"""Request counts and latency per endpoint, and gauges read from SQL at scrape time.

Imported by :func:`maskline.create_app` only (prometheus-client must not be
imported before ``maskline serve`` chooses its multiprocess folder). Labels
are Flask endpoint names, methods and status codes: bounded, never a number.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from maskline.numbers.models import Binding, RelayNumber

log = logging.getLogger(__name__)

REQUESTS = Counter("maskline_http_requests", "HTTP requests answered", ["endpoint", "method", "status"])
LATENCY = Histogram(
    "maskline_http_request_seconds",
    "Time to answer, by endpoint",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


def init_app(app: Flask) -> None:
    """Time every request; the endpoint label is the route's name, or ``unmatched``."""

    @app.before_request
    def _start() -> None:
        g.maskline_started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        started = g.get("maskline_started")
        endpoint = request.endpoint or "unmatched"
        if started is not None:
            LATENCY.labels(endpoint=endpoint).observe(time.perf_counter() - started)
        REQUESTS.labels(endpoint=endpoint, method=request.method, status=str(response.status_code)).inc()
        return response


_CHILDREN: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def observe(endpoint: str, method: str, status: int, seconds: float) -> None:
    """Count a request answered outside Flask (the webhook fast path), under
    the same metrics and labels as the requests Flask answers.

    The labelled children are looked up once per (endpoint, method, status),
    a handful in all: ``labels()`` takes a lock and builds a tuple each time.
    """
    children = _CHILDREN.get((endpoint, method, status))
    if children is None:
        children = (
            LATENCY.labels(endpoint=endpoint),
            REQUESTS.labels(endpoint=endpoint, method=method, status=str(status)),
        )
        _CHILDREN[(endpoint, method, status)] = children
    children[0].observe(seconds)
    children[1].inc()


class PoolCollector(Collector):
    """Live bindings and pool use, counted in SQL when /metrics is scraped.

    SQL is the truth and every worker sees the same, so these are computed
    once per scrape rather than kept per process.
    """

    def __init__(self, services: Any) -> None:
        self.services = services

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            yield from self._collect()
        except Exception as exc:  # a scrape must still answer; say what is missing
            log.warning("pool metrics unavailable: %s", type(exc).__name__)

    def _collect(self) -> Iterator[GaugeMetricFamily]:
        now: dt.datetime = self.services.clock()
        with self.services.db.session() as session:
            live = dict(
                session.execute(
                    select(Binding.mode, func.count())
                    .where(Binding.status == "active", Binding.expires_at > now)
                    .group_by(Binding.mode)
                ).all()
            )
            numbers = dict(
                session.execute(select(RelayNumber.status, func.count()).group_by(RelayNumber.status)).all()
            )
        bindings = GaugeMetricFamily("maskline_live_bindings", "Bindings live now, by mode", labels=["mode"])
        for mode in ("axb", "axe"):
            bindings.add_metric([mode], float(live.get(mode, 0)))
        yield bindings
        pool = GaugeMetricFamily("maskline_pool_numbers", "Relay numbers, by status", labels=["status"])
        for status in ("active", "locked", "retired"):
            pool.add_metric([status], float(numbers.get(status, 0)))
        yield pool
        capacity = (
            numbers.get("active", 0) + numbers.get("locked", 0)
        ) * self.services.settings.max_bindings_per_number
        utilisation = sum(live.values()) / capacity if capacity else 0.0
        yield GaugeMetricFamily(
            "maskline_pool_utilisation", "Live bindings over the pool's capacity (0-1)", value=utilisation
        )
