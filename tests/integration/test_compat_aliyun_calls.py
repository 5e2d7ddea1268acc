"""Dyplsapi's QueryCallStatus for calls under way and ended: a call just
connected is answered from the connect path's Redis record, before any
status callback reaches SQL. Alibaba's SDK signs every request."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from alibabacloud_dyplsapi20170525 import models as pls
from flask import Flask

from config import Settings, with_overrides
from maskline import create_app, services_of
from maskline.clock import FixedClock
from maskline.wiring import Services
from tests.aliyun_helpers import sdk, signed_post
from tests.conftest import add_relay_numbers
from tests.integration.conftest import AUTH_TOKEN, Twilio
from tests.integration.test_compat_aliyun import _expiry, _issue, _serve

X = "+8613911110001"
A, B = "13800138000", "13900139000"


@dataclass
class Face:
    app: Flask
    endpoint: str
    clock: FixedClock
    services: Services
    key_id: str
    secret: str

    def bind(self) -> str:
        request = pls.BindAxbRequest(
            pool_key="CN", phone_no_a=A, phone_no_b=B, expiration=_expiry(self.clock), out_order_id="o-1"
        )
        body = sdk(self.endpoint, self.key_id, self.secret).bind_axb(request).body
        assert body.code == "OK", body.message
        return str(body.secret_bind_dto.subs_id)

    def status(self, subs_id: str, nonce: str) -> dict[str, Any]:
        query = {"PoolKey": "CN", "SubsId": subs_id, "PhoneNoX": "13911110001"}
        code, body = signed_post(
            self.endpoint, self.key_id, self.secret, "QueryCallStatus", query, nonce=nonce
        )
        assert (code, body["Code"]) == (200, "OK")
        return dict(body["SecretCallStatusDTO"])


@pytest.fixture
def face(services: Services, redis_client: Any, settings: Settings) -> Iterator[Face]:
    clock = FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    app = create_app(with_overrides(settings, twilio_auth_token=AUTH_TOKEN), clock=clock)
    built = services_of(app)
    add_relay_numbers(built, X)
    mine = _issue(built, "shop-1", ["bindings:write", "bindings:read"])
    with _serve(app) as endpoint:
        yield Face(app, endpoint, clock, built, mine["access_key_id"], mine["access_key_secret"])
    built.close()


def test_a_call_just_connected_has_a_status_before_any_callback(face: Face) -> None:
    """Alibaba's QueryCallStatus answers a call's state while it is under way
    (the issue's scenario: right after the call, not OK with a null Status).
    maskline's words: ``in-progress`` while only the connect is known, then
    Twilio's final status; CalledNo masked (one ``*`` per national digit)."""
    subs_id = face.bind()
    assert face.status(subs_id, "call-status-none") == {"Status": None, "CalledNo": None}
    twilio = Twilio(face.app)
    call_sid = "CA" + "1" * 32
    assert twilio.call("+86" + A, X, call_sid=call_sid).status == 200

    assert face.status(subs_id, "call-status-live") == {"Status": "in-progress", "CalledNo": "*" * 11}
    twilio.call_status(call_sid, "busy")
    assert face.status(subs_id, "call-status-ended") == {"Status": "busy", "CalledNo": "*" * 11}


def test_a_refused_call_leaves_the_status_alone(face: Face) -> None:
    subs_id = face.bind()
    Twilio(face.app).call("+8613700137000", X, call_sid="CA" + "2" * 32)  # no party of the binding
    assert face.status(subs_id, "call-status-refused") == {"Status": None, "CalledNo": None}
