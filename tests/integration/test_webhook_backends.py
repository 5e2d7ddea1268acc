"""The webhook path's backends: short timeouts, and a hung backend ends in the apology."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from prometheus_client import REGISTRY
from sqlalchemy import text

from maskline import services_of
from tests.integration.conftest import MERCHANT, AppMaker, Twilio


def failures(endpoint: str) -> float:
    return REGISTRY.get_sample_value("maskline_webhook_failures_total", {"endpoint": endpoint}) or 0.0


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A TCP port that accepts connections and never answers: a hung Redis."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    listener.close()


def test_the_webhook_redis_client_uses_the_configured_short_timeout(make_app: AppMaker) -> None:
    make_app()
    app = make_app(webhook_backend_timeout=0.25, redis_url="redis://127.0.0.1:6399/0")
    services = services_of(app)
    webhook = services.webhook_backends.redis.connection_pool.connection_kwargs
    main = services.redis.connection_pool.connection_kwargs
    assert webhook["socket_timeout"] == 0.25 and webhook["socket_connect_timeout"] == 0.25
    assert main["socket_timeout"] > webhook["socket_timeout"]


def test_a_redis_that_never_answers_ends_in_the_apology(
    make_app: AppMaker, bind: Callable[..., Any], silent_redis: str
) -> None:
    make_app()
    view = bind()
    app = make_app(redis_url=silent_redis)
    before = failures("voice")
    answer = Twilio(app).call(MERCHANT, view.relay_number)
    assert answer.status == 200 and answer.dialed is None and "try again later" in answer.said
    assert failures("voice") == before + 1


def test_a_statement_stuck_on_a_lock_ends_in_the_apology(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    view = bind()
    services = services_of(app)
    backends = services.webhook_backends
    if services.db.dialect != "postgresql":
        # SQLite has no statement timeout: the webhook path shares the one engine.
        assert backends.db is services.db
        return
    with backends.db.engine.connect() as connection:
        assert connection.execute(text("SHOW statement_timeout")).scalar() == "500ms"
    before = failures("voice")
    with services.db.engine.connect() as locker:
        # Another transaction holds the vault: opening a number cannot finish.
        locker.execute(text("LOCK TABLE vault_entries IN ACCESS EXCLUSIVE MODE"))
        answer = twilio.call(MERCHANT, view.relay_number)
        locker.rollback()
    assert answer.status == 200 and answer.dialed is None and "try again later" in answer.said
    assert failures("voice") == before + 1
    assert twilio.call(MERCHANT, view.relay_number).dialed is not None  # and it recovers at once
