"""The Dyplsapi face's PoolKey numbers, PhoneNoX, ExpectCity, CallRestrict and
UpdateSubscription's operations: bound with Alibaba's SDK (unmodified),
called through the carrier simulator, on the test PostgreSQL and Redis."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from alibabacloud_dyplsapi20170525 import models as pls
from alibabacloud_dyplsapi20170525.client import Client
from prometheus_client import REGISTRY
from sqlalchemy import select

from config import Settings, with_overrides
from maskline import create_app, services_of
from maskline.audit.models import AuditRecord
from maskline.clock import FixedClock
from maskline.compat.aliyun.models import AliyunPoolNumber, AliyunSubscription
from maskline.compat.aliyun.restrict import CACHE_SECONDS, CallRestrictions
from maskline.numbers.interfaces import BindRequest
from maskline.numbers.models import Binding
from maskline.sim.carrier import CarrierSimulator, FlaskTransport
from maskline.webhooks.interfaces import StepDecision
from maskline.wiring import Services
from tests.aliyun_helpers import sdk
from tests.conftest import add_relay_numbers
from tests.integration.test_compat_aliyun import _expiry, _issue, _serve

X1, X2 = "+14155550100", "+14155550101"  # San Francisco
NYC, CHI = "+12125550100", "+13125550100"
BEIJING, GUANGZHOU = "+861058000001", "+862088000001"
RELAYS = (X1, X2, NYC, CHI, BEIJING, GUANGZHOU)
A, B, C, D = "+14155550132", "+12125550143", "+13125550154", "+16175550165"
AUTH_TOKEN = "test-twilio-auth-token"


@dataclass
class Face:
    endpoint: str
    clock: FixedClock
    services: Services
    carrier: CarrierSimulator
    app: Any
    key_id: str
    secret: str
    other: dict[str, Any]

    def client(self) -> Client:
        return sdk(self.endpoint, self.key_id, self.secret)

    def theirs(self) -> Client:
        return sdk(self.endpoint, self.other["access_key_id"], self.other["access_key_secret"])

    def bind_axb(self, a: str = A, b: str = B, *, client: Client | None = None, **extra: Any) -> Any:
        request = pls.BindAxbRequest(
            pool_key="US", phone_no_a=a, phone_no_b=b, expiration=_expiry(self.clock), out_order_id="o-1"
        )
        for name, value in extra.items():
            setattr(request, name, value)
        return (client or self.client()).bind_axb(request).body

    def pool(self, pool_key: str, *numbers: str, owner: str = "shop-1") -> None:
        with self.services.db.session() as session:
            for e164 in numbers:
                session.add(
                    AliyunPoolNumber(owner=owner, pool_key=pool_key, e164=e164, added_at=self.clock())
                )

    def update(self, subs_id: str, operation: str, **extra: Any) -> Any:
        request = pls.UpdateSubscriptionRequest(pool_key="US", subs_id=subs_id, operate_type=operation)
        for name, value in extra.items():
            setattr(request, name, value)
        return self.client().update_subscription(request).body

    def detail(self, subs_id: str) -> Any:
        query = pls.QuerySubscriptionDetailRequest(pool_key="US", subs_id=subs_id)
        return self.client().query_subscription_detail(query).body.secret_bind_detail_dto

    def bindings(self) -> list[Binding]:
        with self.services.db.session() as session:
            return list(session.scalars(select(Binding)))


@pytest.fixture
def face(services: Services, redis_client: Any, settings: Settings) -> Iterator[Face]:
    # The SDK stamps requests with the real time: the server's clock starts there.
    clock = FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    app = create_app(with_overrides(settings, twilio_auth_token=AUTH_TOKEN), clock=clock)
    built = services_of(app)
    add_relay_numbers(built, *RELAYS)
    mine = _issue(built, "shop-1", ["bindings:write", "bindings:read"])
    other = _issue(built, "shop-2", ["bindings:write", "bindings:read"])
    carrier = CarrierSimulator(
        transport=FlaskTransport(app), auth_token=AUTH_TOKEN, public_url="http://localhost"
    )
    with _serve(app) as endpoint:
        yield Face(
            endpoint, clock, built, carrier, app, mine["access_key_id"], mine["access_key_secret"], other
        )
    built.close()


def _counter(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- PoolKey ---------------------------------------------------------------------------


def test_a_pool_key_with_numbers_binds_only_from_them(face: Face) -> None:
    face.pool("FC100000001", NYC)
    first = face.bind_axb(pool_key="FC100000001")
    assert (first.code, first.secret_bind_dto.secret_no) == ("OK", NYC)
    # A is on NYC already; the rest of the pool is free but not this PoolKey's.
    second = face.bind_axb(b=C, pool_key="FC100000001")
    assert second.code == "isv.NO_AVAILABLE_NUMBER"
    assert len(face.bindings()) == 1


def test_a_pool_key_is_the_owners(face: Face) -> None:
    face.pool("FC100000001", NYC)
    theirs = face.bind_axb(client=face.theirs(), pool_key="FC100000001")
    # shop-2 has no PoolKey of that name: Alibaba's answer to an unknown PoolKey.
    assert (theirs.code, theirs.secret_bind_dto) == ("isv.POOLKEY_NOT_EXISTS", None)
    assert len(face.bindings()) == 0


def test_an_unknown_pool_key_binds_nothing(face: Face) -> None:
    """Alibaba's API error code list (号码隐私保护 "API错误码", help.aliyun.com
    document 109196) names an unknown PoolKey ``isv.POOLKEY_NOT_EXISTS`` (号池不存在)."""
    body = face.bind_axb(pool_key="FC-nothing-here")
    assert (body.code, body.message.startswith("PoolKey:")) == ("isv.POOLKEY_NOT_EXISTS", True)
    assert face.bindings() == []


def test_a_region_code_pool_key_takes_the_whole_pool(face: Face) -> None:
    body = face.bind_axb(pool_key="US")
    assert body.code == "OK" and body.secret_bind_dto.secret_no in RELAYS


# -- PhoneNoX --------------------------------------------------------------------------


@pytest.mark.parametrize("x", [NYC, CHI, "(312) 555-0100"])
def test_phone_no_x_is_the_number_bound(face: Face, x: str) -> None:
    body = face.bind_axb(phone_no_x=x)
    assert body.code == "OK", body.message
    assert body.secret_bind_dto.secret_no == (CHI if x.startswith("(") else x)


def test_phone_no_x_that_cannot_take_the_binding_is_refused_never_replaced(face: Face) -> None:
    assert face.bind_axb(phone_no_x=NYC).code == "OK"
    body = face.bind_axb(b=C, phone_no_x=NYC)  # A is on NYC already
    assert body.code == "isv.BIND_CONFLICT"
    assert body.message.startswith(f"PhoneNoX {NYC}: a number of this binding is already bound on it")
    assert [b.relay_number for b in face.bindings()] == [NYC]


def test_phone_no_x_must_be_a_number_of_the_pool_key(face: Face) -> None:
    face.pool("FC100000001", NYC)
    body = face.bind_axb(pool_key="FC100000001", phone_no_x=CHI)
    assert (body.code, body.message) == (
        "isv.INVALID_PARAMETERS",
        f"PhoneNoX: {CHI} is not one of this PoolKey's numbers",
    )
    assert face.bind_axb(pool_key="FC100000001", phone_no_x=NYC).secret_bind_dto.secret_no == NYC


@pytest.mark.parametrize(
    ("x", "code"), [(D, "isv.INVALID_PARAMETERS"), ("12345", "isv.MOBILE_NUMBER_ILLEGAL")]
)
def test_phone_no_x_outside_the_pool_is_refused_without_echoing_it(face: Face, x: str, code: str) -> None:
    body = face.bind_axb(phone_no_x=x)
    assert body.code == code and body.message.startswith("PhoneNoX:")
    assert "555" not in body.message and "12345" not in body.message
    assert face.bindings() == []


# -- ExpectCity ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("city", "x"),
    [
        ("Chicago", CHI),
        ("  new york ", NYC),
        ("北京", BEIJING),
        ("北京市", BEIJING),
        ("beijing", BEIJING),
        ("广州市", GUANGZHOU),
        ("Guangzhou", GUANGZHOU),
    ],
)
def test_expect_city_prefers_a_number_there(face: Face, city: str, x: str) -> None:
    body = face.bind_axb(expect_city=city)
    # A mainland number comes back in Alibaba's national form (01058000001), any other in E.164.
    secret_no = "0" + x[3:] if x.startswith("+86") else x
    assert (body.code, body.secret_bind_dto.secret_no) == ("OK", secret_no)


def test_expect_city_falls_back_to_another_number_of_the_pool(face: Face) -> None:
    assert face.bind_axb(expect_city="Chicago").secret_bind_dto.secret_no == CHI
    # A is on CHI now: another number, nearest first.
    again = face.bind_axb(b=C, expect_city="Chicago")
    assert (again.code, again.secret_bind_dto.secret_no in (X1, X2)) == ("OK", True)
    nowhere = face.bind_axb(a=D, expect_city="Atlantis")
    assert nowhere.code == "OK"


def test_expect_city_stays_within_the_pool_key(face: Face) -> None:
    face.pool("FC100000001", NYC, X1)
    body = face.bind_axb(pool_key="FC100000001", expect_city="Chicago")
    assert (body.code, body.secret_bind_dto.secret_no) == ("OK", X1)


def test_expect_city_of_control_characters_is_refused(face: Face) -> None:
    body = face.bind_axb(expect_city="Chi\x07cago")
    assert (body.code, body.message.split(":")[0]) == ("isv.INVALID_PARAMETERS", "ExpectCity")


# -- CallRestrict ----------------------------------------------------------------------


def test_call_restrict_ax_refuses_a_calling_x_and_connects_b(face: Face) -> None:
    dto = face.bind_axb(call_restrict="CONTROL_AX_DISABLE").secret_bind_dto
    assert face.detail(dto.subs_id).call_restrict == "CONTROL_AX_DISABLE"
    before = _counter("maskline_webhook_rejections_total", {"reason": "intercepted"})
    refused = face.carrier.call(from_number=A, to_number=dto.secret_no)
    assert (refused.outcome, refused.dialed) == ("rejected", None)
    assert _counter("maskline_webhook_rejections_total", {"reason": "intercepted"}) == before + 1
    connected = face.carrier.call(from_number=B, to_number=dto.secret_no)
    assert (connected.outcome, connected.dialed) == ("connected", A)


def test_call_restrict_bx_on_axn_refuses_b_and_connects_a(face: Face) -> None:
    request = pls.BindAxnExtensionRequest(
        pool_key="US",
        phone_no_a=A,
        phone_no_b=B,
        expiration=_expiry(face.clock),
        out_id="o-2",
        call_restrict="CONTROL_BX_DISABLE",
    )
    dto = face.client().bind_axn_extension(request).body.secret_bind_dto
    refused = face.carrier.call(from_number=B, to_number=dto.secret_no, digits=[dto.extension])
    assert (refused.outcome, refused.dialed) == ("rejected", None)
    # A calling X still reaches B.
    a_calls = face.carrier.call(from_number=A, to_number=dto.secret_no)
    assert (a_calls.outcome, a_calls.dialed) == ("connected", B)


def test_call_restrict_leaves_texts_alone(face: Face) -> None:
    dto = face.bind_axb(call_restrict="CONTROL_AX_DISABLE").secret_bind_dto
    text = face.carrier.sms(from_number=A, to_number=dto.secret_no, body="on my way")
    assert text.outcome == "forwarded"


@pytest.mark.parametrize(
    ("request_type", "extra", "message"),
    [
        ("axb", {"call_restrict": "CONTROL_CLEAR_DISABLE"}, "CallRestrict: must be one of"),
        ("axb", {"call_restrict": "ax"}, "CallRestrict: must be one of"),
        ("axn", {"call_restrict": "CONTROL_BX_DISABLE"}, "CallRestrict: CONTROL_BX_DISABLE needs a B"),
    ],
)
def test_a_bad_call_restrict_is_refused_and_binds_nothing(
    face: Face, request_type: str, extra: dict[str, str], message: str
) -> None:
    if request_type == "axb":
        body = face.bind_axb(**extra)
    else:
        request = pls.BindAxnExtensionRequest(
            pool_key="US", phone_no_a=A, expiration=_expiry(face.clock), out_id="o-3", **extra
        )
        body = face.client().bind_axn_extension(request).body
    assert body.code == "isv.INVALID_PARAMETERS" and body.message.startswith(message)
    assert face.bindings() == []


def test_update_call_restrict_sets_and_clears_it_at_once(face: Face) -> None:
    dto = face.bind_axb().secret_bind_dto
    assert face.carrier.call(from_number=B, to_number=dto.secret_no).outcome == "connected"
    assert face.update(dto.subs_id, "updateCallRestrict", call_restrict="CONTROL_BX_DISABLE").code == "OK"
    assert face.detail(dto.subs_id).call_restrict == "CONTROL_BX_DISABLE"
    assert face.carrier.call(from_number=B, to_number=dto.secret_no).outcome == "rejected"
    assert face.update(dto.subs_id, "updateCallRestrict", call_restrict="CONTROL_CLEAR_DISABLE").code == "OK"
    assert face.detail(dto.subs_id).call_restrict is None
    assert face.carrier.call(from_number=B, to_number=dto.secret_no).outcome == "connected"
    with face.services.db.session() as session:
        audited = session.scalars(
            select(AuditRecord.data).where(AuditRecord.action == "aliyun.subscription.call_restrict")
        ).all()
    assert [json.loads(d)["call_restrict"] for d in audited] == ["CONTROL_BX_DISABLE", None]


def test_a_restriction_changed_elsewhere_applies_within_the_cache_time(face: Face) -> None:
    dto = face.bind_axb().secret_bind_dto
    now = [0.0]
    other_process = CallRestrictions(services=face.services, monotonic=lambda: now[0])
    from_b = StepDecision(action="connect", binding_id=dto.subs_id, from_role="b", target_role="a")
    assert other_process("call", from_b, "CA1") is True
    assert face.update(dto.subs_id, "updateCallRestrict", call_restrict="CONTROL_BX_DISABLE").code == "OK"
    now[0] += CACHE_SECONDS - 0.1
    assert other_process("call", from_b, "CA2") is True  # still what it read
    now[0] += 0.2
    assert other_process("call", from_b, "CA3") is False


@contextlib.contextmanager
def _statements(services: Services) -> Iterator[list[str]]:
    """The SQL statements the webhook path's database client runs meanwhile."""
    seen: list[str] = []

    def count(*args: Any) -> None:
        # Queries only: SQLite's transactions start with a BEGIN IMMEDIATE
        # statement of their own (maskline.db), PostgreSQL's do not.
        if not args[2].startswith("BEGIN"):
            seen.append(args[2])

    engine = services.webhook_backends.db.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


