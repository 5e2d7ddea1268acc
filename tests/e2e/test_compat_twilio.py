"""The Twilio Proxy v1 face end to end: ``maskline serve`` (gunicorn) driven by the
unmodified ``twilio`` SDK through :func:`maskline.compat.twilio_client`, calls
placed by the carrier simulator.

One server for the module; credentials come from
``maskline apikey create --style twilio``. Every JSON answer the SDK got is
kept (through the client's own ``last_response``) and searched for the party
numbers at the end, as is the server's log.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pytest
import redis
from sqlalchemy import text
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from maskline.compat import twilio_client
from maskline.compat.twilio.interfaces import derived_sid
from maskline.db import make_engine
from maskline.sim.carrier import CarrierSimulator, HttpTransport
from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL, clean_tables
from tests.e2e.conftest import Cli, RunningServer, maskline_environ, serving
from tests.e2e.test_no_number_leaks import find_leaks
from tests.receiver import Receiver, receiving

AUTH_TOKEN = "e2e-twilio-auth-token"
RELAYS = ("+14155550100", "+14155550101", "+14155550102")
_serial = itertools.count(10)


def numbers() -> tuple[str, str]:
    """Two new party numbers (buyer, merchant)."""
    n = next(_serial)
    return f"+1415555{n:04d}", f"+1212555{n:04d}"


@dataclass
class Proxy:
    cli: Cli
    server: RunningServer
    carrier: CarrierSimulator
    account_sid: str
    auth_token: str
    client: Client
    used: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)

    def keep(self) -> None:
        response = self.client.http_client._test_only_last_response
        if response is not None:
            self.answers.append(response.text or "")

    def parties(self) -> tuple[str, str]:
        pair = numbers()
        self.used += pair
        return pair

    def credentials(self, owner: str, *scopes: str) -> dict[str, Any]:
        args = ["apikey", "create", "--name", "proxy", "--owner", owner, "--style", "twilio"]
        for scope in scopes or ("bindings:write", "bindings:read", "calls:write"):
            args += ["--scope", scope]
        issued: dict[str, Any] = json.loads(self.cli.out(*args))
        return issued


@pytest.fixture(scope="module")
def proxy(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    base = tmp_path_factory.mktemp("compat-twilio")
    instance = base / "instance"
    if TEST_DATABASE_URL:
        clean_tables(request.getfixturevalue("migrated_engine"))
    database_url = TEST_DATABASE_URL or f"sqlite:///{instance / 'maskline.sqlite3'}"
    if TEST_REDIS_URL:
        with redis.Redis.from_url(TEST_REDIS_URL) as client:
            client.flushdb()
    env = maskline_environ(
        instance,
        database_url,
        TEST_REDIS_URL,
        MASKLINE_TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        MASKLINE_LOG_LEVEL="DEBUG",
    )
    cli = Cli(instance_path=instance, env=env)
    cli.run("init")
    cli.run("pool", "add", *RELAYS)
    issued = json.loads(
        cli.out(
            "apikey",
            "create",
            "--name",
            "proxy",
            "--owner",
            "shop",
            "--style",
            "twilio",
            *("--scope", "bindings:write", "--scope", "bindings:read", "--scope", "calls:write"),
        )
    )
    try:
        with serving(cli, base / "serve.log") as server:
            # No MASKLINE_PUBLIC_URL: the server checks signatures against the
            # URL it was called at, which is the one the simulator signs.
            carrier = CarrierSimulator(
                transport=HttpTransport(server.base_url), auth_token=AUTH_TOKEN, public_url=server.base_url
            )
            client = twilio_client(server.base_url, issued["account_sid"], issued["auth_token"])
            yield Proxy(
                cli=cli,
                server=server,
                carrier=carrier,
                account_sid=issued["account_sid"],
                auth_token=issued["auth_token"],
                client=client,
            )
    finally:
        if TEST_REDIS_URL:
            with redis.Redis.from_url(TEST_REDIS_URL) as client:
                client.flushdb()


@pytest.fixture(scope="module")
def out_of_session() -> Iterator[Receiver]:
    """Receives the Service's out-of-session callbacks (sent by ``maskline worker``)."""
    with receiving() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def service(proxy: Proxy, out_of_session: Receiver) -> Any:
    """A Service with the pool's numbers: two by number, one by PN sid.

    Made before any call is refused: the server reads which numbers have an
    out-of-session URL on the first refusal, then every 30 s.
    """
    created = proxy.client.proxy.v1.services.create(
        unique_name="orders", default_ttl=3600, out_of_session_callback_url=out_of_session.url("/oos")
    )
    proxy.keep()
    numbers = proxy.client.proxy.v1.services(created.sid).phone_numbers
    for relay in RELAYS[:2]:
        numbers.create(phone_number=relay)
        proxy.keep()
    numbers.create(sid=derived_sid("phone_number", RELAYS[2]))
    proxy.keep()
    return created


