"""Recorded bindings: announced to both sides, dual-channel, listed by sid and URL only."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from flask import Flask
from sqlalchemy import select

from maskline import services_of
from maskline.webhooks.models import Recording
from maskline.webhooks.recordings import recordings_of
from tests.integration.conftest import BUYER, MERCHANT, Answer, Twilio, sid, without_party_digits

RECORDING_URL = "https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE1"


def recording_callback(twilio: Twilio, answer: Answer, *, recording_sid: str, **fields: str) -> Answer:
    """POST the recording status callback to the URL the <Dial> named, as Twilio would."""
    dial = answer.find("Dial")
    assert dial is not None
    params = {
        "AccountSid": "AC" + "0" * 32,
        "CallSid": sid(),  # the child leg's sid: maskline files it by ``ref``
        "RecordingSid": recording_sid,
        "RecordingUrl": RECORDING_URL,
        "RecordingStatus": "completed",
        "RecordingDuration": "42",
        "RecordingChannels": "2",
        **fields,
    }
    return twilio.post(dial.get("recordingStatusCallback", ""), params)


def listed(app: Flask, binding_id: str) -> list[dict[str, Any]]:
    with services_of(app).db.session() as session:
        return [r.to_json() for r in recordings_of(session, binding_id)]


def test_a_recorded_binding_announces_and_records_both_legs(twilio: Twilio, bind: Callable[..., Any]) -> None:
    view = bind(record=True)
    call_sid = sid()
    answer = twilio.call(MERCHANT, view.relay_number, call_sid)
    assert answer.dialed == (view.relay_number, BUYER)
    assert "recorded" in answer.said  # the caller is told before the dial
    dial = answer.find("Dial")
    assert dial is not None
    assert dial.get("record") == "record-from-answer-dual"
    # The record of the call is found under its relay number (x), in one round trip.
    callback = f"/webhooks/twilio/voice/recording?ref={call_sid}&x={quote(view.relay_number)}"
    assert dial.get("recordingStatusCallback") == callback
    number = dial.find("Number")
    assert number is not None
    # The called party is told too: Twilio plays the whisper URL's TwiML to it first.
    whisper = twilio.post(number.get("url", ""), {"CallSid": sid(), "From": view.relay_number, "To": BUYER})
    assert whisper.status == 200 and "recorded" in whisper.said and whisper.dialed is None


def test_an_unrecorded_binding_neither_announces_nor_records(
    twilio: Twilio, bind: Callable[..., Any]
) -> None:
    view = bind()
    answer = twilio.call(MERCHANT, view.relay_number)
    dial = answer.find("Dial")
    assert dial is not None and dial.get("record") is None
    assert answer.said == ""


def test_recordings_are_listed_per_binding_by_sid_and_url(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    recorded = bind(record=True)
    other = bind(record=True, order_id="o-2")
    answer = twilio.call(MERCHANT, recorded.relay_number)
    recording_sid = "RE" + "a" * 32
    assert recording_callback(twilio, answer, recording_sid=recording_sid).status == 200
    rows = listed(app, recorded.id)
    assert [(r["sid"], r["url"], r["status"], r["duration"], r["channels"]) for r in rows] == [
        (recording_sid, RECORDING_URL, "completed", 42, 2)
    ]
    assert listed(app, other.id) == []


def test_a_repeated_recording_callback_updates_one_row(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    view = bind(record=True)
    answer = twilio.call(BUYER, view.relay_number)
    recording_sid = "RE" + "b" * 32
    recording_callback(twilio, answer, recording_sid=recording_sid, RecordingStatus="in-progress")
    recording_callback(twilio, answer, recording_sid=recording_sid, RecordingDuration="61")
    rows = listed(app, view.id)
    assert len(rows) == 1 and rows[0]["status"] == "completed" and rows[0]["duration"] == 61


def test_a_recording_for_a_call_maskline_never_connected_is_not_filed(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    bind(record=True)
    params = {
        "CallSid": sid(),
        "RecordingSid": "RE" + "c" * 32,
        "RecordingUrl": RECORDING_URL,
        "RecordingStatus": "completed",
    }
    answer = twilio.post(f"/webhooks/twilio/voice/recording?ref={sid()}", params)
    assert answer.status == 200
    with services_of(app).db.session() as session:
        assert session.scalars(select(Recording)).all() == []


def test_a_forged_recording_callback_is_403_and_stores_nothing(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    view = bind(record=True)
    answer = twilio.call(MERCHANT, view.relay_number)
    dial = answer.find("Dial")
    assert dial is not None
    params = {"CallSid": sid(), "RecordingSid": "RE" + "d" * 32, "RecordingUrl": RECORDING_URL}
    forged = twilio.post(
        dial.get("recordingStatusCallback", ""),
        {**params, "RecordingStatus": "completed"},
        signature="forged",
    )
    assert forged.status == 403
    assert listed(app, view.id) == []


def test_a_recording_url_that_is_not_https_is_400(twilio: Twilio, bind: Callable[..., Any]) -> None:
    view = bind(record=True)
    answer = twilio.call(MERCHANT, view.relay_number)
    bad = recording_callback(twilio, answer, recording_sid="RE" + "e" * 32, RecordingUrl="http://x.test/a")
    assert bad.status == 400 and "RecordingUrl" in bad.text


def test_no_recording_column_holds_a_party_number(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    view = bind(record=True)
    for caller in (MERCHANT, BUYER):
        answer = twilio.call(caller, view.relay_number)
        recording_callback(twilio, answer, recording_sid="RE" + sid()[2:])
    dump = json.dumps(listed(app, view.id))
    with services_of(app).db.session() as session:
        rows = [
            {c.name: getattr(r, c.name) for c in Recording.__table__.columns}
            for r in session.scalars(select(Recording))
        ]
    assert len(rows) == 2
    assert without_party_digits(dump + repr(rows))


def test_the_recording_announcement_follows_the_language(make_app: Any, bind: Callable[..., Any]) -> None:
    twilio = Twilio(make_app(voice_language="zh-CN"))
    view = bind(record=True)
    answer = twilio.call(MERCHANT, view.relay_number)
    assert "录音" in answer.said