def test_while_nothing_is_restricted_a_call_costs_no_lookup_of_its_binding(face: Face) -> None:
    ours = face.bind_axb(a=C, b=D).secret_bind_dto
    now = [0.0]
    restrictions = CallRestrictions(services=face.services, monotonic=lambda: now[0])
    mine = StepDecision(action="connect", binding_id=ours.subs_id, from_role="a", target_role="b")
    with _statements(face.services) as first:
        assert all(restrictions("call", mine, f"CA{i}") is True for i in range(5))
    now[0] += 10 * CACHE_SECONDS
    with _statements(face.services) as later:
        assert restrictions("call", mine, "CA9") is True
    assert (len(first), len(later)) == (1, 1)  # "does anyone restrict?", once per cache time


def test_a_binding_of_another_interface_costs_one_lookup_ever(face: Face) -> None:
    view = face.services.numbers.bindings.bind(
        BindRequest(order_id="v1-order", mode="axb", parties={"a": A, "b": B}, owner="shop-1")
    )
    ours = face.bind_axb(a=C, b=D, call_restrict="CONTROL_BX_DISABLE").secret_bind_dto
    now = [0.0]
    restrictions = CallRestrictions(services=face.services, monotonic=lambda: now[0])
    theirs = StepDecision(action="connect", binding_id=view.id, from_role="a", target_role="b")
    mine = StepDecision(action="connect", binding_id=ours.subs_id, from_role="a", target_role="b")
    with _statements(face.services) as first:
        assert restrictions("call", theirs, "CA1") is True
        assert restrictions("call", mine, "CA2") is True
    now[0] += 10 * CACHE_SECONDS
    with _statements(face.services) as later:
        assert restrictions("call", theirs, "CA3") is True
        assert restrictions("call", mine, "CA4") is True
        assert restrictions("sms", mine, "SM1") is True
    # "Does anyone restrict?" each time; then only this face's binding is asked about again.
    assert (len(first), len(later)) == (3, 2)


