"""The Dyplsapi face in process: the app served over loopback HTTP and driven
by Alibaba's official SDK, on the test PostgreSQL and Redis."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from alibabacloud_dyplsapi20170525 import models as pls
from alibabacloud_dyplsapi20170525.client import Client
from sqlalchemy import select, text
from werkzeug.serving import make_server

from config import Settings, with_overrides
from maskline import create_app, services_of
from maskline.audit.models import AuditRecord
from maskline.clock import FixedClock
from maskline.compat.aliyun.credentials import create_credentials
from maskline.compat.aliyun.models import AliyunAccessKey, AliyunAxgGroup, AliyunAxgMember
from maskline.numbers.models import Binding
from maskline.webhooks.models import Interaction
from maskline.wiring import Services
from tests.aliyun_helpers import sdk, sdk_error, signed_post
from tests.conftest import add_relay_numbers
from tests.local_http import POLL_INTERVAL

X1, X2 = "+14155550100", "+14155550101"
A, B, C = "+14155550132", "+12125550143", "+13125550154"


def _expiry(clock: FixedClock, hours: int = 24) -> str:
    return (
        (clock() + dt.timedelta(hours=hours))
        .astimezone(dt.timezone(dt.timedelta(hours=8)))
        .strftime("%Y-%m-%d %H:%M:%S")
    )


@dataclass
class Face:
    endpoint: str
    clock: FixedClock
    services: Services
    key_id: str
    secret: str
    other: dict[str, Any]

    def client(self, **kwargs: Any) -> Client:
        return sdk(self.endpoint, self.key_id, self.secret, **kwargs)

    def bind_axb(self, a: str = A, b: str = B, **extra: Any) -> Any:
        request = pls.BindAxbRequest(
            pool_key="US", phone_no_a=a, phone_no_b=b, expiration=_expiry(self.clock), out_order_id="o-1"
        )
        for name, value in extra.items():
            setattr(request, name, value)
        return self.client().bind_axb(request).body


@contextlib.contextmanager
def _serve(app: Any) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL}, daemon=True
    )
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


def _issue(services: Services, owner: str, scopes: list[str]) -> dict[str, Any]:
    return create_credentials(services, name="order system", owner=owner, scopes=scopes, actor="cli:test")


@pytest.fixture
def face(services: Services, redis_client: Any, settings: Settings) -> Iterator[Face]:
    # The SDK stamps requests with the real time: the server's clock starts there.
    clock = FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    app = create_app(with_overrides(settings, aliyun_signature_v2=True), clock=clock)
    built = services_of(app)
    add_relay_numbers(built, X1, X2)
    mine = _issue(built, "shop-1", ["bindings:write", "bindings:read"])
    other = _issue(built, "shop-2", ["bindings:write", "bindings:read"])
    with _serve(app) as endpoint:
        yield Face(endpoint, clock, built, mine["access_key_id"], mine["access_key_secret"], other)
    built.close()


def test_credentials_seal_the_secret_and_are_audited(face: Face) -> None:
    with face.services.db.session() as session:
        row = session.get(AliyunAccessKey, face.key_id)
        assert row is not None and row.secret_token.startswith("pn_")
        dump = " ".join(str(r) for r in session.execute(text("SELECT * FROM vault_entries")).all())
        actions = session.scalars(select(AuditRecord.action).where(AuditRecord.subject == face.key_id)).all()
    assert face.secret not in dump
    assert actions == ["aliyun.accesskey.created"]


def test_bind_axb_answers_a_relay_number_and_a_subscription(face: Face) -> None:
    body = face.bind_axb()
    assert body.code == "OK" and body.request_id
    dto = body.secret_bind_dto
    assert dto.secret_no in (X1, X2) and dto.subs_id.startswith("bd_")
    with face.services.db.session() as session:
        binding = session.get(Binding, dto.subs_id)
        assert binding is not None
        assert (binding.owner, binding.order_id, binding.mode) == ("shop-1", "o-1", "axb")
        expected = dt.datetime.strptime(_expiry(face.clock), "%Y-%m-%d %H:%M:%S")
        assert binding.expires_at == expected.replace(tzinfo=dt.timezone(dt.timedelta(hours=8)))


def test_national_numbers_are_read_in_the_pool_key_region(face: Face) -> None:
    body = face.bind_axb(a="(415) 555-0132", b="212-555-0143")
    assert body.code == "OK"


def test_hmac_sha1_signatures_work_where_enabled(face: Face) -> None:
    request = pls.BindAxbRequest(
        pool_key="US", phone_no_a=A, phone_no_b=B, expiration=_expiry(face.clock), out_id="o-2"
    )
    body = face.client(signature_algorithm="v2").bind_axb(request).body
    assert body.code == "OK"


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"phone_no_a": "12345"}, "PhoneNoA", "isv.MOBILE_NUMBER_ILLEGAL"),
        ({"phone_no_b": "not a number"}, "PhoneNoB", "isv.MOBILE_NUMBER_ILLEGAL"),
        ({"expiration": "2026-13-01 00:00:00"}, "Expiration", "isv.EXPIRE_DATE_ILLEGAL"),
        ({"expiration": "2020-01-01 00:00:00"}, "Expiration", "isv.EXPIRE_DATE_ILLEGAL"),
        ({"out_order_id": None}, "OutOrderId", "isv.INVALID_PARAMETERS"),
        ({"phone_no_x": "+14155550199"}, "PhoneNoX", "isv.INVALID_PARAMETERS"),
        ({"phone_no_a": X2}, "PhoneNoA", "isv.INVALID_PARAMETERS"),
    ],
)
def test_bad_parameters_are_business_errors_naming_the_field(
    face: Face, change: dict[str, Any], field: str, code: str
) -> None:
    body = face.bind_axb(**change)
    assert body.code == code
    assert body.message.startswith(f"{field}:")
    assert "555" not in body.message
    with face.services.db.session() as session:
        assert session.scalars(select(Binding)).all() == []


def test_an_exhausted_pool_is_no_available_number(face: Face) -> None:
    assert face.bind_axb(b=B).code == "OK"
    assert face.bind_axb(b=C).code == "OK"
    body = face.bind_axb(b="+16175550165")
    assert body.code == "isv.NO_AVAILABLE_NUMBER"


def test_update_query_and_unbind(face: Face) -> None:
    dto = face.bind_axb().secret_bind_dto
    client = face.client()
    later = _expiry(face.clock, hours=48)
    update = pls.UpdateSubscriptionRequest(
        pool_key="US",
        subs_id=dto.subs_id,
        phone_no_x=dto.secret_no,
        operate_type="updateExpire",
        expiration=later,
    )
    assert client.update_subscription(update).body.code == "OK"
    query = pls.QuerySubscriptionDetailRequest(pool_key="US", subs_id=dto.subs_id, phone_no_x=dto.secret_no)
    detail = client.query_subscription_detail(query).body.secret_bind_detail_dto
    assert (detail.expire_date, detail.status, detail.phone_no_x) == (later, 1, dto.secret_no)
    assert detail.phone_no_a == "+1**********" and detail.phone_no_b == "+1**********"
    unbind = pls.UnbindSubscriptionRequest(pool_key="US", subs_id=dto.subs_id, secret_no=dto.secret_no)
    assert client.unbind_subscription(unbind).body.code == "OK"
    assert client.query_subscription_detail(query).body.secret_bind_detail_dto.status == 0
    assert client.update_subscription(update).body.code == "isv.NO_NOT_EXIST"


def test_another_owner_sees_no_subscription(face: Face) -> None:
    dto = face.bind_axb().secret_bind_dto
    theirs = sdk(face.endpoint, face.other["access_key_id"], face.other["access_key_secret"])
    unbind = pls.UnbindSubscriptionRequest(pool_key="US", subs_id=dto.subs_id, secret_no=dto.secret_no)
    assert theirs.unbind_subscription(unbind).body.code == "isv.NO_NOT_EXIST"
    with face.services.db.session() as session:
        binding = session.get(Binding, dto.subs_id)
        assert binding is not None and binding.status == "active"


def test_a_wrong_secret_is_signature_does_not_match(face: Face) -> None:
    client = sdk(face.endpoint, face.key_id, face.secret + "x")
    request = pls.BindAxbRequest(pool_key="US", phone_no_a=A, phone_no_b=B, expiration=_expiry(face.clock))
    assert sdk_error(lambda: client.bind_axb(request)) == (400, "SignatureDoesNotMatch")


def test_an_unknown_key_is_not_found(face: Face) -> None:
    client = sdk(face.endpoint, "MLAKnobodyhasthiskey00", face.secret)
    request = pls.BindAxbRequest(pool_key="US", phone_no_a=A, phone_no_b=B, expiration=_expiry(face.clock))
    assert sdk_error(lambda: client.bind_axb(request)) == (404, "InvalidAccessKeyId.NotFound")


def test_a_skewed_clock_is_expired(face: Face) -> None:
    face.clock.advance(minutes=16)
    request = pls.BindAxbRequest(pool_key="US", phone_no_a=A, phone_no_b=B, expiration=_expiry(face.clock))
    assert sdk_error(lambda: face.client().bind_axb(request)) == (400, "InvalidTimeStamp.Expired")


def test_a_reused_nonce_is_refused(face: Face) -> None:
    query = {"PoolKey": "US", "SubsId": "bd_aaaaaaaaaaaaaaaa"}
    first = signed_post(face.endpoint, face.key_id, face.secret, "QuerySubscriptionDetail", query)
    again = signed_post(face.endpoint, face.key_id, face.secret, "QuerySubscriptionDetail", query)
    assert (first[0], first[1]["Code"]) == (200, "isv.NO_NOT_EXIST")
    assert (again[0], again[1]["Code"]) == (400, "SignatureNonceUsed")


def test_a_key_without_the_scope_is_forbidden(face: Face) -> None:
    reader = _issue(face.services, "shop-1", ["bindings:read"])
    client = sdk(face.endpoint, reader["access_key_id"], reader["access_key_secret"])
    request = pls.BindAxbRequest(pool_key="US", phone_no_a=A, phone_no_b=B, expiration=_expiry(face.clock))
    assert sdk_error(lambda: client.bind_axb(request)) == (403, "Forbidden.RAM")


def test_a_revoked_key_is_inactive(face: Face) -> None:
    from maskline.api.keys import ApiKeyService

    reader = _issue(face.services, "shop-1", ["bindings:read"])
    ApiKeyService(db=face.services.db, clock=face.clock).revoke(reader["api_key_id"])
    client = sdk(face.endpoint, reader["access_key_id"], reader["access_key_secret"])
    query = pls.QuerySubscriptionDetailRequest(pool_key="US", subs_id="bd_aaaaaaaaaaaaaaaa")
    assert sdk_error(lambda: client.query_subscription_detail(query)) == (403, "InvalidAccessKeyId.Inactive")


def test_the_vault_sweeper_keeps_access_key_secrets(face: Face) -> None:
    with face.services.db.session() as session:
        face.services.vault.put(session, "+14155550199")  # used by nothing: collected
    face.clock.advance(days=2)
    assert face.services.numbers.sweeper.run_once(face.clock(), orphan_grace=0).vault_collected == 1
    with face.services.db.session() as session:
        row = session.get(AliyunAccessKey, face.key_id)
        assert row is not None
        assert face.services.vault.open(session, row.secret_token) == face.secret


def test_axn_extension_without_b_takes_any_caller_with_the_extension(face: Face) -> None:
    request = pls.BindAxnExtensionRequest(
        pool_key="US", phone_no_a=A, expiration=_expiry(face.clock), out_id="o-3"
    )
    dto = face.client().bind_axn_extension(request).body.secret_bind_dto
    assert dto.secret_no in (X1, X2) and dto.extension and dto.extension.isdigit()
    view = face.services.numbers.bindings.get(dto.subs_id)
    assert (view.mode, view.allow) == ("axe", "any")


def test_axn_extension_with_b_allows_b_only(face: Face) -> None:
    request = pls.BindAxnExtensionRequest(
        pool_key="US", phone_no_a=A, phone_no_b=B, expiration=_expiry(face.clock), out_id="o-4"
    )
    dto = face.client().bind_axn_extension(request).body.secret_bind_dto
    view = face.services.numbers.bindings.get(dto.subs_id)
    assert (view.mode, view.allow, view.allowed_callers) == ("axe", "list", 1)
    query = pls.QuerySubscriptionDetailRequest(pool_key="US", subs_id=dto.subs_id)
    detail = face.client().query_subscription_detail(query).body.secret_bind_detail_dto
    assert (detail.phone_no_a, detail.phone_no_b, detail.extension) == (
        "+1**********",
        "+1**********",
        dto.extension,
    )


@pytest.mark.parametrize(
    ("action", "query", "status", "code"),
    [
        ("SendSms", {}, 404, "InvalidAction.NotFound"),
        ("BindAxb", {"PoolKey": "US", "PhoneNoA": A, "Expiration": "x"}, 200, "isv.INVALID_PARAMETERS"),
        ("UpdateSubscription", {"PoolKey": "US", "SubsId": "bd_aaaaaaaaaaaaaaaa"}, 200, "isv.NO_NOT_EXIST"),
        ("UnbindSubscription", {"PoolKey": "US"}, 200, "isv.INVALID_PARAMETERS"),
        ("QuerySubscriptionDetail", {"SubsId": "\x00"}, 200, "isv.INVALID_PARAMETERS"),
        ("QuerySubscriptionDetail", {"PoolKey": "US", "SubsId": "\x00'"}, 200, "isv.NO_NOT_EXIST"),
    ],
)
def test_odd_requests_get_alibaba_codes_never_a_500(
    face: Face, action: str, query: dict[str, str], status: int, code: str
) -> None:
    answer = signed_post(
        face.endpoint, face.key_id, face.secret, action, query, nonce=f"n-{action}-{len(query)}-x"
    )
    assert (answer[0], answer[1]["Code"]) == (status, code)
    assert answer[1]["RequestId"]


def _group(face: Face, numbers: str, name: str = "couriers") -> int:
    body = (
        face.client()
        .create_axg_group(pls.CreateAxgGroupRequest(pool_key="US", name=name, numbers=numbers))
        .body
    )
    assert body.code == "OK", body.message
    return int(body.group_id)


def test_axg_groups_hold_tokens_and_bind_as_an_allow_list(face: Face) -> None:
    group_id = _group(face, f"{B}, (312) 555-0154")
    with face.services.db.session() as session:
        tokens = session.scalars(
            select(AliyunAxgMember.token).where(AliyunAxgMember.group_id == group_id)
        ).all()
    assert len(tokens) == 2 and all(t.startswith("pn_") for t in tokens)
    request = pls.BindAxgRequest(
        pool_key="US",
        group_id=str(group_id),
        phone_no_a=A,
        expiration=_expiry(face.clock),
        out_order_id="o-5",
    )
    dto = face.client().bind_axg(request).body.secret_bind_dto
    view = face.services.numbers.bindings.get(dto.subs_id)
    assert (view.mode, view.allow, view.allowed_callers, view.owner) == ("axe", "list", 2, "shop-1")


@pytest.mark.parametrize(
    ("operation", "numbers", "callers"),
    [("addNumbers", "+16175550165", 3), ("deleteNumbers", B, 1), ("overwriteNumbers", "+16175550165", 1)],
)
def test_operate_axg_group_changes_the_next_binding(
    face: Face, operation: str, numbers: str, callers: int
) -> None:
    group_id = _group(face, f"{B},{C}")
    operate = pls.OperateAxgGroupRequest(
        pool_key="US", group_id=group_id, operate_type=operation, numbers=numbers
    )
    assert face.client().operate_axg_group(operate).body.code == "OK"
    request = pls.BindAxgRequest(
        pool_key="US",
        group_id=str(group_id),
        phone_no_a=A,
        expiration=_expiry(face.clock),
        out_order_id="o-6",
    )
    dto = face.client().bind_axg(request).body.secret_bind_dto
    assert face.services.numbers.bindings.get(dto.subs_id).allowed_callers == callers


def test_another_owners_group_does_not_exist(face: Face) -> None:
    group_id = _group(face, B)
    theirs = sdk(face.endpoint, face.other["access_key_id"], face.other["access_key_secret"])
    request = pls.BindAxgRequest(
        pool_key="US",
        group_id=str(group_id),
        phone_no_a=A,
        expiration=_expiry(face.clock),
        out_order_id="o-7",
    )
    body = theirs.bind_axg(request).body
    assert (body.code, body.message) == ("isv.INVALID_PARAMETERS", "GroupId: no such group")
    request.group_id = "\u00b2"  # a digit to str.isdigit, not to int()
    assert face.client().bind_axg(request).body.message == "GroupId: no such group"
    operate = pls.OperateAxgGroupRequest(
        pool_key="US", group_id=group_id, operate_type="overwriteNumbers", numbers=C
    )
    assert theirs.operate_axg_group(operate).body.code == "isv.INVALID_PARAMETERS"


def test_a_bad_group_number_is_named_and_nothing_is_stored(face: Face) -> None:
    body = face.client().create_axg_group(pls.CreateAxgGroupRequest(pool_key="US", numbers=f"{B},12345")).body
    assert body.code == "isv.MOBILE_NUMBER_ILLEGAL" and body.message.startswith("Numbers[1]:")
    with face.services.db.session() as session:
        assert session.scalars(select(AliyunAxgGroup)).all() == []


def test_query_call_status_gives_the_latest_call_masked(face: Face) -> None:
    dto = face.bind_axb().secret_bind_dto
    query = {"PoolKey": "US", "SubsId": dto.subs_id}
    empty = signed_post(
        face.endpoint, face.key_id, face.secret, "QueryCallStatus", query, nonce="call-status-1"
    )
    assert empty[1]["SecretCallStatusDTO"] == {"Status": None, "CalledNo": None}
    with face.services.db.session() as session:
        for sid, status, minutes in (("CA1", "no-answer", 1), ("CA2", "completed", 2)):
            session.add(
                Interaction(
                    sid=sid,
                    binding_id=dto.subs_id,
                    owner="shop-1",
                    type="call",
                    from_role="a",
                    to_role="b",
                    status=status,
                    duration=30,
                    started_at=face.clock() + dt.timedelta(minutes=minutes),
                )
            )
    status, body = signed_post(
        face.endpoint, face.key_id, face.secret, "QueryCallStatus", query, nonce="call-status-2"
    )
    assert (status, body["Code"]) == (200, "OK")
    assert body["SecretCallStatusDTO"] == {"Status": "completed", "CalledNo": "+1**********"}
    theirs = signed_post(
        face.endpoint, face.other["access_key_id"], face.other["access_key_secret"], "QueryCallStatus", query
    )
    assert theirs[1]["Code"] == "isv.NO_NOT_EXIST"


def test_a_nonce_is_one_redis_key_that_outlives_the_skew_window(
    services: Services, redis_client: Any
) -> None:
    from maskline.compat.aliyun.interfaces import AuthError
    from maskline.compat.aliyun.services import NonceStore

    nonces = NonceStore(redis=redis_client, max_skew=dt.timedelta(minutes=15))
    nonces.spend("MLAKone", "nonce-0001")
    nonces.spend("MLAKtwo", "nonce-0001")  # per AccessKey
    with pytest.raises(AuthError) as raised:
        nonces.spend("MLAKone", "nonce-0001")
    assert raised.value.code == "SignatureNonceUsed"
    keys = sorted(redis_client.scan_iter("ml:aliyun:nonce:*"))
    assert keys == [b"ml:aliyun:nonce:MLAKone:nonce-0001", b"ml:aliyun:nonce:MLAKtwo:nonce-0001"]
    assert 15 * 60 * 1000 < redis_client.pttl(keys[0]) <= 30 * 60 * 1000


def test_past_its_limit_an_access_key_is_throttled_per_scope(
    services: Services, redis_client: Any, settings: Settings
) -> None:
    limits = {**settings.api_rate_limits, "bindings:read": "2/hour"}
    clock = FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    app = create_app(with_overrides(settings, api_rate_limits=limits), clock=clock)
    built = services_of(app)
    add_relay_numbers(built, X1, X2)
    mine = _issue(built, "shop-1", ["bindings:write", "bindings:read"])
    other = _issue(built, "shop-1", ["bindings:read"])
    query = {"PoolKey": "US", "SubsId": "bd_aaaaaaaaaaaaaaaa"}

    headers: dict[str, str] = {}

    def detail(endpoint: str, key: dict[str, Any], nonce: str) -> tuple[int, str]:
        headers.clear()
        status, body = signed_post(
            endpoint,
            key["access_key_id"],
            key["access_key_secret"],
            "QuerySubscriptionDetail",
            query,
            nonce=nonce,
            headers_out=headers,
        )
        return status, body["Code"]

    with _serve(app) as endpoint:
        answers = [detail(endpoint, mine, f"limit-nonce-{i:04d}") for i in range(3)]
        assert answers == [(200, "isv.NO_NOT_EXIST")] * 2 + [(429, "Throttling.User")]
        assert 1 <= int(headers["Retry-After"]) <= 3600
        client = sdk(endpoint, mine["access_key_id"], mine["access_key_secret"])
        request = pls.QuerySubscriptionDetailRequest(pool_key="US", subs_id="bd_aaaaaaaaaaaaaaaa")
        assert sdk_error(lambda: client.query_subscription_detail(request)) == (429, "Throttling.User")
        # Another key, and another scope of the same key, have budgets of their own.
        assert detail(endpoint, other, "limit-nonce-other") == (200, "isv.NO_NOT_EXIST")
        bind = pls.BindAxbRequest(
            pool_key="US", phone_no_a=A, phone_no_b=B, expiration=_expiry(clock), out_order_id="o-1"
        )
        assert client.bind_axb(bind).body.code == "OK"
    built.close()
