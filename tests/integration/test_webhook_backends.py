"""The webhook path's backends: short timeouts, and a hung backend ends in the apology."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from prometheus_client import REGISTRY
from sqlalchemy import event, literal, text, update

from maskline import services_of
from maskline.numbers.route_copies import copies_key, copy_field
from maskline.vault.interfaces import VaultEntryErased, VaultEntryNotFound, VaultIntegrityError
from maskline.vault.models import VaultEntry
from maskline.webhooks.interfaces import StepDecision
from maskline.webhooks.services import DecisionStore, Quotas
from maskline.wiring import Services
from tests.integration.conftest import BUYER, COURIER, MERCHANT, AppMaker, Twilio


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
    # A binding without a route copy: its connect reads the vault.
    backends.redis.hdel(copies_key(view.relay_number), copy_field(view.id))
    before = failures("voice")
    with services.db.engine.connect() as locker:
        # Another transaction holds the vault: opening a number cannot finish.
        locker.execute(text("LOCK TABLE vault_entries IN ACCESS EXCLUSIVE MODE"))
        answer = twilio.call(MERCHANT, view.relay_number)
        locker.rollback()
    assert answer.status == 200 and answer.dialed is None and "try again later" in answer.said
    assert failures("voice") == before + 1
    assert twilio.call(MERCHANT, view.relay_number).dialed is not None  # and it recovers at once


def _terminate_read_connections(services: Any) -> int:
    """Kill the PostgreSQL sessions of the webhook read pool, as a restart would."""
    pooled = services.webhook_backends.db.read_engine.raw_connection()
    try:
        pid = pooled.driver_connection.info.backend_pid
    finally:
        pooled.close()  # back to the pool, where the next call finds it dead
    with services.db.engine.connect() as connection:
        killed = connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
        connection.commit()
    return int(bool(killed))


def test_a_postgresql_restart_costs_the_next_call_no_error(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    services = services_of(app)
    if services.db.dialect != "postgresql":
        # SQLite has no server to restart: reads share the one engine.
        assert services.webhook_backends.db.read_engine is services.webhook_backends.db.engine
        return
    view = bind()
    assert twilio.call(MERCHANT, view.relay_number).dialed is not None  # the read pool holds a connection
    assert _terminate_read_connections(services) == 1
    before = failures("voice")
    # The pooled connection is dead and not pinged: the read runs once more on a fresh one.
    assert twilio.call(MERCHANT, view.relay_number).dialed == (view.relay_number, BUYER)
    assert failures("voice") == before


def test_the_connect_reads_in_one_prepared_statement_outside_sqlalchemy(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    services = services_of(app)
    backends = services.webhook_backends
    view = bind()
    # A binding without a route copy (made before them): the fallback read.
    backends.redis.hdel(copies_key(view.relay_number), copy_field(view.id))
    twilio.call(MERCHANT, view.relay_number)  # warm: the connection and its prepared statement
    statements: list[str] = []
    listen = ("before_cursor_execute", lambda *args: statements.append(args[2]))
    engines = {backends.db.engine, backends.db.read_engine, services.db.engine}
    for engine in engines:
        event.listen(engine, *listen)
    try:
        assert twilio.call(MERCHANT, view.relay_number).dialed is not None
    finally:
        for engine in engines:
            event.remove(engine, *listen)
    if services.db.dialect != "postgresql":
        # SQLite: the same statement, through the engine's own read path
        # (SQLite's own BEGIN IMMEDIATE aside).
        reads = [s for s in statements if not s.startswith("BEGIN")]
        assert len(reads) == 1 and "interactions" in reads[0]
        return
    assert statements == []  # no SQLAlchemy on a connect
    connection = backends.fast_sql._connection()
    # No BEGIN and no COMMIT around it: the driver is in autocommit.
    assert connection.autocommit is True
    # Prepared on the server once: the sealed number, the binding's options
    # and "is the call already over?" in one statement.
    prepared = [row[0] for row in connection.execute("SELECT statement FROM pg_prepared_statements")]
    assert len([p for p in prepared if "vault_entries" in p]) == 1
    assert "interactions" in next(p for p in prepared if "vault_entries" in p)


def test_the_read_path_opens_what_open_opens_and_refuses_what_it_refuses(
    services: Services,
) -> None:
    vault = services.vault
    with services.db.session() as session:
        token = vault.put(session, BUYER).token
        erased = vault.put(session, MERCHANT).token
        vault.erase(session, erased, actor="dpo", reason="erasure request")
        tampered = vault.put(session, COURIER).token
        session.execute(
            update(VaultEntry).where(VaultEntry.token == tampered).values(ciphertext=b"\x00" * 40)
        )

    def read(t: str) -> str:
        return services.db.read(lambda connection: vault.open_readonly(connection, t))

    assert read(token) == BUYER
    with pytest.raises(VaultEntryErased):
        read(erased)
    with pytest.raises(VaultIntegrityError):
        read(tampered)
    for unknown in ("pn_doesnotexist", "not-a-token"):
        with pytest.raises(VaultEntryNotFound):
            read(unknown)


def test_the_read_path_opens_nothing_when_its_gate_is_set(services: Services) -> None:
    vault = services.vault
    with services.db.session() as session:
        token = vault.put(session, BUYER).token
        erased = vault.put(session, MERCHANT).token
        vault.erase(session, erased, actor="dpo", reason="erasure request")

    def read(t: str, gate: Any) -> str | None:
        return services.db.read(lambda connection: vault.open_readonly_unless(connection, t, unless=gate))

    assert read(token, literal(None)) == BUYER
    assert read(token, literal(1)) is None  # e.g. the call has ended: no number, no error
    assert read(erased, literal(1)) is None
    with pytest.raises(VaultEntryErased):
        read(erased, literal(None))
    with pytest.raises(VaultEntryNotFound):
        read("pn_doesnotexist", literal(1))  # no entry is never a quiet None


def test_a_concurrent_second_decision_gets_the_first_and_leaves_its_record(redis_client: Any) -> None:
    store = DecisionStore(redis_client, ttl_seconds=60)
    first = StepDecision.rejected("stranger")
    second = StepDecision(
        action="connect", binding_id="bd_x", from_role="merchant", target_role="buyer", target_token="pn_x"
    )
    relay = "+14155550100"
    assert store.record("CA1", "voice:1", first, now=1, relay=relay) == first
    assert store.record("CA1", "voice:1", second, now=2, relay=relay) == first
    # A status callback finds no binding: the call that was answered connected no one.
    assert store.info("CA1", relay=relay) == {"voice:1": first.dumps(), "t": "1"}
    assert 0 < redis_client.ttl(DecisionStore.key("CA1", relay)) <= 60


def test_a_quota_counts_both_windows_in_one_script(redis_client: Any) -> None:
    quotas = Quotas(redis_client, limits={"call": (2, 3)})
    now = 7 * 86400 + 3600
    assert [quotas.take("+14155550100", "bd_x", "call", now=now) for _ in range(3)] == [True, True, False]
    assert quotas.take("+14155550100", "bd_x", "call", now=now + 3600) is False  # the day is used up
    assert 3600 < redis_client.ttl("ml:{+14155550100}:q:bd_x:call:h169") <= 7200


def test_quota_counters_live_to_the_end_of_their_window_and_a_minute(redis_client: Any) -> None:
    quotas = Quotas(redis_client, limits={"call": (5, 5)})
    now = 7 * 86400 + 23 * 3600 + 1800  # half past 23:00
    quotas.take("+14155550100", "bd_x", "call", now=now)
    hour_key, day_key = Quotas.keys("+14155550100", "bd_x", "call", now=now)
    assert 1800 < redis_client.ttl(hour_key) <= 1800 + Quotas.GRACE_SECONDS
    assert 1800 < redis_client.ttl(day_key) <= 1800 + Quotas.GRACE_SECONDS  # the day ends with the hour


def test_the_fast_read_decodes_each_column_as_psycopg_does(services: Services) -> None:
    """The connect's statement runs through libpq with binary results: each
    column type it names comes back as the driver's own cursor gives it."""
    vault = services.vault
    with services.db.session() as session:
        erased = vault.put(session, MERCHANT).token
        vault.erase(session, erased, actor="dpo", reason="erasure request")
        kept = vault.put(session, BUYER).token
    statement = (
        "SELECT purpose, wrapped_key, ciphertext, erased_at, erased_at IS NULL, %s"
        " FROM vault_entries WHERE token = %s"
    )
    types = ("text", "bytea", "bytea", "timestamp", "bool", "text")
    fast = services.webhook_backends.fast_sql
    assert fast.row(statement, ("x", "pn_doesnotexist"), types) is None
    if services.db.dialect != "postgresql":
        return  # SQLite: the engine's own read path, nothing decoded here
    connection = fast._connection()
    for token in (erased, kept):
        got = fast.row(statement, ("é+1", token), types)
        expected = connection.execute(statement.replace("%s", "%s::text", 1), ("é+1", token)).fetchone()
        assert got == tuple(expected)
    assert fast.row(statement, ("x", erased), types)[3] is not None  # type: ignore[index]
    assert fast.row(statement, ("x", kept), types)[3] is None  # type: ignore[index]


def test_a_dead_fast_read_connection_is_replaced_on_the_next_call(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    services = services_of(app)
    if services.db.dialect != "postgresql":
        return  # no connection of its own on SQLite
    view = bind()
    # A binding without a route copy: its connects read SQL.
    services.webhook_backends.redis.hdel(copies_key(view.relay_number), copy_field(view.id))
    assert twilio.call(MERCHANT, view.relay_number).dialed is not None  # its connection, prepared
    pid = services.webhook_backends.fast_sql._connection().info.backend_pid
    with services.db.engine.connect() as connection:
        assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    before = failures("voice")
    # The statement is prepared again on the new connection, and the call connects.
    assert twilio.call(MERCHANT, view.relay_number).dialed == (view.relay_number, BUYER)
    assert failures("voice") == before
    assert services.webhook_backends.fast_sql._connection().info.backend_pid != pid
