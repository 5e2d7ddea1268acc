"""The Dyplsapi face with mainland numbers in Alibaba's own forms (the
deployment's default region left at US), and the number actions: BindAxn,
QuerySubsId, QuerySecretNoRemain, BuySecretNo, ReleaseSecretNo, and the
answer to an action maskline does not offer. Alibaba's SDK, unmodified."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from alibabacloud_dyplsapi20170525 import models as pls
from alibabacloud_dyplsapi20170525.client import Client
from sqlalchemy import select

from config import Settings
from maskline import create_app, services_of
from maskline.audit.models import AuditRecord
from maskline.clock import FixedClock
from maskline.compat.aliyun.models import AliyunPoolNumber
from maskline.numbers.models import Binding
from maskline.wiring import Services
from tests.aliyun_helpers import sdk, signed_post
from tests.conftest import add_relay_numbers
from tests.integration.test_compat_aliyun import _expiry, _issue, _serve

# Relay numbers: two mainland mobiles and a Beijing landline.
X1, X2, BJ = "+8613911110001", "+8613911110002", "+861058000001"
# Parties as Alibaba's clients send them: 11-digit mobiles, a landline with its area code.
A, B, LANDLINE = "13800138000", "13900139000", "01062345678"
POOL = "FC100000099"


@dataclass
class Face:
    endpoint: str
    clock: FixedClock
    services: Services
    key_id: str
    secret: str

    def client(self) -> Client:
        return sdk(self.endpoint, self.key_id, self.secret)

    def pool(self, *numbers: str, pool_key: str = POOL) -> None:
        with self.services.db.session() as session:
            for e164 in numbers:
                session.add(
                    AliyunPoolNumber(owner="shop-1", pool_key=pool_key, e164=e164, added_at=self.clock())
                )

    def bind_axb(self, a: str = A, b: str = B, **extra: Any) -> Any:
        request = pls.BindAxbRequest(
            pool_key=POOL, phone_no_a=a, phone_no_b=b, expiration=_expiry(self.clock), out_order_id="o-1"
        )
        for name, value in extra.items():
            setattr(request, name, value)
        return self.client().bind_axb(request).body

    def pool_numbers(self) -> list[str]:
        with self.services.db.session() as session:
            return sorted(session.scalars(select(AliyunPoolNumber.e164)))


@pytest.fixture
def face(services: Services, redis_client: Any, settings: Settings) -> Iterator[Face]:
    assert settings.default_region != "CN"  # the face reads mainland forms whatever it is
    clock = FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    app = create_app(settings, clock=clock)
    built = services_of(app)
    add_relay_numbers(built, X1, X2, BJ)
    mine = _issue(built, "shop-1", ["bindings:write", "bindings:read"])
    with _serve(app) as endpoint:
        yield Face(endpoint, clock, built, mine["access_key_id"], mine["access_key_secret"])
    built.close()


def test_mainland_forms_in_and_out(face: Face) -> None:
    face.pool(X1, X2)
    body = face.bind_axb(b=LANDLINE, phone_no_x="13911110002")
    assert (body.code, body.secret_bind_dto.secret_no) == ("OK", "13911110002"), body.message
    subs_id = body.secret_bind_dto.subs_id
    detail = (
        face.client()
        .query_subscription_detail(
            pls.QuerySubscriptionDetailRequest(pool_key=POOL, subs_id=subs_id, phone_no_x="13911110002")
        )
        .body
    )
    dto = detail.secret_bind_detail_dto
    assert (detail.code, dto.phone_no_x) == ("OK", "13911110002")
    # Masked, in the national form they were sent in: no digit of a party.
    assert (dto.phone_no_a, dto.phone_no_b) == ("*" * 11, "*" * 11)
    with face.services.db.session() as session:
        binding = session.get(Binding, subs_id)
        assert binding is not None and binding.relay_number == X2


def test_query_subs_id_lists_the_live_subscriptions_on_x(face: Face) -> None:
    face.pool(X1)
    subs_id = face.bind_axb().secret_bind_dto.subs_id
    query = face.client().query_subs_id(pls.QuerySubsIdRequest(pool_key=POOL, phone_no_x="13911110001")).body
    assert (query.code, query.subs_id) == ("OK", subs_id)
    other = face.client().query_subs_id(pls.QuerySubsIdRequest(pool_key=POOL, phone_no_x="13911110002")).body
    assert (other.code, other.subs_id) == ("OK", "")


def test_an_unknown_pool_key_is_poolkey_not_exists(face: Face) -> None:
    """``isv.POOLKEY_NOT_EXISTS``, with the S: the spelling of Alibaba's API error
    code list (help.aliyun.com document 109196, 号池不存在)."""
    query = face.client().query_subs_id(pls.QuerySubsIdRequest(pool_key="FC-none", phone_no_x=X1)).body
    assert query.code == "isv.POOLKEY_NOT_EXISTS"
    assert face.bind_axb().code == "isv.POOLKEY_NOT_EXISTS"  # POOL has no numbers yet


def test_bind_axn_with_and_without_b(face: Face) -> None:
    face.pool(X1, X2)
    request = pls.BindAxnRequest(
        pool_key=POOL, phone_no_a=A, phone_no_b=B, expiration=_expiry(face.clock), out_order_id="o-2"
    )
    with_b = face.client().bind_axn(request).body
    assert with_b.code == "OK" and with_b.secret_bind_dto.secret_no in ("13911110001", "13911110002")
    request.phone_no_b, request.out_order_id = None, "o-3"
    without_b = face.client().bind_axn(request).body
    assert without_b.code == "OK" and (without_b.secret_bind_dto.extension or "").isdigit()
    with face.services.db.session() as session:
        modes = {b.order_id: b.mode for b in session.scalars(select(Binding))}
    assert modes == {"o-2": "axb", "o-3": "axe"}


def test_remain_buy_and_release_move_numbers_in_and_out_of_the_pool_key(face: Face) -> None:
    client = face.client()
    remain = client.query_secret_no_remain(pls.QuerySecretNoRemainRequest(spec_id=1)).body
    assert (remain.code, remain.secret_remain_dto.amount) == ("OK", 3)
    in_beijing = client.query_secret_no_remain(pls.QuerySecretNoRemainRequest(spec_id=1, city="北京")).body
    assert in_beijing.secret_remain_dto.amount == 3  # the geocoder places all three in Beijing
    prefixed = client.query_secret_no_remain(pls.QuerySecretNoRemainRequest(spec_id=1, secret_no="010")).body
    assert prefixed.secret_remain_dto.amount == 1
    bought = client.buy_secret_no(
        pls.BuySecretNoRequest(pool_key=POOL, spec_id=1, city="北京", secret_no="010")
    ).body
    assert (bought.code, bought.secret_buy_info_dto.secret_no) == ("OK", "01058000001")
    assert face.pool_numbers() == [BJ]
    # The PoolKey exists now, and binds draw from its number only.
    assert face.bind_axb().secret_bind_dto.secret_no == "01058000001"
    released = client.release_secret_no(
        pls.ReleaseSecretNoRequest(pool_key=POOL, secret_no="01058000001")
    ).body
    assert released.code == "OK" and face.pool_numbers() == []
    again = client.release_secret_no(pls.ReleaseSecretNoRequest(pool_key=POOL, secret_no="01058000001")).body
    assert again.code == "isv.POOLKEY_NOT_EXISTS"  # its last number gone, the PoolKey is too
    with face.services.db.session() as session:
        actions = session.scalars(select(AuditRecord.action).where(AuditRecord.subject == POOL)).all()
    assert list(actions) == ["aliyun.pool.added", "aliyun.pool.removed"]


def test_buying_with_no_free_number_there_is_no_available_number(face: Face) -> None:
    body = face.client().buy_secret_no(pls.BuySecretNoRequest(pool_key=POOL, spec_id=1, city="上海")).body
    assert body.code == "isv.NO_AVAILABLE_NUMBER" and face.pool_numbers() == []


def test_an_action_not_offered_is_forbidden_not_unknown(face: Face) -> None:
    body = face.client().lock_secret_no(pls.LockSecretNoRequest(pool_key=POOL, secret_no="13911110001")).body
    assert (body.code, body.message.startswith("LockSecretNo is not open")) == ("isv.FORBIDDEN_ACTION", True)
    status, unknown = signed_post(face.endpoint, face.key_id, face.secret, "NoSuchAction", {})
    assert (status, unknown["Code"]) == (404, "InvalidAction.NotFound")


def test_a_track_no_gives_the_courier_x_and_extension_never_a(face: Face) -> None:
    face.pool(X1)
    client = face.client()
    bound = client.bind_axn_extension(
        pls.BindAxnExtensionRequest(
            pool_key=POOL, phone_no_a=A, expiration=_expiry(face.clock), out_order_id="o-4"
        )
    ).body
    dto = bound.secret_bind_dto
    added = client.add_axn_track_no(
        pls.AddAxnTrackNoRequest(
            pool_key=POOL, subs_id=dto.subs_id, phone_no_x=dto.secret_no, track_no="SF1234567"
        )
    ).body
    assert added.code == "OK", added.message
    found = client.query_phone_no_aby_track_no(
        pls.QueryPhoneNoAByTrackNoRequest(phone_no_x=dto.secret_no, track_no="SF1234567")
    ).body
    assert found.code == "OK"
    [module] = found.module
    assert (module.phone_no_x, module.extension, module.phone_no_a) == (
        "13911110001",
        dto.extension,
        "*" * 11,
    )
    unknown = client.query_phone_no_aby_track_no(pls.QueryPhoneNoAByTrackNoRequest(track_no="SF0000000")).body
    assert unknown.code == "isv.NO_NOT_EXIST"
    axb = face.bind_axb(a="13600136000", b="13500135000")
    refused = client.add_axn_track_no(
        pls.AddAxnTrackNoRequest(pool_key=POOL, subs_id=axb.secret_bind_dto.subs_id, track_no="SF7654321")
    ).body
    assert (refused.code, refused.message.startswith("SubsId:")) == ("isv.INVALID_PARAMETERS", True)
