"""Alerts raised by real traffic: signed Twilio webhooks and /v1 binds, then the
alerts, the outbox, what the receiver got and all of Redis searched for numbers."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable

import pytest
from flask import Flask
from sqlalchemy import select

from maskline import services_of
from maskline.api.models import OutboxEvent
from maskline.audit.alerts import caller_subject
from maskline.audit.models import Alert
from maskline.numbers.interfaces import BindingView, BindRequest
from tests.integration.api_helpers import ApiClient, make_key
from tests.integration.conftest import BUYER, COURIER, MERCHANT, STRANGER, AppMaker, Twilio, sid
from tests.receiver import receiving

OTHER_BUYERS = ("+14155550137", "+14155550138", "+14155550139")
OTHER_MERCHANTS = ("+12125550148", "+12125550149", "+12125550150")
PARTIES = (BUYER, MERCHANT, COURIER, STRANGER, *OTHER_BUYERS, *OTHER_MERCHANTS)


def alerts(app: Flask) -> list[tuple[str, str, int]]:
    """(kind, subject, count) of every alert, once the app's queue is drained."""
    services = services_of(app)
    services.alerts.drain()
    with services.db.session() as session:
        rows = session.scalars(select(Alert).order_by(Alert.kind, Alert.subject))
        return [(r.kind, r.subject, r.count) for r in rows]


def fingerprint(app: Flask, number: str) -> str:
    subject = caller_subject(services_of(app).numbers.router.caller_index(number))
    assert subject is not None and re.fullmatch(r"caller:[0-9a-f]{12}", subject)
    return subject


def call(twilio: Twilio, caller: str, relay: str, call_sid: str) -> None:
    twilio.call(caller, relay, call_sid)


def text(twilio: Twilio, caller: str, relay: str, message_sid: str) -> None:
    twilio.sms(caller, relay, "hello", message_sid=message_sid)


@pytest.mark.parametrize(("contact", "prefix"), [(call, "CA"), (text, "SM")])
def test_strangers_to_a_relay_number_and_from_a_caller_fire_above_the_limit(
    make_app: AppMaker, bind: Callable[..., BindingView], contact: Callable[..., None], prefix: str
) -> None:
    app = make_app(alert_strangers_per_hour=2)
    twilio, view = Twilio(app), bind()
    for _ in range(2):
        contact(twilio, STRANGER, view.relay_number, sid(prefix))
    assert alerts(app) == []
    third = sid(prefix)
    contact(twilio, STRANGER, view.relay_number, third)
    contact(
        twilio, STRANGER, view.relay_number, third
    )  # Twilio's retry: the same decision, not counted again
    assert alerts(app) == [
        ("stranger_calls", fingerprint(app, STRANGER), 3),
        ("stranger_calls", f"relay:{view.relay_number}", 3),
    ]


def test_parties_calling_each_other_are_no_strangers(
    make_app: AppMaker, bind: Callable[..., BindingView]
) -> None:
    app = make_app(alert_strangers_per_hour=1, alert_distinct_buyers_per_hour=1)
    twilio, view = Twilio(app), bind()
    for _ in range(3):
        assert twilio.call(MERCHANT, view.relay_number).dialed == (view.relay_number, BUYER)
        assert twilio.call(BUYER, view.relay_number).dialed == (view.relay_number, MERCHANT)
        twilio.sms(MERCHANT, view.relay_number, "on my way")
    assert alerts(app) == []  # and one buyer, however often, is one distinct buyer


