"""Route copies: a connect in one Redis round trip, no SQL, kept true by every
change of a binding (see maskline.numbers.route_copies)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from maskline import services_of
from maskline.clock import FixedClock
from maskline.numbers.interfaces import BindRequest
from maskline.numbers.rebuild import pool_numbers, rebuild_routes
from maskline.numbers.replace import PartyReplacer
from maskline.numbers.route_copies import RouteCopies, copies_key, copy_field, open_copy
from maskline.vault import keyring as kr
from maskline.vault import rotation, sealing
from maskline.vault.interfaces import VaultIntegrityError
from tests.integration.conftest import BUYER, COURIER, MERCHANT, STRANGER, Twilio, sid, without_party_digits


@pytest.fixture
def sql_reads(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The statements the webhook face's prepared-statement reader runs."""
    reader = services_of(app).webhook_backends.fast_sql
    seen: list[str] = []
    real = reader.row

    def counted(statement: str, *args: Any) -> Any:
        seen.append(statement)
        return real(statement, *args)

    monkeypatch.setattr(reader, "row", counted)
    yield seen


def _bind_other(app: Flask) -> Any:
    """A second axb binding, between two other parties."""
    request = BindRequest(order_id="o-2", mode="axb", parties={"buyer": STRANGER, "merchant": COURIER})
    return services_of(app).numbers.bindings.bind(request)


def _copy(app: Flask, relay: str, binding_id: str) -> bytes | None:
    value = services_of(app).webhook_backends.redis.hget(copies_key(relay), copy_field(binding_id))
    return None if value is None else bytes(value)


def _copies(app: Flask) -> int:
    services = services_of(app)
    return RouteCopies(services.numbers.routes.client).count(iter(pool_numbers(services.db)))


def test_a_connect_reads_no_sql_and_dials_the_right_party(
    app: Flask, twilio: Twilio, bind: Callable[..., Any], sql_reads: list[str]
) -> None:
    view = bind()
    assert twilio.call(MERCHANT, view.relay_number).dialed == (view.relay_number, BUYER)
    assert twilio.call(BUYER, view.relay_number).dialed == (view.relay_number, MERCHANT)
    answer = twilio.sms(BUYER, view.relay_number, "hello")
    assert "<Message" in answer.text and MERCHANT in answer.text
    assert sql_reads == []


def test_the_copy_is_small_sealed_and_holds_no_number_in_clear(app: Flask, bind: Callable[..., Any]) -> None:
    view = bind(record=True, language="zh-CN", sms_redact=frozenset({"phones"}), sms_media="refuse")
    copy = _copy(app, view.relay_number, view.id)
    assert copy is not None and len(copy) <= sealing.ROUTE_COPY_MAX
    for number in (BUYER, MERCHANT):
        assert number[1:].encode() not in copy and sealing.pack_bcd(number)[:6] not in copy
    ring = services_of(app).keys.current()
    numbers, options = open_copy(
        ring, copy, relay=view.relay_number, binding_id=view.id, roles=["merchant", "buyer"]
    )
    assert numbers == {"buyer": BUYER, "merchant": MERCHANT}
    assert (options.record, options.language, options.sms_redact, options.sms_media) == (
        True,
        "zh-CN",
        "phones",
        "refuse",
    )


def test_the_options_come_from_the_copy(
    app: Flask, twilio: Twilio, bind: Callable[..., Any], sql_reads: list[str]
) -> None:
    view = bind(record=True, sms_media="refuse")
    answer = twilio.call(MERCHANT, view.relay_number)
    assert answer.dialed == (view.relay_number, BUYER) and "record" in answer.text.lower()
    refused = twilio.sms(
        BUYER, view.relay_number, "a photo", NumMedia="1", MediaUrl0="https://example.com/a.jpg"
    )
    assert "<Message" in refused.text and MERCHANT not in refused.text
    assert sql_reads == []


