"""Status callbacks store interactions by role; no column ever holds a number."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import select

from maskline import services_of
from maskline.clock import FixedClock
from maskline.webhooks.models import Interaction
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
        f"/webhooks/twilio/sms/status?ref={message_sid}", {"MessageSid": sid("SM"), "MessageStatus": "sent"}
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
        f"/webhooks/twilio/sms/status?ref={message_sid}", {"MessageSid": sid("SM"), "MessageStatus": "sent"}
    )
    dump = [{c.name: getattr(r, c.name) for c in Interaction.__table__.columns} for r in rows(app)]
    assert len(dump) == 2
    assert without_party_digits(repr(dump))