def test_wrong_extensions_on_a_relay_number_and_by_a_caller_fire_above_the_limit(
    make_app: AppMaker, bind: Callable[..., BindingView]
) -> None:
    app = make_app(alert_wrong_extensions_per_hour=2, extension_max_failures=50)
    twilio, view = Twilio(app), bind("axe")
    wrong = "0000" if view.extension != "0000" else "1111"
    for _ in range(2):
        twilio.key(COURIER, view.relay_number, wrong, call_sid=sid())
    assert alerts(app) == []
    assert twilio.key(COURIER, view.relay_number, view.extension or "", call_sid=sid()).dialed is not None
    assert alerts(app) == []  # the right extension is no wrong one
    twilio.key(COURIER, view.relay_number, wrong, call_sid=sid())
    assert alerts(app) == [
        ("wrong_extensions", fingerprint(app, COURIER), 3),
        ("wrong_extensions", f"relay:{view.relay_number}", 3),
    ]


def test_a_caller_reaching_many_distinct_buyers_fires_above_the_limit(make_app: AppMaker) -> None:
    app = make_app(alert_distinct_buyers_per_hour=2)
    twilio = Twilio(app)
    views = [
        services_of(app).numbers.bindings.bind(
            BindRequest(order_id=f"o-{n}", mode="axe", parties={"buyer": buyer}, allow=[COURIER])
        )
        for n, buyer in enumerate((BUYER, *OTHER_BUYERS[:2]))
    ]

    def courier_calls(view: BindingView, expected: str) -> None:
        call_sid = sid()
        twilio.call(COURIER, view.relay_number, call_sid)
        answer = twilio.key(COURIER, view.relay_number, view.extension or "", call_sid=call_sid)
        assert answer.dialed == (view.relay_number, expected)

    for _ in range(3):
        courier_calls(views[0], BUYER)
    courier_calls(views[1], OTHER_BUYERS[0])
    assert alerts(app) == []
    courier_calls(views[2], OTHER_BUYERS[1])
    assert alerts(app) == [("distinct_buyers", fingerprint(app, COURIER), 3)]


def test_an_api_keys_binding_burst_fires_above_the_limit(make_app: AppMaker) -> None:
    app = make_app(alert_bindings_per_minute=2, alert_key_distinct_buyers_per_hour=2)
    key = make_key(app, "shop-a")
    api = ApiClient(app, key)
    key_id = key.split("_")[1]
    buyers, merchants = (BUYER, *OTHER_BUYERS), (MERCHANT, *OTHER_MERCHANTS)
    for n in range(2):
        body = {
            "order_id": f"o-{n}",
            "mode": "axb",
            "parties": {"buyer": buyers[n], "merchant": merchants[n]},
        }
        assert api.post("/v1/bindings", body).status == 201
    assert alerts(app) == []
    body = {"order_id": "o-2", "mode": "axb", "parties": {"buyer": buyers[2], "merchant": merchants[2]}}
    assert api.post("/v1/bindings", body).status == 201
    assert alerts(app) == [
        ("binding_burst", f"apikey:{key_id}", 3),
        ("distinct_buyers", f"apikey:{key_id}", 3),
    ]


# -- no number anywhere -------------------------------------------------------------


def written_forms(e164: str) -> set[str]:
    """How a US number may be written: E.164, digits, national with separators."""
    national = e164[2:]
    area, exchange, line = national[:3], national[3:6], national[6:]
    return {
        e164,
        e164[1:],
        national,
        f"({area}) {exchange}-{line}",
        f"{area}-{exchange}-{line}",
        f"{area} {exchange} {line}",
        f"{area}.{exchange}.{line}",
        f"{exchange}-{line}",
        f"{exchange}{line}",
    }


def leaks(name: str, blob: bytes) -> list[str]:
    texts = [blob, blob.decode("latin-1").encode("utf-8")]
    found = []
    for number in PARTIES:
        for form in written_forms(number):
            variants = {form.encode(), form.encode().hex().encode(), form.encode("utf-16-le")}
            if any(v in t for v in variants for t in texts):
                found.append(f"{form!r} in {name}")
    return found


def test_the_search_finds_a_planted_number() -> None:
    assert leaks("planted", b"subject=relay:+" + BUYER[1:].encode())
    assert leaks("planted", json.dumps({"x": "555-0132"}).encode())