def test_credentials_are_an_account_sid_and_token_mapped_onto_a_key(proxy: Proxy) -> None:
    assert proxy.account_sid.startswith("AC") and len(proxy.account_sid) == 34
    assert len(proxy.auth_token) == 32
    keys = [json.loads(line) for line in proxy.cli.out("apikey", "list", "--owner", "shop").splitlines()]
    assert [k["scopes"] for k in keys] == [["bindings:read", "bindings:write", "calls:write"]]


def test_a_session_connects_its_participants_until_it_is_closed(proxy: Proxy, service: Any) -> None:
    buyer, merchant = proxy.parties()
    sessions = proxy.client.proxy.v1.services(service.sid).sessions
    session = sessions.create(unique_name="order-1001", ttl=3600)
    proxy.keep()
    participants = sessions(session.sid).participants
    first = participants.create(identifier=buyer, friendly_name="buyer")
    proxy.keep()
    second = participants.create(identifier=merchant, friendly_name="merchant")
    proxy.keep()
    first = participants(first.sid).fetch()
    proxy.keep()

    assert first.proxy_identifier == second.proxy_identifier
    assert first.proxy_identifier in RELAYS
    # Masked: the country code and the last two digits only.
    assert (first.identifier, second.identifier) == (
        f"+1{'*' * 8}{buyer[-2:]}",
        f"+1{'*' * 8}{merchant[-2:]}",
    )

    call = proxy.carrier.call(from_number=buyer, to_number=first.proxy_identifier)
    assert (call.outcome, call.dialed, call.caller_id) == ("connected", merchant, first.proxy_identifier)
    assert proxy.carrier.call_status(
        call_sid=call.call_sid, from_number=buyer, to_number=first.proxy_identifier, duration=42
    ) in (200, 204)

    assert sessions(session.sid).fetch().status == "in-progress"
    closed = sessions(session.sid).update(status="closed")
    proxy.keep()
    assert closed.status == "closed"
    again = proxy.carrier.call(from_number=buyer, to_number=first.proxy_identifier)
    assert again.outcome == "rejected" and again.dialed is None

    interactions = sessions(session.sid).interactions.list()
    proxy.keep()
    assert [(i.inbound_resource_sid, i.type) for i in interactions] == [(call.call_sid, "voice")]
    (interaction,) = interactions
    assert (interaction.inbound_participant_sid, interaction.outbound_participant_sid) == (
        first.sid,
        second.sid,
    )
    assert json.loads(interaction.data) == {"duration": 42}
    assert interaction.sid == sessions(session.sid).interactions(interaction.sid).fetch().sid


def test_bad_credentials_are_refused_with_401(proxy: Proxy) -> None:
    wrong = twilio_client(proxy.server.base_url, proxy.account_sid, "0" * 32)
    with pytest.raises(TwilioRestException) as refused:
        wrong.proxy.v1.services.create(unique_name="not-allowed")
    assert (refused.value.status, refused.value.code) == (401, 20003)


def test_another_owners_service_is_not_found(proxy: Proxy, service: Any) -> None:
    other = proxy.credentials("other-shop")
    client = twilio_client(proxy.server.base_url, other["account_sid"], other["auth_token"])
    with pytest.raises(TwilioRestException) as missing:
        client.proxy.v1.services(service.sid).fetch()
    assert (missing.value.status, missing.value.code) == (404, 20404)
    assert client.proxy.v1.services.list() == []


def test_lists_page_on_maskline_s_own_url(proxy: Proxy, service: Any) -> None:
    sessions = proxy.client.proxy.v1.services(service.sid).sessions
    for n in range(3):
        sessions.create(unique_name=f"paged-{n}")
    page = sessions.page(page_size=2)
    proxy.keep()

    assert page.next_page_url is not None and page.next_page_url.startswith(proxy.server.base_url)
    names = [s.unique_name for s in sessions.list(page_size=2)]
    assert {"paged-0", "paged-1", "paged-2"} <= set(names)


def test_deleting_a_session_answers_204_and_it_is_gone(proxy: Proxy, service: Any) -> None:
    sessions = proxy.client.proxy.v1.services(service.sid).sessions
    session = sessions.create(unique_name="to-delete")

    assert sessions(session.sid).delete() is True
    assert proxy.client.http_client._test_only_last_response.status_code == 204
    with pytest.raises(TwilioRestException) as missing:
        sessions(session.sid).fetch()
    assert missing.value.status == 404


