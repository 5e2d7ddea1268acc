"""The Dyplsapi face end to end: ``maskline serve`` (gunicorn) on the test
PostgreSQL and Redis (SQLite and the embedded Redis without them), driven
by Alibaba's official SDK (unmodified), with calls placed through the
carrier simulator.

One server for the module; each test binds parties of its own.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from alibabacloud_dyplsapi20170525 import models as pls
from alibabacloud_dyplsapi20170525.client import Client
from sqlalchemy import select

import maskline.models  # noqa: F401 (every table on Base.metadata)
from maskline.db import Base, make_engine
from maskline.events.interfaces import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from maskline.sim.carrier import CarrierSimulator, HttpTransport
from tests.aliyun_helpers import sdk, sdk_error, signed_post
from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL, clean_tables
from tests.e2e.conftest import Cli, RunningServer, maskline_environ, serving
from tests.e2e.test_no_number_leaks import find_leaks
from tests.receiver import Receiver, receiving

AUTH_TOKEN = "e2e-twilio-auth-token"
PUBLIC_URL = "https://maskline.example.test"
RELAYS = ("+14155550100", "+14155550101")
BEIJING = dt.timezone(dt.timedelta(hours=8))
A, B = "+14155550132", "+12125550143"  # the buyer and merchant of the leak search's forms
BUYER, COURIER = "+13125550154", "+16175550165"
MEMBER, STRANGER = "+16175550176", "+17185550187"  # a number of AXG group G, and one outside it
CALLER, CALLEE = "+12065550198", "+15035550109"  # the parties of the receipt's call
# Parties of the PoolKey, PhoneNoX and CallRestrict tests.
SHOPPER, SELLER, RIDER, HELPER = "+19175550121", "+14045550132", "+17025550143", "+13055550154"
VENDOR, CLIENT = "+15125550165", "+16195550176"
NEW_CLIENT = "+16195550187"
REPORT_SECRET = "e2e-receipt-secret"


def expiration(hours: int) -> str:
    return (
        (dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours))
        .astimezone(BEIJING)
        .strftime("%Y-%m-%d %H:%M:%S")
    )


@dataclass
class Face:
    cli: Cli
    server: RunningServer
    carrier: CarrierSimulator
    key_id: str
    secret: str
    receiver: Receiver

    @property
    def endpoint(self) -> str:
        return self.server.base_url.removeprefix("http://")

    def client(self) -> Client:
        return sdk(self.endpoint, self.key_id, self.secret)


@pytest.fixture(scope="module")
def report_receiver() -> Iterator[Receiver]:
    """Where the server's worker pushes SecretReport receipts."""
    with receiving() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def face(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Face]:
    base = tmp_path_factory.mktemp("aliyun-e2e")
    if TEST_DATABASE_URL:
        clean_tables(request.getfixturevalue("migrated_engine"))
    if TEST_REDIS_URL:
        with redis.Redis.from_url(TEST_REDIS_URL) as client:
            client.flushdb()
    receiver = request.getfixturevalue("report_receiver")
    env = maskline_environ(
        base / "instance",
        TEST_DATABASE_URL or f"sqlite:///{base / 'instance' / 'maskline.sqlite3'}",
        TEST_REDIS_URL,
        MASKLINE_TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        MASKLINE_PUBLIC_URL=PUBLIC_URL,
        MASKLINE_LOG_LEVEL="DEBUG",
        MASKLINE_ALIYUN_REPORT_URL=receiver.url("/secret-report"),
        MASKLINE_ALIYUN_REPORT_SECRET=REPORT_SECRET,
    )
    cli = Cli(instance_path=base / "instance", env=env)
    cli.run("init")
    cli.run("pool", "add", *RELAYS)
    issued = json.loads(
        cli.out(
            "apikey",
            "create",
            "--style",
            "aliyun",
            "--name",
            "orders",
            "--owner",
            "shop-1",
            "--scope",
            "bindings:write",
            "--scope",
            "bindings:read",
        )
    )
    # One web worker: a CallRestrict set through one process applies in
    # another only within CACHE_SECONDS (maskline/compat/aliyun/restrict.py),
    # and these tests call through X right after setting one.
    with serving(cli, base / "serve.log", workers=1) as server:
        carrier = CarrierSimulator(
            transport=HttpTransport(server.base_url), auth_token=AUTH_TOKEN, public_url=PUBLIC_URL
        )
        yield Face(cli, server, carrier, issued["access_key_id"], issued["access_key_secret"], receiver)
    if TEST_REDIS_URL:
        with redis.Redis.from_url(TEST_REDIS_URL) as client:
            client.flushdb()