def test_no_party_number_in_alerts_outbox_deliveries_or_redis(
    make_app: AppMaker, bind: Callable[..., BindingView]
) -> None:
    with receiving() as receiver:
        app = make_app(
            alert_strangers_per_hour=1,
            alert_wrong_extensions_per_hour=1,
            alert_distinct_buyers_per_hour=1,
            alert_key_distinct_buyers_per_hour=1,
            alert_failed_logins_per_hour=1,
            working_days=frozenset({5}),  # Saturdays only: every reveal here is off hours
            alerts_url=receiver.url("/alerts"),
            alerts_secret="alerts-secret",
            extension_max_failures=50,
        )
        services = services_of(app)
        twilio = Twilio(app)
        axb = bind()
        for _ in range(2):  # before any extension is on the number: then strangers are asked for one
            twilio.call(STRANGER, axb.relay_number)
            twilio.sms(STRANGER, axb.relay_number, f"call me on {STRANGER}")
        axe = bind("axe", order_id="o-2")
        second = services.numbers.bindings.bind(
            BindRequest(order_id="o-3", mode="axe", parties={"buyer": OTHER_BUYERS[0]}, allow=[COURIER])
        )
        for _ in range(2):
            twilio.key(
                COURIER, axe.relay_number, "0000" if axe.extension != "0000" else "1111", call_sid=sid()
            )
        for view in (axe, second):
            call_sid = sid()
            twilio.call(COURIER, view.relay_number, call_sid)
            assert twilio.key(COURIER, view.relay_number, view.extension or "", call_sid=call_sid).dialed
        twilio.call(MERCHANT, axb.relay_number)
        at = services.clock()
        for _ in range(2):
            services.alerts.failed_login(account=BUYER, at=at)  # a number typed as the account name
        services.alerts.reveal_viewed(admin="alice", request_id=STRANGER[2:], at=at)
        services.alerts.reveal_requested(admin=BUYER, request_id=STRANGER[2:], at=at)
        kinds = {kind for kind, _subject, _count in alerts(app)}
        assert kinds == {
            "stranger_calls",
            "wrong_extensions",
            "distinct_buyers",
            "failed_logins",
            "off_hours_reveal",
            "reveal_requested",
        }
        report = services.events.deliverer.deliver_due(at + dt.timedelta(seconds=1))
        assert report.delivered >= len(kinds)
    found: list[str] = []
    with services.db.session() as session:
        for alert in session.scalars(select(Alert)):
            row = [alert.alert_id, alert.kind, alert.subject, alert.detail, alert.acknowledged_by]
            found += leaks(f"alert {alert.kind}", repr(row).encode())
        for event in session.scalars(select(OutboxEvent)):
            found += leaks(f"outbox {event.type}", event.payload.encode())
    for request in receiver.received:
        found += leaks(f"delivery to {request.path}", request.body)
    client = services.redis  # the app's: the test Redis database, or its in-process one
    keys = list(client.scan_iter("*"))
    assert any(k.startswith(b"ml:alert:") for k in keys)
    for key in keys:
        found += leaks(f"redis key {key!r}", key)
        found += leaks(f"redis value of {key!r}", client.dump(key) or b"")
    assert found == []


def test_forged_requests_raise_no_alert(make_app: AppMaker, bind: Callable[..., BindingView]) -> None:
    app = make_app(alert_strangers_per_hour=1)
    twilio, view = Twilio(app), bind()
    for _ in range(3):
        forged = twilio.post(
            "/webhooks/twilio/voice",
            {"CallSid": sid(), "From": STRANGER, "To": view.relay_number},
            signature="forged",
        )
        assert forged.status == 403
    assert alerts(app) == []
    # Nor a refusal tally (the over-HTTP tests cannot drain the queue to see it).
    assert list(services_of(app).redis.scan_iter(match="ml:tally:*")) == []