def test_a_copy_moved_to_another_binding_never_dials_its_numbers(
    app: Flask, twilio: Twilio, bind: Callable[..., Any], sql_reads: list[str]
) -> None:
    first = bind(order_id="o-1")
    second = _bind_other(app)
    redis = services_of(app).webhook_backends.redis
    stolen = _copy(app, first.relay_number, first.id)
    assert stolen is not None
    redis.hset(copies_key(second.relay_number), copy_field(second.id), stolen)
    # The AAD names the relay number, binding and roles: it does not open, SQL answers.
    assert twilio.call(COURIER, second.relay_number).dialed == (second.relay_number, STRANGER)
    assert len(sql_reads) == 1


def test_a_damaged_or_missing_copy_falls_back_to_sql(
    app: Flask, twilio: Twilio, bind: Callable[..., Any], sql_reads: list[str]
) -> None:
    view = bind()
    redis = services_of(app).webhook_backends.redis
    copy = _copy(app, view.relay_number, view.id)
    assert copy is not None
    redis.hset(copies_key(view.relay_number), copy_field(view.id), copy[:-1] + bytes([copy[-1] ^ 1]))
    assert twilio.call(MERCHANT, view.relay_number).dialed == (view.relay_number, BUYER)
    redis.hdel(copies_key(view.relay_number), copy_field(view.id))
    assert twilio.call(BUYER, view.relay_number).dialed == (view.relay_number, MERCHANT)
    assert len(sql_reads) == 2