def test_a_binding_not_committed_yet_is_refused(face: Face) -> None:
    face.bind_axb(call_restrict="CONTROL_AX_DISABLE")  # some subscription restricts calls
    restrictions = CallRestrictions(services=face.services)
    decision = StepDecision(
        action="connect", binding_id="bd_aaaaaaaaaaaaaaaa", from_role="a", target_role="b"
    )
    assert restrictions("call", decision, "CA1") is False


def test_a_call_is_refused_when_the_restriction_cannot_be_looked_up(face: Face) -> None:
    dto = face.bind_axb().secret_bind_dto
    failures = _counter("maskline_webhook_failures_total", {"endpoint": "voice"})
    engine = face.services.db.engine

    def rename(old: str, new: str) -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(f"ALTER TABLE {old} RENAME TO {new}"))

    # The table the lookup reads is gone while the call is placed (any dialect).
    rename("aliyun_subscriptions", "aliyun_subscriptions_away")
    try:
        call = face.carrier.call(from_number=A, to_number=dto.secret_no)
    finally:
        rename("aliyun_subscriptions_away", "aliyun_subscriptions")
    assert (call.outcome, call.dialed) == ("rejected", None)
    assert _counter("maskline_webhook_failures_total", {"endpoint": "voice"}) == failures + 1
    assert face.carrier.call(from_number=A, to_number=dto.secret_no).outcome == "connected"