def test_bind_axb_call_update_and_unbind(face: Face) -> None:
    client = face.client()
    bound = client.bind_axb(
        pls.BindAxbRequest(
            pool_key="US", phone_no_a=A, phone_no_b=B, expiration=expiration(24), out_order_id="order-1"
        )
    ).body
    assert bound.code == "OK"
    x, subs_id = bound.secret_bind_dto.secret_no, bound.secret_bind_dto.subs_id

    call = face.carrier.call(from_number=A, to_number=x)
    assert (call.outcome, call.dialed, call.caller_id) == ("connected", B, x)

    later = expiration(72)
    update = pls.UpdateSubscriptionRequest(
        pool_key="US", subs_id=subs_id, phone_no_x=x, operate_type="updateExpire", expiration=later
    )
    assert client.update_subscription(update).body.code == "OK"
    detail = client.query_subscription_detail(
        pls.QuerySubscriptionDetailRequest(pool_key="US", subs_id=subs_id, phone_no_x=x)
    ).body.secret_bind_detail_dto
    assert (detail.expire_date, detail.status) == (later, 1)

    unbind = pls.UnbindSubscriptionRequest(pool_key="US", subs_id=subs_id, secret_no=x)
    assert client.unbind_subscription(unbind).body.code == "OK"
    refused = face.carrier.call(from_number=A, to_number=x)
    assert refused.outcome == "rejected" and refused.dialed is None


def test_bind_axn_extension_then_a_call_with_the_extension_connects(face: Face) -> None:
    bound = (
        face.client()
        .bind_axn_extension(
            pls.BindAxnExtensionRequest(
                pool_key="US",
                phone_no_a=BUYER,
                phone_no_b=COURIER,
                expiration=expiration(24),
                out_id="order-2",
            )
        )
        .body
    )
    assert bound.code == "OK"
    dto = bound.secret_bind_dto
    assert dto.extension
    call = face.carrier.call(from_number=COURIER, to_number=dto.secret_no, digits=[dto.extension])
    assert (call.outcome, call.dialed, call.caller_id) == ("connected", BUYER, dto.secret_no)


def test_bind_axg_connects_a_group_member_with_the_extension_and_refuses_others(face: Face) -> None:
    client = face.client()
    group = client.create_axg_group(
        pls.CreateAxgGroupRequest(pool_key="US", name="couriers", numbers=MEMBER)
    ).body
    assert group.code == "OK"
    bound = client.bind_axg(
        pls.BindAxgRequest(
            pool_key="US",
            group_id=str(group.group_id),
            phone_no_a=BUYER,
            expiration=expiration(24),
            out_order_id="order-3",
        )
    ).body
    assert bound.code == "OK"
    x, extension = bound.secret_bind_dto.secret_no, bound.secret_bind_dto.extension
    assert extension

    member = face.carrier.call(from_number=MEMBER, to_number=x, digits=[extension])
    assert (member.outcome, member.dialed, member.caller_id) == ("connected", BUYER, x)
    # Outside the group, the right extension is answered as a wrong one (nothing
    # tells a stranger it exists), until the attempts run out: never connected.
    stranger = face.carrier.call(from_number=STRANGER, to_number=x, digits=[extension] * 3)
    assert (stranger.outcome, stranger.dialed) == ("rejected", None), stranger.said


def test_maskline_worker_pushes_the_call_receipt_masked_and_signed(face: Face) -> None:
    bound = (
        face.client()
        .bind_axb(
            pls.BindAxbRequest(
                pool_key="US",
                phone_no_a=CALLER,
                phone_no_b=CALLEE,
                expiration=expiration(24),
                out_order_id="order-4",
            )
        )
        .body
    )
    x, subs_id = bound.secret_bind_dto.secret_no, bound.secret_bind_dto.subs_id
    call = face.carrier.call(from_number=CALLER, to_number=x)
    assert call.outcome == "connected"
    status = face.carrier.call_status(
        call_sid=call.call_sid, from_number=CALLER, to_number=x, status="completed", duration=12
    )
    assert status == 200

    face.cli.run("worker", "--once")
    ours = [r for r in face.receiver.received if json.loads(r.body)[0]["sub_id"] == subs_id]
    assert len(ours) == 1
    [record] = json.loads(ours[0].body)
    assert verify(
        REPORT_SECRET, ours[0].headers[TIMESTAMP_HEADER], ours[0].body, ours[0].headers[SIGNATURE_HEADER]
    )
    assert (record["pool_key"], record["call_id"], record["out_id"]) == ("US", call.call_sid, "order-4")
    assert (record["phone_no"], record["peer_no"], record["secret_no"]) == ("+1**********", "+1**********", x)
    assert (record["call_type"], record["release_cause"]) == (0, 16)


