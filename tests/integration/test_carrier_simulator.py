"""The carrier simulator against an in-process app: Twilio's side of calls and texts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask

from maskline import services_of
from maskline.sim.carrier import CarrierSimulator, FlaskTransport, is_loopback_url, mask_number
from maskline.webhooks.recordings import recordings_of
from tests.integration.conftest import AUTH_TOKEN, BUYER, COURIER, MERCHANT, STRANGER


def simulator(app: Flask, token: str = AUTH_TOKEN) -> CarrierSimulator:
    return CarrierSimulator(transport=FlaskTransport(app), auth_token=token, public_url="http://localhost")


def test_merchant_call_connects_to_the_buyer_with_the_relay_as_caller_id(
    app: Flask, bind: Callable[..., Any]
) -> None:
    view = bind("axb")
    result = simulator(app).call(from_number=MERCHANT, to_number=view.relay_number)
    assert (result.outcome, result.dialed, result.caller_id) == ("connected", BUYER, view.relay_number)
    assert result.to_json()["dialed"] != BUYER  # masked unless asked


def test_courier_follows_the_prompt_with_the_extension(app: Flask, bind: Callable[..., Any]) -> None:
    view = bind("axe")
    result = simulator(app).call(from_number=COURIER, to_number=view.relay_number, digits=[view.extension])
    assert (result.outcome, result.dialed, result.steps) == ("connected", BUYER, 2)


def test_stranger_is_refused_politely(app: Flask, bind: Callable[..., Any]) -> None:
    view = bind("axb")
    result = simulator(app).call(from_number=STRANGER, to_number=view.relay_number)
    assert result.outcome == "rejected" and result.said and result.dialed is None


def test_wrong_auth_token_is_refused_with_403(app: Flask, bind: Callable[..., Any]) -> None:
    view = bind("axb")
    result = simulator(app, token="not-the-token").call(from_number=MERCHANT, to_number=view.relay_number)
    assert (result.outcome, result.http_status) == ("error", 403)


def test_sms_is_forwarded_from_the_relay_number(app: Flask, bind: Callable[..., Any]) -> None:
    view = bind("axb")
    result = simulator(app).sms(from_number=BUYER, to_number=view.relay_number, body="at the door")
    assert result.outcome == "forwarded"
    assert result.messages[0]["to"] == MERCHANT and result.messages[0]["from"] == view.relay_number


def test_masking_and_loopback_checks() -> None:
    assert mask_number("+14155550132") == "+1********32"
    assert is_loopback_url("http://127.0.0.1:8000") and is_loopback_url("http://localhost:8000")
    assert not is_loopback_url("http://10.0.0.5:8000")


def test_a_recorded_call_is_announced_to_both_sides_and_its_recording_filed(
    app: Flask, bind: Callable[..., Any]
) -> None:
    view = bind("axb", record=True)
    sim = simulator(app)
    result = sim.call(from_number=MERCHANT, to_number=view.relay_number)
    assert result.outcome == "connected" and result.recorded
    assert any("recorded" in s for s in result.said) and any("recorded" in s for s in result.callee_heard)
    # Twilio posts to the recordingStatusCallback the <Dial> named.
    callback = result.recording_callback
    assert callback and callback.startswith(f"/webhooks/twilio/voice/recording?ref={result.call_sid}")
    assert sim.recording(callback_url=callback, call_sid=result.call_sid, duration=9) == 200
    with services_of(app).db.session() as session:
        assert [r.duration for r in recordings_of(session, view.id)] == [9]


def test_an_unrecorded_call_tells_the_callee_nothing(app: Flask, bind: Callable[..., Any]) -> None:
    view = bind("axb")
    result = simulator(app).call(from_number=MERCHANT, to_number=view.relay_number)
    assert result.outcome == "connected" and not result.recorded and result.callee_heard == []


def test_a_caller_who_keys_the_extension_does_not_hear_the_timeout_goodbye(
    app: Flask, bind: Callable[..., Any]
) -> None:
    view = bind("axe")
    keyed = simulator(app).call(from_number=COURIER, to_number=view.relay_number, digits=[view.extension])
    silent = simulator(app).call(from_number=COURIER, to_number=view.relay_number)
    assert keyed.outcome == "connected" and not any("Goodbye" in s for s in keyed.said)
    assert silent.outcome == "gather" and any("Goodbye" in s for s in silent.said)


# -- whole calls and messages: the callbacks Twilio sends after the first webhook --------


def _interactions(app: Flask, binding_id: str) -> list[tuple[str, str, int | None]]:
    from sqlalchemy import select

    from maskline.webhooks.models import Interaction

    with services_of(app).db.session() as session:
        rows = session.scalars(select(Interaction).where(Interaction.binding_id == binding_id)).all()
        return [(row.type, row.status, row.duration) for row in rows]


def test_a_whole_call_reports_ringing_in_progress_and_completed_with_its_duration(
    app: Flask, bind: Callable[..., Any]
) -> None:
    view = bind("axb")
    result = simulator(app).play_call(from_number=MERCHANT, to_number=view.relay_number, duration=42)

    assert [(c.status, c.http_status) for c in result.callbacks] == [
        ("ringing", 200),
        ("in-progress", 200),
        ("completed", 200),
    ]
    assert (result.outcome, result.call_status, result.duration) == ("connected", "completed", 42)
    assert _interactions(app, view.id) == [("call", "completed", 42)]


def test_a_busy_callee_ends_the_call_busy_without_a_duration(app: Flask, bind: Callable[..., Any]) -> None:
    view = bind("axb")
    result = simulator(app).play_call(from_number=MERCHANT, to_number=view.relay_number, ending="busy")

    assert [c.status for c in result.callbacks] == ["ringing", "busy"]
    assert _interactions(app, view.id) == [("call", "busy", 0)]


def test_a_refused_call_only_completes(app: Flask, bind: Callable[..., Any]) -> None:
    view = bind("axb")
    result = simulator(app).play_call(from_number=STRANGER, to_number=view.relay_number)

    assert result.outcome == "rejected" and [c.status for c in result.callbacks] == ["completed"]


def test_a_whole_recorded_call_files_its_recording(app: Flask, bind: Callable[..., Any]) -> None:
    view = bind("axb", record=True)
    result = simulator(app).play_call(from_number=MERCHANT, to_number=view.relay_number, duration=9)

    assert [(c.kind, c.http_status) for c in result.callbacks][-1] == ("recording", 200)
    with services_of(app).db.session() as session:
        assert [r.duration for r in recordings_of(session, view.id)] == [9]


def test_a_whole_message_reports_sent_then_delivered(app: Flask, bind: Callable[..., Any]) -> None:
    view = bind("axb")
    result = simulator(app).play_sms(from_number=BUYER, to_number=view.relay_number, body="at the door")

    assert result.outcome == "forwarded"
    assert [(c.status, c.http_status) for c in result.callbacks] == [("sent", 200), ("delivered", 200)]
    assert [(kind, status) for kind, status, _ in _interactions(app, view.id)] == [("sms", "delivered")]
    assert "actions" not in result.to_json() and MERCHANT not in str(result.to_json())