def test_a_bad_identifier_is_refused_naming_the_field(proxy: Proxy, service: Any) -> None:
    sessions = proxy.client.proxy.v1.services(service.sid).sessions
    session = sessions.create()
    with pytest.raises(TwilioRestException) as refused:
        sessions(session.sid).participants.create(identifier="not a number")
    assert (refused.value.status, refused.value.code) == (400, 20001)
    assert "Identifier" in refused.value.msg
    assert sessions(session.sid).participants.list() == []


def test_maskline_worker_sends_the_session_s_callback_signed(proxy: Proxy) -> None:
    buyer, merchant = proxy.parties()
    with receiving() as receiver:
        url = receiver.url("/proxy")
        service = proxy.client.proxy.v1.services.create(unique_name="with-callback", callback_url=url)
        proxy.client.proxy.v1.services(service.sid).phone_numbers.create(phone_number=RELAYS[1])
        sessions = proxy.client.proxy.v1.services(service.sid).sessions
        session = sessions.create()
        sessions(session.sid).participants.create(identifier=buyer)
        sessions(session.sid).participants.create(identifier=merchant)
        sessions(session.sid).update(status="closed")
        proxy.cli.run("worker", "--once")

    (got,) = receiver.received
    form = {k: v[-1] for k, v in parse_qs(got.body.decode()).items()}
    assert RequestValidator(proxy.auth_token).validate(url, form, got.headers["X-Twilio-Signature"])
    assert (form["sessionSid"], form["sessionStatus"]) == (session.sid, "closed")
    proxy.answers.append(got.body.decode())


def test_a_participant_names_the_proxy_number_both_share(proxy: Proxy, service: Any) -> None:
    buyer, merchant = proxy.parties()
    sessions = proxy.client.proxy.v1.services(service.sid).sessions
    session = sessions.create(unique_name="order-named")
    participants = sessions(session.sid).participants
    first = participants.create(identifier=buyer, proxy_identifier_sid=derived_sid("phone_number", RELAYS[2]))
    proxy.keep()
    second = participants.create(identifier=merchant)
    proxy.keep()

    assert first.proxy_identifier == second.proxy_identifier == RELAYS[2]
    call = proxy.carrier.call(from_number=merchant, to_number=RELAYS[2])
    assert (call.outcome, call.dialed, call.caller_id) == ("connected", buyer, RELAYS[2])


def test_a_call_no_session_routes_is_called_back_out_of_session(
    proxy: Proxy, service: Any, out_of_session: Receiver
) -> None:
    stranger, _unused = proxy.parties()
    call = proxy.carrier.call(from_number=stranger, to_number=RELAYS[0])
    assert (call.outcome, call.dialed) == ("rejected", None)  # maskline's refusal, whatever the callback says
    proxy.cli.run("worker", "--once")

    forms = [{k: v[-1] for k, v in parse_qs(got.body.decode()).items()} for got in out_of_session.received]
    (got,) = [
        g for g, f in zip(out_of_session.received, forms, strict=True) if f.get("CallSid") == call.call_sid
    ]
    form = {k: v[-1] for k, v in parse_qs(got.body.decode()).items()}
    assert RequestValidator(proxy.auth_token).validate(
        out_of_session.url("/oos"), form, got.headers["X-Twilio-Signature"]
    )
    assert (form["To"], form["From"], form["outOfSessionReason"]) == (
        RELAYS[0],
        f"+1{'*' * 8}{stranger[-2:]}",
        "no-session",
    )
    assert (form["AccountSid"], form["interactionServiceSid"]) == (proxy.account_sid, service.sid)
    proxy.answers += [g.body.decode() for g in out_of_session.received]


def test_no_party_number_in_any_answer_or_the_log(proxy: Proxy) -> None:
    assert proxy.answers, "the tests above kept the SDK's answers"
    forms = [f for number in proxy.used for f in (number, number[1:], number[2:])]
    leaks = [leak for text in proxy.answers for leak in find_leaks("answer", text, forms)]
    leaks += find_leaks("server log", proxy.server.log_text(), forms)
    engine = make_engine(proxy.cli.database_url)
    try:
        with engine.connect() as connection:
            for table in ("twilio_credentials", "twilio_services", "twilio_sessions", "twilio_participants"):
                rows = connection.execute(text(f"SELECT * FROM {table}")).all()  # noqa: S608 (our table names)
                assert rows, table
                leaks += find_leaks(table, repr(rows), forms)
    finally:
        engine.dispose()
    assert leaks == []