# -- UpdateSubscription ----------------------------------------------------------------


def test_update_no_b_replaces_the_party_in_place(face: Face) -> None:
    dto = face.bind_axb(phone_no_x=NYC).secret_bind_dto
    body = face.update(dto.subs_id, "updateNoB", phone_no_b=C, phone_no_x=NYC)
    assert body.code == "OK", body.message
    [binding] = face.bindings()
    assert (binding.id, binding.relay_number, binding.version) == (dto.subs_id, NYC, 2)
    # The new B reaches A and A reaches the new B, through the same X.
    to_a = face.carrier.call(from_number=C, to_number=NYC)
    assert (to_a.outcome, to_a.dialed, to_a.caller_id) == ("connected", A, NYC)
    assert face.carrier.call(from_number=A, to_number=NYC).dialed == C
    # The replaced B reaches no one through X.
    gone = face.carrier.call(from_number=B, to_number=NYC)
    assert (gone.outcome, gone.dialed) == ("rejected", None)


def test_update_no_a_to_a_number_on_x_already_is_bind_conflict(face: Face) -> None:
    dto = face.bind_axb(phone_no_x=NYC).secret_bind_dto
    assert face.bind_axb(a=C, b=D, phone_no_x=NYC).code == "OK"
    for number in (C, B):  # on X in another subscription; this one's own B
        body = face.update(dto.subs_id, "updateNoA", phone_no_a=number)
        assert body.code == "isv.BIND_CONFLICT" and number[2:] not in body.message
    # Nothing changed: A still reaches B.
    assert face.carrier.call(from_number=A, to_number=NYC).dialed == B


