"""Alibaba's number-protection quickstart, moved to maskline: the AXB
integration as Alibaba's SDK samples write it (``bind_axb_with_options``
with ``RuntimeOptions``, 11-digit mainland numbers, a PoolKey), with only the
endpoint and AccessKey changed. Bind, let A and B call through X (signed
webhooks from the carrier simulator), replace B and extend, query, unbind."""

from __future__ import annotations

from alibabacloud_dyplsapi20170525 import models as pls
from alibabacloud_tea_util import models as util_models

from tests.integration.test_compat_aliyun import _expiry
from tests.integration.test_compat_aliyun_pools import BEIJING, Face, face  # noqa: F401 (fixture)

POOL_KEY = "FC100000012345678"
A, B, NEW_B = "13800138000", "13900139000", "13700137000"


def _e164(national: str) -> str:
    return "+86" + national.removeprefix("0")


def test_the_axb_quickstart_runs_unchanged(face: Face) -> None:  # noqa: F811
    face.pool(POOL_KEY, BEIJING)
    client, runtime = face.client(), util_models.RuntimeOptions()

    # Bind A and B; the answer's SecretNo is X in Alibaba's national form.
    bind = pls.BindAxbRequest(
        pool_key=POOL_KEY, phone_no_a=A, phone_no_b=B, expiration=_expiry(face.clock), out_id="order-1"
    )
    bound = client.bind_axb_with_options(bind, runtime).body
    assert (bound.code, bound.secret_bind_dto.secret_no) == ("OK", "01058000001"), bound.message
    subs_id, x = bound.secret_bind_dto.subs_id, _e164(bound.secret_bind_dto.secret_no)

    # A calls X and reaches B; B calls X and reaches A; each sees X.
    to_b = face.carrier.call(from_number=_e164(A), to_number=x)
    assert (to_b.outcome, to_b.dialed, to_b.caller_id) == ("connected", _e164(B), x)
    assert face.carrier.call(from_number=_e164(B), to_number=x).dialed == _e164(A)

    # Replace B in place, then move the expiry.
    update = pls.UpdateSubscriptionRequest(
        pool_key=POOL_KEY, subs_id=subs_id, phone_no_x=bound.secret_bind_dto.secret_no,
        operate_type="updateNoB", phone_no_b=NEW_B,
    )  # fmt: skip
    assert client.update_subscription_with_options(update, runtime).body.code == "OK"
    update.operate_type, update.phone_no_b = "updateExpire", None
    update.expiration = _expiry(face.clock, hours=48)
    assert client.update_subscription_with_options(update, runtime).body.code == "OK"
    assert face.carrier.call(from_number=_e164(A), to_number=x).dialed == _e164(NEW_B)
    assert face.carrier.call(from_number=_e164(B), to_number=x).dialed is None

    # Query: live, same X, parties masked in their national form.
    query = pls.QuerySubscriptionDetailRequest(pool_key=POOL_KEY, subs_id=subs_id, phone_no_x="01058000001")
    detail = client.query_subscription_detail_with_options(query, runtime).body.secret_bind_detail_dto
    assert (detail.status, detail.phone_no_x, detail.expire_date) == (
        1,
        "01058000001",
        _expiry(face.clock, 48),
    )
    assert (detail.phone_no_a, detail.phone_no_b) == ("*" * 11, "*" * 11)
    ids = client.query_subs_id_with_options(
        pls.QuerySubsIdRequest(pool_key=POOL_KEY, phone_no_x="01058000001"), runtime
    )
    assert ids.body.subs_id == subs_id

    # Unbind: nobody reaches anybody through X any more.
    unbind = pls.UnbindSubscriptionRequest(pool_key=POOL_KEY, subs_id=subs_id, secret_no="01058000001")
    assert client.unbind_subscription_with_options(unbind, runtime).body.code == "OK"
    assert face.carrier.call(from_number=_e164(A), to_number=x).dialed is None
    after = client.query_subscription_detail_with_options(query, runtime).body.secret_bind_detail_dto
    assert after.status == 0
