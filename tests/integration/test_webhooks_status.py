"""Status callbacks store interactions by role; no column ever holds a number."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from flask import Flask
from sqlalchemy import select

from maskline import services_of
from maskline.clock import FixedClock
from maskline.numbers.route_copies import copies_key, copy_field
from maskline.webhooks.models import Interaction
from maskline.webhooks.services import DecisionStore
from tests.integration.conftest import MERCHANT, STRANGER, Twilio, sid, without_party_digits


def rows(app: Flask) -> list[Interaction]:
    with services_of(app).db.session() as session:
        return list(session.execute(select(Interaction)).scalars())


def test_a_completed_call_is_stored_by_role_without_numbers(
    app: Flask, twilio: Twilio, bind: Callable[..., Any], clock: FixedClock
) -> None:
    view = bind()
    call_sid = sid()
    twilio.call(MERCHANT, view.relay_number, call_sid)
    twilio.call_status(call_sid, "in-progress")
    clock.advance(seconds=42)
    assert twilio.call_status(call_sid, "completed", 42).status == 200
    [row] = rows(app)
    assert (row.binding_id, row.owner, row.type, row.from_role, row.to_role) == (
        view.id,
        "default",
        "call",
        "merchant",
        "buyer",
    )
    assert (row.status, row.duration, row.ended_at) == ("completed", 42, clock())
    assert row.started_at < row.ended_at


def test_a_late_status_never_overwrites_the_final_one(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    view = bind()
    call_sid = sid()
    twilio.call(MERCHANT, view.relay_number, call_sid)
    twilio.call_status(call_sid, "completed", 5)
    twilio.call_status(call_sid, "ringing")
    assert [r.status for r in rows(app)] == ["completed"]


def test_a_rejected_call_stores_no_interaction(app: Flask, twilio: Twilio, bind: Callable[..., Any]) -> None:
    view = bind()
    call_sid = sid()
    twilio.call(STRANGER, view.relay_number, call_sid)
    twilio.call_status(call_sid, "completed", 3)
    assert rows(app) == []


def test_a_forwarded_message_is_stored(app: Flask, twilio: Twilio, bind: Callable[..., Any]) -> None:
    view = bind()
    message_sid = sid("SM")
    twilio.sms(MERCHANT, view.relay_number, "hi", message_sid=message_sid)
    twilio.post(
        f"/webhooks/twilio/sms/status?ref={message_sid}&x={quote(view.relay_number)}",
        {"MessageSid": sid("SM"), "MessageStatus": "sent"},
    )
    [row] = rows(app)
    assert (row.sid, row.type, row.from_role, row.to_role, row.status) == (
        message_sid,
        "sms",
        "merchant",
        "buyer",
        "sent",
    )


def test_no_interaction_column_holds_a_party_number(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    view = bind()
    for caller in (MERCHANT, STRANGER):
        call_sid = sid()
        twilio.call(caller, view.relay_number, call_sid)
        twilio.call_status(call_sid, "completed", 7)
    message_sid = sid("SM")
    twilio.sms(MERCHANT, view.relay_number, "hi", message_sid=message_sid)
    twilio.post(
        f"/webhooks/twilio/sms/status?ref={message_sid}&x={quote(view.relay_number)}",
        {"MessageSid": sid("SM"), "MessageStatus": "sent"},
    )
    dump = [{c.name: getattr(r, c.name) for c in Interaction.__table__.columns} for r in rows(app)]
    assert len(dump) == 2
    assert without_party_digits(repr(dump))


def _record_ttl(app: Flask, call_sid: str, relay: str) -> int:
    return int(services_of(app).redis.ttl(DecisionStore.key(call_sid, relay)))


def test_an_ended_call_keeps_only_its_done_mark_while_its_binding_is_live(
    app: Flask, twilio: Twilio, bind: Callable[..., Any], clock: FixedClock
) -> None:
    # A connect reads no SQL (the route copy): only this mark refuses a
    # replay, so it lives as long as the binding may, and holds nothing else.
    view = bind()
    call_sid = sid()
    twilio.call(MERCHANT, view.relay_number, call_sid)
    before = _record_ttl(app, call_sid, view.relay_number)
    twilio.call_status(call_sid, "completed", 5)
    redis = services_of(app).redis
    assert redis.hkeys(DecisionStore.key(call_sid, view.relay_number)) == [b"done"]
    left = (view.expires_at - clock()).total_seconds()
    assert left < _record_ttl(app, call_sid, view.relay_number) <= before
    # A late, out-of-order status does not lengthen it again.
    twilio.call_status(call_sid, "ringing")
    assert left < _record_ttl(app, call_sid, view.relay_number) <= before
    replay = twilio.call(MERCHANT, view.relay_number, call_sid)
    assert replay.status == 200 and "<Dial" not in replay.text


def test_an_ended_call_of_an_ended_binding_keeps_its_record_only_for_the_ended_ttl(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    settings = services_of(app).settings
    view = bind()
    call_sid = sid()
    twilio.call(MERCHANT, view.relay_number, call_sid)
    assert _record_ttl(app, call_sid, view.relay_number) > settings.webhook_ended_ttl.total_seconds()
    services_of(app).numbers.bindings.unbind(view.id, actor="test")
    twilio.call_status(call_sid, "completed", 5)
    assert 0 < _record_ttl(app, call_sid, view.relay_number) <= settings.webhook_ended_ttl.total_seconds()
    twilio.call_status(call_sid, "ringing")
    assert 0 < _record_ttl(app, call_sid, view.relay_number) <= settings.webhook_ended_ttl.total_seconds()


def test_a_rejected_call_keeps_the_full_ttl(app: Flask, twilio: Twilio, bind: Callable[..., Any]) -> None:
    # SQL holds nothing about a call it did not connect: Redis must keep refusing its replays.
    view = bind()
    call_sid = sid()
    twilio.call(STRANGER, view.relay_number, call_sid)
    twilio.call_status(call_sid, "completed", 3)
    assert (
        _record_ttl(app, call_sid, view.relay_number)
        > services_of(app).settings.webhook_ended_ttl.total_seconds()
    )


def test_without_its_record_and_route_copy_a_replay_is_refused_from_sql(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    # A binding made before route copies existed: the connect reads SQL,
    # which knows the call is over.
    view = bind()
    call_sid = sid()
    first = twilio.call(MERCHANT, view.relay_number, call_sid)
    assert "<Dial" in first.text
    twilio.call_status(call_sid, "completed", 5)
    redis = services_of(app).redis
    redis.delete(DecisionStore.key(call_sid, view.relay_number))
    redis.hdel(copies_key(view.relay_number), copy_field(view.id))
    replay = twilio.call(MERCHANT, view.relay_number, call_sid)
    assert replay.status == 200
    assert "<Dial" not in replay.text
    assert without_party_digits(replay.text)