def test_axe_bindings_have_no_copy_and_still_connect(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    view = bind("axe")
    assert _copy(app, view.relay_number, view.id) is None
    call_sid = sid()
    assert twilio.call(COURIER, view.relay_number, call_sid).dialed is None  # asks for the extension
    answer = twilio.key(COURIER, view.relay_number, view.extension, call_sid=call_sid)
    assert answer.dialed == (view.relay_number, BUYER)


def test_unbind_removes_the_copy(app: Flask, twilio: Twilio, bind: Callable[..., Any]) -> None:
    view = bind()
    assert _copies(app) == 1
    services_of(app).numbers.bindings.unbind(view.id, actor="test")
    assert _copies(app) == 0
    assert twilio.call(MERCHANT, view.relay_number).dialed is None


def test_erasing_a_party_removes_its_copies(app: Flask, bind: Callable[..., Any]) -> None:
    services = services_of(app)
    view = bind()
    token = services.numbers.router.resolve(view.relay_number, MERCHANT).target_token
    assert token is not None and _copies(app) == 1
    with services.db.session() as session:
        services.vault.erase(session, token, actor="dpo", reason="erasure request")
    assert _copies(app) == 0


def test_replacing_a_party_drops_the_copy_of_the_old_number(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    services = services_of(app)
    view = bind()
    replacer = PartyReplacer(
        db=services.db,
        vault=services.vault,
        routes=services.numbers.routes,
        audit=services.audit,
        clock=services.clock,
        cooldown=services.settings.cooldown,
    )
    replacer.replace(
        view.id, owner=view.owner, role="buyer", number=STRANGER, field="buyer", region=None, actor="test"
    )
    assert _copy(app, view.relay_number, view.id) is None
    assert twilio.call(MERCHANT, view.relay_number).dialed == (view.relay_number, STRANGER)


def _rebuild(app: Flask) -> None:
    services = services_of(app)
    rebuild_routes(
        db=services.db,
        vault=services.vault,
        routes=services.numbers.routes,
        cooldown=services.settings.cooldown,
        now=services.clock(),
    )


def test_rebuild_adds_copies_to_live_bindings_made_before_them(
    app: Flask, twilio: Twilio, bind: Callable[..., Any], sql_reads: list[str]
) -> None:
    # The upgrade: Redis intact, bindings without copies (made by the old version).
    services = services_of(app)
    live = bind(order_id="o-1", record=True)
    ended = _bind_other(app)
    services.numbers.bindings.unbind(ended.id, actor="test")
    redis = services.webhook_backends.redis
    redis.hdel(copies_key(live.relay_number), copy_field(live.id))
    _rebuild(app)
    assert _copy(app, live.relay_number, live.id) is not None
    assert _copy(app, ended.relay_number, ended.id) is None
    answer = twilio.call(MERCHANT, live.relay_number)
    assert answer.dialed == (live.relay_number, BUYER) and "record" in answer.text.lower()
    assert sql_reads == []


def test_after_redis_lost_its_data_older_bindings_connect_through_sql(
    app: Flask, twilio: Twilio, bind: Callable[..., Any], clock: FixedClock, sql_reads: list[str]
) -> None:
    # Their calls' records are gone: only SQL still knows which calls ended.
    services = services_of(app)
    old = bind(order_id="o-1")
    services.webhook_backends.redis.flushdb()
    _rebuild(app)
    assert _copy(app, old.relay_number, old.id) is None
    clock.advance(seconds=5)
    new = _bind_other(app)
    assert _copy(app, new.relay_number, new.id) is not None
    _rebuild(app)  # a later rebuild, Redis intact: still none for the old binding
    assert _copy(app, old.relay_number, old.id) is None
    assert _copy(app, new.relay_number, new.id) is not None
    assert twilio.call(MERCHANT, old.relay_number).dialed == (old.relay_number, BUYER)
    assert twilio.call(COURIER, new.relay_number).dialed == (new.relay_number, STRANGER)
    assert len(sql_reads) == 1


def test_rotation_reseals_the_copies_and_retiring_the_old_kek_makes_old_ones_unreadable(
    app: Flask, twilio: Twilio, bind: Callable[..., Any], keys_file: Path, sql_reads: list[str]
) -> None:
    services = services_of(app)
    view = bind()
    old = _copy(app, view.relay_number, view.id)
    assert old is not None and sealing.route_copy_version(old) == 1
    ring, version = kr.with_added_version(kr.read_keyring_file(keys_file), "kek")
    kr.write_keyring_file(keys_file, kr.with_primary(ring, "kek", version))
    ring = services.keys.refresh()
    with services.db.session() as session:  # the vault's own entries, as `vault rewrap` does
        rotation.rewrap_batch(session, ring)
    copies = RouteCopies(services.numbers.routes.client)
    assert copies.rewrap(ring, pool_numbers(services.db)) == (1, 0)
    assert copies.rewrap(ring, pool_numbers(services.db)) == (0, 0)  # done: nothing more
    new = _copy(app, view.relay_number, view.id)
    assert new is not None and new != old and sealing.route_copy_version(new) == version
    assert twilio.call(MERCHANT, view.relay_number).dialed == (view.relay_number, BUYER)
    assert sql_reads == []
    # Retired: the old version's route key cannot be derived, so a copy an old
    # RDB file or replica still holds does not open, and a connect reads SQL.
    retired = kr.without_version(ring, "kek", 1)
    roles = ["buyer", "merchant"]
    with pytest.raises(VaultIntegrityError):
        open_copy(retired, old, relay=view.relay_number, binding_id=view.id, roles=roles)
    assert (
        open_copy(retired, new, relay=view.relay_number, binding_id=view.id, roles=roles)[0]["buyer"] == BUYER
    )
    services.webhook_backends.redis.hset(copies_key(view.relay_number), copy_field(view.id), old)
    kr.write_keyring_file(keys_file, retired)
    services.keys.refresh()
    assert twilio.call(MERCHANT, view.relay_number).dialed == (view.relay_number, BUYER)
    assert len(sql_reads) == 1


def test_a_redis_dump_holds_no_party_number(app: Flask, bind: Callable[..., Any]) -> None:
    bind(record=True, language="zh-CN")
    redis = services_of(app).webhook_backends.redis
    dump = b"".join(
        bytes(k) + b"".join(bytes(f) + bytes(v) for f, v in redis.hgetall(k).items())
        for k in redis.scan_iter("ml:{*")
        if redis.type(k) in (b"hash", "hash")
    )
    assert b":cp" in dump  # the copies are there, sealed
    assert without_party_digits(dump.decode("latin-1"))
    for number in (BUYER, MERCHANT):
        assert sealing.pack_bcd(number)[:6] not in dump