def test_a_wrong_signature_an_old_timestamp_and_a_reused_nonce_are_refused(face: Face) -> None:
    request = pls.BindAxbRequest(pool_key="US", phone_no_a=A, phone_no_b=B, expiration=expiration(24))
    wrong = sdk(face.endpoint, face.key_id, "not-the-secret")
    assert sdk_error(lambda: wrong.bind_axb(request)) == (400, "SignatureDoesNotMatch")

    query = {"PoolKey": "US", "SubsId": "bd_aaaaaaaaaaaaaaaa"}
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    status, body = signed_post(
        face.endpoint, face.key_id, face.secret, "QuerySubscriptionDetail", query, when=old
    )
    assert (status, body["Code"]) == (400, "InvalidTimeStamp.Expired")

    first = signed_post(
        face.endpoint, face.key_id, face.secret, "QuerySubscriptionDetail", query, nonce="e2e-nonce-0001"
    )
    again = signed_post(
        face.endpoint, face.key_id, face.secret, "QuerySubscriptionDetail", query, nonce="e2e-nonce-0001"
    )
    assert (first[0], first[1]["Code"]) == (200, "isv.NO_NOT_EXIST")
    assert (again[0], again[1]["Code"]) == (400, "SignatureNonceUsed")


def test_a_pool_key_managed_with_the_cli_limits_the_numbers_bound(face: Face) -> None:
    added = face.cli.out("aliyun", "pool", "add", "FC-E2E-1", RELAYS[1], "--owner", "shop-1")
    assert added == f"added 1 number(s) to FC-E2E-1 of shop-1: {RELAYS[1]}"
    listed = json.loads(face.cli.out("aliyun", "pool", "list", "--owner", "shop-1", "--json"))
    assert listed == [{"owner": "shop-1", "pool_key": "FC-E2E-1", "number": RELAYS[1], "status": "active"}]
    refused = face.cli.run("aliyun", "pool", "add", "FC-E2E-1", HELPER, "--owner", "shop-1", ok=False)
    assert "NUMBER[0] is not a relay number of the pool" in refused.stderr
    client = face.client()
    for seller in (SELLER, RIDER):
        bound = client.bind_axb(
            pls.BindAxbRequest(
                pool_key="FC-E2E-1",
                phone_no_a=SHOPPER,
                phone_no_b=seller,
                expiration=expiration(24),
                out_order_id="order-5",
            )
        ).body
        if seller == SELLER:
            assert (bound.code, bound.secret_bind_dto.secret_no) == ("OK", RELAYS[1])
        else:  # SHOPPER holds the PoolKey's only number: RELAYS[0] is not this PoolKey's
            assert bound.code == "isv.NO_AVAILABLE_NUMBER"
    removed = face.cli.out("aliyun", "pool", "remove", "FC-E2E-1", RELAYS[1], "--owner", "shop-1")
    assert removed == f"removed 1 number(s) from FC-E2E-1 of shop-1: {RELAYS[1]}"
    assert json.loads(face.cli.out("aliyun", "pool", "list", "--json")) == []
    audit = face.cli.out("audit", "verify")
    assert audit  # the chain, with the pool changes in it, still verifies


