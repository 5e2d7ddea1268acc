"""SecretReport call receipts of the Dyplsapi face: bound with Alibaba's SDK,
called through the carrier simulator, pushed by the outbox's deliverer to a
real HTTP receiver on loopback; on the test PostgreSQL and Redis."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from alibabacloud_dyplsapi20170525 import models as pls
from sqlalchemy import select

from config import Settings, SettingsError, load_settings, with_overrides
from maskline import create_app, services_of
from maskline.api.models import OutboxEvent
from maskline.clock import FixedClock
from maskline.compat.aliyun.interfaces import REPORT_OWNER
from maskline.compat.aliyun.models import AliyunSubscription
from maskline.events.interfaces import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from maskline.numbers.interfaces import BindRequest
from maskline.sim.carrier import CarrierSimulator, FlaskTransport
from maskline.wiring import Services
from tests.aliyun_helpers import sdk
from tests.conftest import add_relay_numbers
from tests.integration.test_compat_aliyun import _expiry, _issue, _serve
from tests.receiver import Receiver, receiving

X1, X2 = "+14155550100", "+14155550101"
A, B, COURIER = "+14155550132", "+12125550143", "+13125550154"
PARTIES = (A, B, COURIER)
SECRET = "receipt-signing-secret"
AUTH_TOKEN = "test-twilio-auth-token"
BEIJING = dt.timezone(dt.timedelta(hours=8))


@dataclass
class Reporting:
    endpoint: str
    clock: FixedClock
    services: Services
    carrier: CarrierSimulator
    receiver: Receiver
    key_id: str
    secret: str

    def client(self) -> Any:
        return sdk(self.endpoint, self.key_id, self.secret)

    def bind_axb(self, order: str = "o-1") -> Any:
        request = pls.BindAxbRequest(
            pool_key="US", phone_no_a=A, phone_no_b=B, expiration=_expiry(self.clock), out_order_id=order
        )
        body = self.client().bind_axb(request).body
        assert body.code == "OK"
        return body.secret_bind_dto

    def deliver(self) -> Any:
        return self.services.events.deliverer.deliver_due(self.clock())

    def receipts(self) -> list[OutboxEvent]:
        with self.services.db.session() as session:
            return list(session.scalars(select(OutboxEvent).where(OutboxEvent.owner == REPORT_OWNER)))


@pytest.fixture
def reporting(services: Services, redis_client: Any, settings: Settings) -> Iterator[Reporting]:
    clock = FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    with receiving() as receiver:
        configured = with_overrides(
            settings,
            twilio_auth_token=AUTH_TOKEN,
            aliyun_report_url=receiver.url("/secret-report"),
            aliyun_report_secret=SECRET,
        )
        app = create_app(configured, clock=clock)
        built = services_of(app)
        add_relay_numbers(built, X1, X2)
        issued = _issue(built, "shop-1", ["bindings:write", "bindings:read"])
        carrier = CarrierSimulator(
            transport=FlaskTransport(app), auth_token=AUTH_TOKEN, public_url="http://localhost"
        )
        with _serve(app) as endpoint:
            yield Reporting(
                endpoint,
                clock,
                built,
                carrier,
                receiver,
                issued["access_key_id"],
                issued["access_key_secret"],
            )
        built.close()


def _call(reporting: Reporting, caller: str, x: str, *, seconds: int, digits: list[str] | None = None) -> str:
    call = reporting.carrier.call(from_number=caller, to_number=x, digits=digits)
    assert call.outcome == "connected"
    reporting.clock.advance(seconds=seconds)
    status = reporting.carrier.call_status(
        call_sid=call.call_sid, from_number=caller, to_number=x, status="completed", duration=seconds
    )
    assert status == 200
    return call.call_sid


def _beijing(when: dt.datetime) -> str:
    return when.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def _no_party_digits(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return not any(n[2:] in digits for n in PARTIES)


def test_a_call_on_a_subscription_pushes_one_signed_receipt_in_alibaba_s_shape(
    reporting: Reporting,
) -> None:
    dto = reporting.bind_axb()
    started = reporting.clock()
    call_sid = _call(reporting, A, dto.secret_no, seconds=42)
    report = reporting.deliver()
    assert (report.delivered, report.retried, report.failed) == (1, 0, 0)

    [received] = reporting.receiver.received
    assert received.path == "/secret-report"
    assert received.headers["Content-Type"] == "application/json"
    timestamp = received.headers[TIMESTAMP_HEADER]
    assert verify(SECRET, timestamp, received.body, received.headers[SIGNATURE_HEADER])
    assert json.loads(received.body) == [
        {
            "pool_key": "US",
            "sub_id": dto.subs_id,
            "call_id": call_sid,
            "out_id": "o-1",
            "phone_no": "+1**********",
            "secret_no": dto.secret_no,
            "peer_no": "+1**********",
            "called_display_no": dto.secret_no,
            "call_type": 0,
            "call_time": _beijing(started),
            "call_out_time": _beijing(started),
            "ring_time": _beijing(started),
            "free_ring_time": _beijing(started),
            "start_time": _beijing(started),
            "release_time": _beijing(started + dt.timedelta(seconds=42)),
            "release_dir": 0,
            "release_cause": 16,
        }
    ]
    assert _no_party_digits(received.body.decode())


def test_b_calling_a_is_call_type_1(reporting: Reporting) -> None:
    dto = reporting.bind_axb()
    _call(reporting, B, dto.secret_no, seconds=5)
    reporting.deliver()
    [record] = json.loads(reporting.receiver.received[0].body)
    assert (record["call_type"], record["phone_no"], record["peer_no"]) == (1, "+1**********", "+1**********")


def test_an_extension_call_names_the_courier_masked(reporting: Reporting) -> None:
    request = pls.BindAxnExtensionRequest(
        pool_key="US", phone_no_a=A, phone_no_b=COURIER, expiration=_expiry(reporting.clock), out_id="o-2"
    )
    dto = reporting.client().bind_axn_extension(request).body.secret_bind_dto
    _call(reporting, COURIER, dto.secret_no, seconds=7, digits=[dto.extension])
    reporting.deliver()
    [record] = json.loads(reporting.receiver.received[0].body)
    assert (record["out_id"], record["call_type"], record["peer_no"]) == ("o-2", 1, "+1**********")


def test_a_receiver_that_fails_gets_the_same_receipt_on_a_later_run(reporting: Reporting) -> None:
    reporting.receiver.answers = [503]
    dto = reporting.bind_axb()
    _call(reporting, A, dto.secret_no, seconds=3)
    first = reporting.deliver()
    assert (first.delivered, first.retried) == (0, 1)
    assert reporting.deliver().delivered == 0  # not due yet: backing off
    reporting.clock.advance(seconds=60)
    assert reporting.deliver().delivered == 1
    failed, retried = reporting.receiver.received
    assert failed.body == retried.body
    assert failed.headers["Maskline-Event-Id"] == retried.headers["Maskline-Event-Id"]
    [row] = reporting.receipts()
    assert (row.status, row.attempts) == ("delivered", 2)


def test_bindings_made_elsewhere_and_messages_get_no_receipt(reporting: Reporting) -> None:
    view = reporting.services.numbers.bindings.bind(
        BindRequest(order_id="o-9", mode="axb", parties={"a": A, "b": B}, owner="shop-1")
    )
    _call(reporting, A, view.relay_number, seconds=4)
    dto = reporting.bind_axb()
    reporting.carrier.sms(from_number=A, to_number=dto.secret_no, body="at the door")
    assert reporting.receipts() == []
    with reporting.services.db.session() as session:
        marked = session.scalars(select(AliyunSubscription.binding_id)).all()
    assert marked == [dto.subs_id]


def test_the_outbox_holds_the_receipt_masked(reporting: Reporting) -> None:
    dto = reporting.bind_axb()
    _call(reporting, B, dto.secret_no, seconds=9)
    [row] = reporting.receipts()
    assert dto.subs_id in row.payload and _no_party_digits(row.payload)


def test_a_report_url_needs_its_secret() -> None:
    with pytest.raises(SettingsError, match="MASKLINE_ALIYUN_REPORT_SECRET"):
        load_settings({"env": "testing"}, environ={"MASKLINE_ALIYUN_REPORT_URL": "https://r.example.com/x"})


def test_a_report_url_alone_does_not_send_alerts_there(reporting: Reporting) -> None:
    # Alerts go through the outbox only with their own URL: the report's is not theirs.
    assert reporting.services.alerts.outbox is None
    assert set(reporting.services.events.deliverer.reserved) == {REPORT_OWNER}