def test_update_no_a_to_a_number_cooling_down_on_x_is_bind_conflict(face: Face) -> None:
    first = face.bind_axb(a=C, b=D, phone_no_x=NYC).secret_bind_dto
    assert face.client().unbind_subscription(
        pls.UnbindSubscriptionRequest(pool_key="US", subs_id=first.subs_id)
    )
    dto = face.bind_axb(phone_no_x=NYC).secret_bind_dto
    assert face.update(dto.subs_id, "updateNoA", phone_no_a=C).code == "isv.BIND_CONFLICT"


def test_update_out_id_and_recording_in_place(face: Face) -> None:
    dto = face.bind_axb().secret_bind_dto
    assert face.update(dto.subs_id, "updateOutId", out_id="o-9").code == "OK"
    assert face.update(dto.subs_id, "updateIsRecordingEnabled", is_recording_enabled=True).code == "OK"
    [binding] = face.bindings()
    assert (binding.id, binding.order_id, binding.record) == (dto.subs_id, "o-9", True)
    assert face.update(dto.subs_id, "updateIsRecordingEnabled").code == "isv.INVALID_PARAMETERS"


def test_update_asr_is_refused_naming_operate_type(face: Face) -> None:
    dto = face.bind_axb().secret_bind_dto
    body = face.update(dto.subs_id, "updateAsr")
    assert (body.code, body.message.startswith("OperateType: updateAsr is not supported")) == (
        "isv.INVALID_PARAMETERS",
        True,
    )