def test_phone_no_x_and_call_restrict_through_the_carrier(face: Face) -> None:
    client = face.client()
    named = RELAYS[0]
    bound = client.bind_axb(
        pls.BindAxbRequest(
            pool_key="US",
            phone_no_a=HELPER,
            phone_no_b=RIDER,
            phone_no_x=named,
            expiration=expiration(24),
            out_order_id="order-6",
            call_restrict="CONTROL_AX_DISABLE",
        )
    ).body
    assert (bound.code, bound.secret_bind_dto.secret_no) == ("OK", named)
    subs_id = bound.secret_bind_dto.subs_id
    refused = face.carrier.call(from_number=HELPER, to_number=named)
    assert (refused.outcome, refused.dialed) == ("rejected", None)
    connected = face.carrier.call(from_number=RIDER, to_number=named)
    assert (connected.outcome, connected.dialed, connected.caller_id) == ("connected", HELPER, named)
    detail = client.query_subscription_detail(
        pls.QuerySubscriptionDetailRequest(pool_key="US", subs_id=subs_id)
    ).body.secret_bind_detail_dto
    assert detail.call_restrict == "CONTROL_AX_DISABLE"
    # The same X again for a party already on it: refused, never another number.
    again = client.bind_axb(
        pls.BindAxbRequest(
            pool_key="US",
            phone_no_a=HELPER,
            phone_no_b=SELLER,
            phone_no_x=named,
            expiration=expiration(24),
            out_order_id="order-7",
        )
    ).body
    assert again.code == "isv.BIND_CONFLICT" and f"PhoneNoX {named}" in again.message


def test_update_call_restrict_refuses_b_through_the_carrier(face: Face) -> None:
    client = face.client()
    bound = client.bind_axb(
        pls.BindAxbRequest(
            pool_key="US", phone_no_a=VENDOR, phone_no_b=CLIENT, expiration=expiration(24), out_id="order-8"
        )
    ).body
    x, subs_id = bound.secret_bind_dto.secret_no, bound.secret_bind_dto.subs_id
    update = pls.UpdateSubscriptionRequest(
        pool_key="US", subs_id=subs_id, operate_type="updateCallRestrict", call_restrict="CONTROL_BX_DISABLE"
    )
    assert client.update_subscription(update).body.code == "OK"
    refused = face.carrier.call(from_number=CLIENT, to_number=x)
    assert (refused.outcome, refused.dialed) == ("rejected", None)
    connected = face.carrier.call(from_number=VENDOR, to_number=x)
    assert (connected.outcome, connected.dialed) == ("connected", CLIENT)
    # B replaced in place: the new B is B (restricted too), the old one reaches no one.
    update.operate_type, update.call_restrict = "updateNoB", None
    update.phone_no_b = NEW_CLIENT
    assert client.update_subscription(update).body.code == "OK"
    assert face.carrier.call(from_number=VENDOR, to_number=x).dialed == NEW_CLIENT
    restricted = face.carrier.call(from_number=NEW_CLIENT, to_number=x)
    assert (restricted.outcome, restricted.dialed) == ("rejected", None)
    # The old B is a stranger to X now (X's extensions may still ask it for one).
    stranger = face.carrier.call(from_number=CLIENT, to_number=x)
    assert stranger.outcome in ("rejected", "gather") and stranger.dialed is None


def test_no_party_number_in_the_server_log_cli_output_or_sql(face: Face) -> None:
    # Runs last in the module: the log holds every request above.
    forms = [
        f
        for n in (
            A,
            B,
            BUYER,
            COURIER,
            MEMBER,
            STRANGER,
            NEW_CLIENT,
            CALLER,
            CALLEE,
            SHOPPER,
            SELLER,
            RIDER,
            HELPER,
            VENDOR,
            CLIENT,
        )
        for f in (n, n[1:], n[2:], f"{n[2:5]}-{n[5:8]}-{n[8:]}")
    ]
    log = face.server.log_text()
    assert '"POST /" 200' in log  # the requests above are in it
    outputs = " ".join(out + err for _cmd, out, err in face.cli.outputs)
    engine = make_engine(face.cli.database_url)
    try:
        with engine.connect() as conn:
            rows = " ".join(
                repr(conn.execute(select(table)).all())
                for table in Base.metadata.sorted_tables
                if table.name.startswith("aliyun_")
                or table.name in ("audit_log", "bindings", "binding_members", "outbox_events", "interactions")
            )
    finally:
        engine.dispose()
    assert "aliyun_access_keys" in {t.name for t in Base.metadata.sorted_tables}
    assert find_leaks("serve.log", log, forms) == []
    receipts = b" ".join(r.body for r in face.receiver.received).decode()
    assert "secret_no" in receipts  # the receipt test's push is in it
    assert find_leaks("cli output", outputs, forms) == []
    assert find_leaks("sql", rows, forms) == []
    assert find_leaks("receipts", receipts, forms) == []
