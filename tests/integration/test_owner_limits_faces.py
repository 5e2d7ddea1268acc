"""An owner at its cap of live bindings, as each compat face's own SDK sees it:
Alibaba's ``isv.FLOW_LIMIT`` (HTTP 200, its business-code shape) and
Twilio's 429 / 20429, each naming owner_limit_reached and no party number."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from alibabacloud_dyplsapi20170525 import models as pls
from twilio.base.exceptions import TwilioRestException

from config import Settings, with_overrides
from maskline import create_app, services_of
from maskline.clock import FixedClock
from maskline.compat.aliyun.credentials import create_credentials
from tests.aliyun_helpers import sdk
from tests.compat_twilio_helpers import app_serving, credentials
from tests.conftest import add_relay_numbers
from tests.integration.conftest import AppMaker

X1, X2, X3 = "+14155550100", "+14155550101", "+14155550102"
A, B, C = "+14155550132", "+12125550143", "+13125550154"
BJ1, BJ2 = "+861058000001", "+861058000002"  # Beijing landlines: numbers BuySecretNo can sell


def _expiry(clock: FixedClock) -> str:
    return (
        (clock() + dt.timedelta(hours=24))
        .astimezone(dt.timezone(dt.timedelta(hours=8)))
        .strftime("%Y-%m-%d %H:%M:%S")
    )


@pytest.fixture
def aliyun(services: Any, redis_client: Any, settings: Settings) -> Iterator[tuple[Any, FixedClock]]:
    # The SDK stamps requests with the real time: the server's clock starts there.
    clock = FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    app = create_app(with_overrides(settings, owner_max_live_bindings=1), clock=clock)
    built = services_of(app)
    add_relay_numbers(built, X1, X2, X3, BJ1, BJ2)
    issued = create_credentials(
        built, name="orders", owner="shop-1", scopes=["bindings:write", "bindings:read"], actor="cli:test"
    )
    with app_serving(app) as url:
        endpoint = url.removeprefix("http://")
        yield sdk(endpoint, issued["access_key_id"], issued["access_key_secret"]), clock
    built.close()


def test_the_aliyun_face_answers_flow_limit_at_the_cap(aliyun: tuple[Any, FixedClock]) -> None:
    client, clock = aliyun

    def bind(b: str) -> Any:
        request = pls.BindAxbRequest(
            pool_key="US", phone_no_a=A, phone_no_b=b, expiration=_expiry(clock), out_order_id="o-1"
        )
        return client.bind_axb(request).body

    assert bind(B).code == "OK"
    refused = bind(C)

    assert refused.code == "isv.FLOW_LIMIT"
    assert "owner_limit_reached" in refused.message and "cap of 1 live bindings" in refused.message
    assert "3125550154" not in refused.message and "4155550132" not in refused.message


def test_a_bought_number_counts_against_the_cap(aliyun: tuple[Any, FixedClock]) -> None:
    client, clock = aliyun

    def buy() -> Any:
        return client.buy_secret_no(pls.BuySecretNoRequest(pool_key="P1", spec_id=1, city="北京")).body

    first = buy()
    refused = buy()  # one held number: the cap of 1 is reached
    bind = client.bind_axb(
        pls.BindAxbRequest(
            pool_key="US", phone_no_a=A, phone_no_b=B, expiration=_expiry(clock), out_order_id="o-2"
        )
    ).body
    released = client.release_secret_no(
        pls.ReleaseSecretNoRequest(pool_key="P1", secret_no=first.secret_buy_info_dto.secret_no)
    ).body
    after = buy()

    assert (
        first.code == "OK" and refused.code == "isv.FLOW_LIMIT" and "owner_limit_reached" in refused.message
    )
    assert bind.code == "isv.FLOW_LIMIT"
    assert released.code == "OK" and after.code == "OK"


def test_the_twilio_face_answers_429_at_the_cap(make_app: AppMaker) -> None:
    app = make_app(owner_max_live_bindings=1)
    add_relay_numbers(services_of(app), X3)
    with app_serving(app) as url:
        client = credentials(app, "shop-a").client(url)
        service = client.proxy.v1.services.create(unique_name="orders")
        for number in (X1, X2, X3):
            client.proxy.v1.services(service.sid).phone_numbers.create(phone_number=number)
        sessions = client.proxy.v1.services(service.sid).sessions

        first = sessions.create()
        sessions(first.sid).participants.create(identifier=A)
        sessions(first.sid).participants.create(identifier=B)
        second = sessions.create()
        sessions(second.sid).participants.create(identifier=A)
        with pytest.raises(TwilioRestException) as caught:
            sessions(second.sid).participants.create(identifier=C)

    error = caught.value
    assert (error.status, error.code) == (429, 20429)
    assert "owner_limit_reached" in error.msg and "3125550154" not in error.msg