def test_an_unknown_operate_type_is_refused(face: Face) -> None:
    dto = face.bind_axb().secret_bind_dto
    body = face.update(dto.subs_id, "updateEverything")
    assert body.message.startswith("OperateType: must be one of updateNoA")


def test_update_status_is_no_operate_type_of_alibaba(face: Face) -> None:
    """Alibaba's OperateType values (UpdateSubscriptionRequest in
    alibabacloud_dyplsapi20170525 2.5.x, and the UpdateSubscription page) are
    updateNoA, updateNoB, updateExpire, updateAxgGroup, updateCallRestrict,
    updateCallDisplayType, updateOutId and updateIsRecordingEnabled: there is
    no updateStatus, so it is answered as any value outside the list, with
    nothing changed (a subscription ends with UnbindSubscription)."""
    dto = face.bind_axb().secret_bind_dto
    body = face.update(dto.subs_id, "updateStatus")
    assert body.code == "isv.INVALID_PARAMETERS"
    assert body.message.startswith("OperateType: must be one of updateNoA, updateNoB, updateExpire")
    [binding] = face.bindings()
    assert (binding.id, binding.status, binding.version) == (dto.subs_id, "active", 1)


@pytest.mark.parametrize(
    ("value", "code"), [("1", "OK"), ("2", "isv.INVALID_PARAMETERS"), (None, "isv.INVALID_PARAMETERS")]
)
def test_update_call_display_type_accepts_x_shown_to_both(face: Face, value: str | None, code: str) -> None:
    dto = face.bind_axb().secret_bind_dto
    assert face.update(dto.subs_id, "updateCallDisplayType", call_display_type=value).code == code


def test_update_call_restrict_needs_a_value_and_a_subscription_of_this_face(face: Face) -> None:
    dto = face.bind_axb().secret_bind_dto
    assert face.update(dto.subs_id, "updateCallRestrict").message.startswith("CallRestrict: is required")
    view = face.services.numbers.bindings.bind(
        BindRequest(order_id="v1-order", mode="axb", parties={"a": C, "b": D}, owner="shop-1")
    )
    body = face.update(view.id, "updateCallRestrict", call_restrict="CONTROL_AX_DISABLE")
    assert (
        body.message
        == "OperateType: updateCallRestrict applies to subscriptions bound through this interface only"
    )


def test_update_call_restrict_of_an_ended_subscription_no_longer_exists(face: Face) -> None:
    dto = face.bind_axb().secret_bind_dto
    face.services.numbers.bindings.unbind(dto.subs_id)
    body = face.update(dto.subs_id, "updateCallRestrict", call_restrict="CONTROL_AX_DISABLE")
    assert body.code == "isv.NO_NOT_EXIST" and "ended" in body.message
    with face.services.db.session() as session:
        assert session.get(AliyunSubscription, dto.subs_id).call_restrict is None  # type: ignore[union-attr]


def _group(face: Face, numbers: str) -> int:
    body = face.client().create_axg_group(pls.CreateAxgGroupRequest(pool_key="US", numbers=numbers)).body
    assert body.code == "OK", body.message
    return int(body.group_id)


