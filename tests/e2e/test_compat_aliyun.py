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
    with serving(cli, base / "serve.log") as server:
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


def test_no_party_number_in_the_server_log_cli_output_or_sql(face: Face) -> None:
    # Runs last in the module: the log holds every request above.
    forms = [
        f
        for n in (A, B, BUYER, COURIER, MEMBER, STRANGER, CALLER, CALLEE)
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