def _bind_axg(face: Face, group_id: int, **extra: Any) -> Any:
    request = pls.BindAxgRequest(
        pool_key="US",
        group_id=str(group_id),
        phone_no_a=A,
        expiration=_expiry(face.clock),
        out_order_id="o-5",
    )
    for name, value in extra.items():
        setattr(request, name, value)
    body = face.client().bind_axg(request).body
    assert body.code == "OK", body.message
    return body.secret_bind_dto


def test_update_axg_group_replaces_the_allow_list(face: Face) -> None:
    first, second = _group(face, C), _group(face, D)
    dto = _bind_axg(face, first, phone_no_b=B)
    assert face.detail(dto.subs_id).group_id == first
    assert (
        face.carrier.call(from_number=C, to_number=dto.secret_no, digits=[dto.extension]).outcome
        == "connected"
    )
    assert face.update(dto.subs_id, "updateAxgGroup", group_id=str(second)).code == "OK"
    assert face.detail(dto.subs_id).group_id == second
    assert face.carrier.call(from_number=C, to_number=dto.secret_no, digits=[dto.extension]).dialed is None
    member = face.carrier.call(from_number=D, to_number=dto.secret_no, digits=[dto.extension])
    assert (member.outcome, member.dialed) == ("connected", A)
    # B, a party, stays allowed.
    assert face.carrier.call(from_number=B, to_number=dto.secret_no, digits=[dto.extension]).dialed == A


def test_update_axg_group_is_refused_for_other_subscriptions_and_groups(face: Face) -> None:
    axb = face.bind_axb().secret_bind_dto
    group_id = _group(face, C)
    body = face.update(axb.subs_id, "updateAxgGroup", group_id=str(group_id))
    assert body.message == "OperateType: updateAxgGroup applies to AXG subscriptions only"
    dto = _bind_axg(face, group_id)
    theirs = face.theirs().create_axg_group(pls.CreateAxgGroupRequest(pool_key="US", numbers=D)).body
    body = face.update(dto.subs_id, "updateAxgGroup", group_id=str(theirs.group_id))
    assert body.message == "GroupId: no such group"
    assert face.detail(dto.subs_id).group_id == group_id


def test_call_restrict_bx_on_axg_refuses_b_but_not_the_group(face: Face) -> None:
    dto = _bind_axg(face, _group(face, C), phone_no_b=B, call_restrict="CONTROL_BX_DISABLE")
    assert face.carrier.call(from_number=B, to_number=dto.secret_no, digits=[dto.extension]).dialed is None
    member = face.carrier.call(from_number=C, to_number=dto.secret_no, digits=[dto.extension])
    assert (member.outcome, member.dialed) == ("connected", A)


def test_query_record_file_download_url_gives_the_recording_of_a_call(face: Face) -> None:
    dto = face.bind_axb(is_recording_enabled=True).secret_bind_dto
    call = face.carrier.call(from_number=A, to_number=dto.secret_no)
    assert call.outcome == "connected" and call.recorded
    callback = call.recording_callback or ""  # the recordingStatusCallback the <Dial> named
    assert (
        face.carrier.recording(callback_url=callback, call_sid=call.call_sid, recording_sid="RE" + "1" * 32)
        == 200
    )
    request = pls.QueryRecordFileDownloadUrlRequest(
        pool_key="US", call_id=call.call_sid, call_time="2026-01-01 00:00:00"
    )
    body = face.client().query_record_file_download_url(request).body
    assert (body.code, body.download_url.endswith("/Recordings/RE" + "1" * 32)) == ("OK", True)
    request.call_id = "CA" + "0" * 32
    assert face.client().query_record_file_download_url(request).body.code == "isv.NO_NOT_EXIST"
    theirs = face.theirs().query_record_file_download_url(
        pls.QueryRecordFileDownloadUrlRequest(
            pool_key="US", call_id=call.call_sid, call_time="2026-01-01 00:00:00"
        )
    )
    assert theirs.body.code == "isv.NO_NOT_EXIST"  # another owner's call does not exist for them
