"""The Twilio webhooks end to end: ``maskline serve`` (gunicorn) driven over HTTP.

One server for the module (it takes seconds to start), on the test
PostgreSQL and Redis when MASKLINE_TEST_DATABASE_URL / MASKLINE_TEST_REDIS_URL
are set, on SQLite and the embedded Redis otherwise. The server believes
Twilio calls https://maskline.example.test (MASKLINE_PUBLIC_URL) while it
listens on 127.0.0.1, as behind a TLS-terminating proxy: every request is
signed for the public URL and sent to the bind address. Pool and bindings
are set up with the ``maskline`` CLI; calls and texts come from the carrier
simulator, in process (CarrierSimulator over HTTP) or as ``maskline sim``.

Tests share the server: a test that changes a binding (ends it) binds
parties of its own (``fresh``); the module's bindings (``axb``, ``axe``) are
only used in ways that leave them as they were. The last test reads the
server's whole log for party numbers.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import secrets
import string
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator

from maskline.db import Base, make_engine
from maskline.numbers.models import Binding
from maskline.redis_backend import read_embedded_port
from maskline.sim.carrier import (
    SMS_PATH,
    SMS_STATUS_PATH,
    VOICE_PATH,
    VOICE_STATUS_PATH,
    CarrierSimulator,
    HttpTransport,
)
from maskline.sim.twiml import TwimlOutcome, parse_twiml
from maskline.webhooks.models import Interaction
from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL, clean_tables
from tests.e2e.conftest import Cli, RunningServer, maskline_environ, serving, wait_for
from tests.e2e.test_no_number_leaks import find_leaks

AUTH_TOKEN = "e2e-twilio-auth-token"
PUBLIC_URL = "https://maskline.example.test"
RELAYS = ("+14155550100", "+14155550101", "+14155550102")
EXTENSION_PATH = "/webhooks/twilio/voice/extension"
ACCOUNT_SID = "AC" + "0" * 32

# Party numbers: 555-01NN in four area codes, a new NN for each set.
_serial = itertools.count(10)


@dataclass(frozen=True)
class Parties:
    buyer: str
    merchant: str
    courier: str
    stranger: str

    @classmethod
    def next(cls) -> Parties:
        n = next(_serial)
        assert n < 100, "out of 555-01NN numbers"
        return cls(*(f"+1{area}55501{n:02d}" for area in ("415", "212", "312", "617")))

    def numbers(self) -> tuple[str, ...]:
        return (self.buyer, self.merchant, self.courier, self.stranger)


@dataclass(frozen=True)
class Bound:
    """A binding as ``maskline bind`` printed it, with its parties."""

    id: str
    relay_number: str
    extension: str | None
    parties: Parties


@dataclass(frozen=True)
class Step:
    """One genuine webhook request, and who it reaches."""

    path: str
    form: dict[str, str]
    target: str

    @property
    def sid(self) -> str:
        return self.form.get("CallSid") or self.form["MessageSid"]


@dataclass
class Relay:
    """The running server, the CLI beside it, and clients of its Redis and SQL."""

    cli: Cli
    server: RunningServer
    redis: Any
    engine: Engine
    transport: HttpTransport
    carrier: CarrierSimulator
    used: list[str] = field(default_factory=list)

    def parties(self) -> Parties:
        """New party numbers, remembered for the log check."""
        parties = Parties.next()
        self.used += parties.numbers()
        return parties

    def bind(self, mode: str, parties: Parties) -> Bound:
        args = ["bind", "--order", f"e2e-{secrets.token_hex(4)}", "--mode", mode]
        if mode == "axb":
            args += ["--party", f"buyer={parties.buyer}", "--party", f"merchant={parties.merchant}"]
        else:
            args += ["--party", f"buyer={parties.buyer}", "--allow", parties.courier]
        body = json.loads(self.cli.out(*args))
        return Bound(
            id=body["id"], relay_number=body["relay_number"], extension=body["extension"], parties=parties
        )

    def sim(self, *args: str) -> dict[str, Any]:
        """``maskline sim ARGS`` against the server; its JSON answer."""
        url = ["--url", self.server.base_url, "--public-url", PUBLIC_URL, "--show-numbers"]
        result: dict[str, Any] = json.loads(self.cli.out("sim", *args, *url))
        return result

    def post(
        self, path: str, form: dict[str, str], *, signature: str | None, **headers: str
    ) -> tuple[int, str]:
        """A POST with exactly the signature given (None: no signature header)."""
        if signature is not None:
            headers["X-Twilio-Signature"] = signature
        return self.transport.post(path, form, headers)

    def state(self) -> dict[str, object]:
        """Every Redis key with its value, and the row count of every table."""
        import maskline.models  # noqa: F401 (every table on Base.metadata)

        with self.engine.connect() as conn:
            rows: dict[str, object] = {
                f"rows in {t.name}": int(conn.execute(select(func.count()).select_from(t)).scalar_one())
                for t in Base.metadata.sorted_tables
            }
        return {**redis_contents(self.redis), **rows}

    def interaction(self, sid: str) -> Interaction | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(Interaction, sid)


def redis_contents(client: Any) -> dict[str, object]:
    """Every key and its value, in a form that does not depend on Redis's
    internal order (a hash's field order changes as Redis rehashes it)."""
    contents: dict[str, object] = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        value: object
        if kind == "string":
            value = client.get(key)
        elif kind == "hash":
            value = sorted(client.hgetall(key).items())
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "set":
            value = sorted(client.smembers(key))
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        else:
            value = kind  # maskline writes none of the other types
        contents[f"redis {key!r} ({kind})"] = value
    return contents


def changes(before: dict[str, object], after: dict[str, object]) -> list[str]:
    """What differs between two :meth:`Relay.state` snapshots, by name."""
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def routing_changes(before: dict[str, object], after: dict[str, object]) -> list[str]:
    """:func:`changes`, but the alert counters and the refusal tallies: the
    server's alerts thread writes both a moment after the calls that made
    them (it gathers signals for a quarter second), so a snapshot may catch
    an earlier call's. That a retry or a forged request adds no signal is
    checked where the alerts can be drained
    (tests/integration/test_alerts_webhooks.py)."""
    return [c for c in changes(before, after) if not c.startswith(("redis b'ml:alert:", "redis b'ml:tally:"))]


@pytest.fixture(scope="module")
def relay(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    base = tmp_path_factory.mktemp("webhooks-over-http")
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
        MASKLINE_PUBLIC_URL=PUBLIC_URL,
        # The log check reads everything the server writes.
        MASKLINE_LOG_LEVEL="DEBUG",
        # The module's two bindings take every test's calls and texts; quotas
        # have integration tests of their own.
        MASKLINE_CALLS_PER_HOUR="10000",
        MASKLINE_CALLS_PER_DAY="10000",
        MASKLINE_SMS_PER_HOUR="10000",
        MASKLINE_SMS_PER_DAY="10000",
    )
    cli = Cli(instance_path=instance, env=env)
    cli.run("init")
    cli.run("pool", "add", *RELAYS)
    with serving(cli, base / "serve.log") as server:
        if TEST_REDIS_URL:
            client = redis.Redis.from_url(TEST_REDIS_URL)
        else:
            port = read_embedded_port(instance)  # the embedded Redis `maskline serve` started
            assert port is not None
            client = redis.Redis(host="127.0.0.1", port=port)
        engine = make_engine(database_url)
        transport = HttpTransport(server.base_url)
        carrier = CarrierSimulator(transport=transport, auth_token=AUTH_TOKEN, public_url=PUBLIC_URL)
        try:
            yield Relay(
                cli=cli, server=server, redis=client, engine=engine, transport=transport, carrier=carrier
            )
        finally:
            if TEST_REDIS_URL:
                client.flushdb()
            client.close()
            engine.dispose()


@pytest.fixture(scope="module")
def axb(relay: Relay) -> Bound:
    """Buyer and merchant on one relay number (not to be ended)."""
    return relay.bind("axb", relay.parties())


@pytest.fixture(scope="module")
def axe(relay: Relay) -> Bound:
    """The buyer behind an extension, the courier on its allow-list (not to be ended)."""
    return relay.bind("axe", relay.parties())


@pytest.fixture
def fresh(relay: Relay) -> Parties:
    """Party numbers no other test uses."""
    return relay.parties()


def voice_form(caller: str, relay_number: str) -> dict[str, str]:
    """A new incoming call, as Twilio posts it."""
    return {
        "CallSid": "CA" + secrets.token_hex(16),
        "AccountSid": ACCOUNT_SID,
        "From": caller,
        "To": relay_number,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }


def genuine(kind: str, axb: Bound, axe: Bound) -> Step:
    """A new request of ``kind`` that reaches someone: the merchant calling,
    the courier keying the extension, the buyer texting."""
    if kind == "voice":
        return Step(VOICE_PATH, voice_form(axb.parties.merchant, axb.relay_number), axb.parties.buyer)
    if kind == "extension":
        assert axe.extension is not None
        form = {**voice_form(axe.parties.courier, axe.relay_number), "Digits": axe.extension}
        return Step(f"{EXTENSION_PATH}?attempt=1", form, axe.parties.buyer)
    assert kind == "sms"
    sid = "SM" + secrets.token_hex(16)
    form = {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": axb.parties.buyer,
        "To": axb.relay_number,
        "Body": "see you at five",
        "NumMedia": "0",
        "ApiVersion": "2010-04-01",
    }
    return Step(SMS_PATH, form, axb.parties.merchant)


def reached(body: str) -> str | None:
    """The number a TwiML answer dials or texts, if any."""
    twiml = parse_twiml(body)
    if twiml.dial_number:
        return twiml.dial_number
    return next((m["to"] for m in twiml.messages if m.get("to")), None)


def refused_call(body: str) -> TwimlOutcome:
    """The TwiML of a call that reaches no one: something said, then hang up."""
    twiml = parse_twiml(body)
    assert twiml.dial_number is None and twiml.gather_action is None, body
    assert twiml.said and twiml.hangup, body
    return twiml


# -- who reaches whom ------------------------------------------------------------


@pytest.mark.parametrize(("caller", "target"), [("merchant", "buyer"), ("buyer", "merchant")])
def test_calls_connect_both_ways_with_the_relay_number_as_caller_id(
    relay: Relay, axb: Bound, caller: str, target: str
) -> None:
    result = relay.carrier.call(from_number=getattr(axb.parties, caller), to_number=axb.relay_number)

    assert (result.outcome, result.http_status) == ("connected", 200)
    assert (result.dialed, result.caller_id) == (getattr(axb.parties, target), axb.relay_number)


@pytest.mark.parametrize(("sender", "target"), [("buyer", "merchant"), ("merchant", "buyer")])
def test_texts_are_forwarded_both_ways_from_the_relay_number_without_numbers_or_links(
    relay: Relay, axb: Bound, sender: str, target: str
) -> None:
    own = getattr(axb.parties, sender)
    body = f"call me on ({own[2:5]}) {own[5:8]}-{own[8:]} or see https://shop.example.com/o/1"

    result = relay.carrier.sms(from_number=own, to_number=axb.relay_number, body=body)

    assert (result.outcome, result.http_status) == ("forwarded", 200)
    assert result.messages == [
        {
            "to": getattr(axb.parties, target),
            "from": axb.relay_number,
            "body": "call me on [phone removed] or see [link removed]",
        }
    ]


def test_maskline_sim_calls_and_texts_through_the_server(relay: Relay, axb: Bound) -> None:
    call = relay.sim("call", "--from", axb.parties.merchant, "--to", axb.relay_number)
    text = relay.sim("sms", "--from", axb.parties.buyer, "--to", axb.relay_number, "--body", "on my way")

    assert (call["outcome"], call["dialed"], call["caller_id"]) == (
        "connected",
        axb.parties.buyer,
        axb.relay_number,
    )
    assert text["outcome"] == "forwarded"
    assert text["messages"] == [{"to": axb.parties.merchant, "from": axb.relay_number, "body": "on my way"}]


def test_the_courier_keys_the_extension_and_the_buyer_calls_the_courier_back(
    relay: Relay, axe: Bound
) -> None:
    assert axe.extension is not None
    courier, buyer = axe.parties.courier, axe.parties.buyer

    first = relay.carrier.call(from_number=courier, to_number=axe.relay_number, digits=[axe.extension])
    back = relay.carrier.call(from_number=buyer, to_number=axe.relay_number)

    assert (first.outcome, first.steps) == ("connected", 2)  # asked for the extension, then dialed
    assert (first.dialed, first.caller_id) == (buyer, axe.relay_number)
    assert (back.outcome, back.dialed, back.caller_id) == ("connected", courier, axe.relay_number)


def test_a_caller_off_the_allow_list_keying_the_right_extension_reaches_no_one(
    relay: Relay, axe: Bound, fresh: Parties
) -> None:
    assert axe.extension is not None

    result = relay.carrier.call(
        from_number=fresh.stranger, to_number=axe.relay_number, digits=[axe.extension, axe.extension]
    )

    # Told the extension is not valid, as for a wrong one; asked once more; goodbye.
    assert (result.outcome, result.http_status, result.steps) == ("rejected", 200, 3)
    assert result.dialed is None
    assert any("not valid" in said for said in result.said)


def test_a_stranger_reaches_no_one_by_call_or_text(relay: Relay, axb: Bound, fresh: Parties) -> None:
    call_form = voice_form(fresh.stranger, axb.relay_number)

    status, body = relay.carrier.signed_post(VOICE_PATH, call_form)
    text = relay.carrier.sms(from_number=fresh.stranger, to_number=axb.relay_number, body="who is this?")

    assert status == 200
    assert "Sorry" in refused_call(body).said[0]
    assert (text.outcome, text.http_status, text.messages) == ("refused", 200, [])


@pytest.mark.parametrize("ending", ["expired", "unbound"])
def test_an_ended_binding_connects_no_one(relay: Relay, fresh: Parties, ending: str) -> None:
    bound = relay.bind("axb", fresh)
    assert relay.carrier.call(from_number=fresh.merchant, to_number=bound.relay_number).outcome == "connected"

    if ending == "expired":
        # As if its time had come: expiry a minute ago in SQL, then the
        # worker's sweep (the job that ends expired bindings) runs once.
        with relay.engine.begin() as conn:
            past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
            changed = conn.execute(update(Binding).where(Binding.id == bound.id).values(expires_at=past))
        assert changed.rowcount == 1
        # (No bind runs meanwhile, so no claim needs a grace period to commit.)
        assert relay.cli.out("bindings", "sweep", "--grace", "0").startswith("expired 1,")
    else:
        relay.cli.run("unbind", bound.id)
    with relay.engine.connect() as conn:
        assert conn.execute(select(Binding.status).where(Binding.id == bound.id)).scalar_one() == ending

    for caller in (fresh.merchant, fresh.buyer):
        status, body = relay.carrier.signed_post(VOICE_PATH, voice_form(caller, bound.relay_number))
        assert status == 200
        refused_call(body)
    text = relay.carrier.sms(from_number=fresh.buyer, to_number=bound.relay_number, body="still there?")
    assert (text.outcome, text.messages) == ("refused", [])


# -- signatures, retries and replays -----------------------------------------------


def _forge(forgery: str, step: Step, someone_else: str) -> str | None:
    url = PUBLIC_URL + step.path
    if forgery == "missing":
        return None
    if forgery == "garbage":
        return "bm90IGEgc2lnbmF0dXJl"
    if forgery == "another auth token":
        return RequestValidator("not-" + AUTH_TOKEN).compute_signature(url, step.form)
    assert forgery == "signed over other fields"
    # A genuine signature of the same request from someone else, From swapped.
    return RequestValidator(AUTH_TOKEN).compute_signature(url, {**step.form, "From": someone_else})


@pytest.mark.parametrize("forgery", ["missing", "garbage", "another auth token", "signed over other fields"])
@pytest.mark.parametrize("kind", ["voice", "extension", "sms"])
def test_a_forged_request_gets_403_and_changes_nothing(
    relay: Relay, axb: Bound, axe: Bound, fresh: Parties, kind: str, forgery: str
) -> None:
    step = genuine(kind, axb, axe)
    before = relay.state()

    status, body = relay.post(step.path, step.form, signature=_forge(forgery, step, fresh.stranger))

    assert status == 403
    assert step.target not in body
    assert routing_changes(before, relay.state()) == []
    # Nothing was stored under its sid either: the genuine request is answered
    # afresh (and leaves its trace, as the forgery did not).
    status, body = relay.carrier.signed_post(step.path, step.form)
    assert (status, reached(body)) == (200, step.target)
    assert changes(before, relay.state()) != []


@pytest.mark.parametrize(
    ("signed_for", "headers"),
    [
        ("{bind}", {}),
        ("http://maskline.example.test", {}),
        (
            "https://attacker.example.test",
            {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "attacker.example.test"},
        ),
    ],
    ids=["the bind address", "the public host over http", "a forwarded host"],
)
def test_only_a_signature_for_the_public_url_is_accepted(
    relay: Relay, axb: Bound, axe: Bound, signed_for: str, headers: dict[str, str]
) -> None:
    step = genuine("voice", axb, axe)
    url = signed_for.format(bind=relay.server.base_url) + step.path
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, step.form)

    refused = relay.post(step.path, step.form, signature=signature, **headers)
    accepted = relay.carrier.signed_post(step.path, step.form)  # signed for PUBLIC_URL

    assert refused[0] == 403
    assert (accepted[0], reached(accepted[1])) == (200, step.target)


@pytest.mark.parametrize("kind", ["voice", "extension", "sms"])
def test_a_twilio_retry_while_live_gets_the_same_answer(
    relay: Relay, axb: Bound, axe: Bound, kind: str
) -> None:
    step = genuine(kind, axb, axe)
    first = relay.carrier.signed_post(step.path, step.form)
    after_first = relay.state()

    retry = relay.carrier.signed_post(step.path, step.form)

    assert (first[0], reached(first[1])) == (200, step.target)
    assert retry == first
    # Answered from the stored decision: not decided (nor counted) again.
    assert routing_changes(after_first, relay.state()) == []


def _finish(relay: Relay, step: Step, answer: str) -> int:
    """The status callback Twilio sends when the call ends, or the forwarded text is delivered."""
    if step.path == SMS_PATH:
        form = {"MessageSid": "SM" + secrets.token_hex(16), "AccountSid": ACCOUNT_SID}
        form |= {"MessageStatus": "delivered", "From": step.form["To"], "To": step.target}
        # The forwarded message's callback goes to its <Message action>, which names the incoming one.
        message = ET.fromstring(answer).find("Message")  # noqa: S314 (TwiML from the server under test)
        assert message is not None and message.get("action", "").startswith(
            f"{SMS_STATUS_PATH}?ref={step.sid}"
        )
        return relay.carrier.signed_post(message.get("action", ""), form)[0]
    return relay.carrier.call_status(
        call_sid=step.sid, from_number=step.form["From"], to_number=step.form["To"], duration=42
    )


@pytest.mark.parametrize("kind", ["voice", "extension", "sms"])
def test_a_replay_after_the_call_or_text_is_over_reaches_no_one(
    relay: Relay, axb: Bound, axe: Bound, kind: str
) -> None:
    step = genuine(kind, axb, axe)
    first = relay.carrier.signed_post(step.path, step.form)
    assert (first[0], reached(first[1])) == (200, step.target)

    assert _finish(relay, step, first[1]) == 200
    status, body = relay.carrier.signed_post(step.path, step.form)

    assert status == 200
    assert reached(body) is None and step.target not in body
    if kind != "sms":
        refused_call(body)


def test_the_completed_call_is_recorded_by_roles(relay: Relay, axb: Bound, axe: Bound) -> None:
    step = genuine("voice", axb, axe)
    first = relay.carrier.signed_post(step.path, step.form)

    assert _finish(relay, step, first[1]) == 200

    row = relay.interaction(step.sid)
    assert row is not None
    assert (row.type, row.from_role, row.to_role) == ("call", "merchant", "buyer")
    assert (row.status, row.duration) == ("completed", 42)
    assert row.ended_at is not None


def test_a_forged_completed_callback_does_not_end_a_live_call(relay: Relay, axb: Bound, axe: Bound) -> None:
    step = genuine("voice", axb, axe)
    first = relay.carrier.signed_post(step.path, step.form)
    callback = {
        "CallSid": step.sid,
        "AccountSid": ACCOUNT_SID,
        "CallStatus": "completed",
        "CallDuration": "1",
    }

    forged = relay.post(VOICE_STATUS_PATH, callback, signature="bm90IGEgc2lnbmF0dXJl")

    assert forged[0] == 403
    assert relay.interaction(step.sid) is None
    # Still live: a retry gets the same connect, not the goodbye of an ended call.
    assert relay.carrier.signed_post(step.path, step.form) == first
    assert reached(first[1]) == step.target


# -- the log --------------------------------------------------------------------------


def _written_forms(e164: str) -> list[str]:
    """A US number as it could be written: E.164, with the country code, national, formatted."""
    national = e164[2:]
    area, exchange, line = national[:3], national[3:6], national[6:]
    return [
        e164,
        e164[1:],
        national,
        f"({area}) {exchange}-{line}",
        f"{area}-{exchange}-{line}",
        f"{area} {exchange} {line}",
        f"{area}.{exchange}.{line}",
    ]


def _log_with(relay: Relay, marker: str) -> str | None:
    text = relay.server.log_text()
    return text if marker in text else None


def test_the_server_log_never_shows_a_party_number(
    relay: Relay, axb: Bound, axe: Bound, fresh: Parties
) -> None:
    # Traffic of its own, so that the log has seen each kind of request even
    # when this test runs alone: connects, a text quoting a number, a
    # stranger, a wrong extension, a forgery.
    carrier = relay.carrier
    carrier.call(from_number=axb.parties.merchant, to_number=axb.relay_number)
    carrier.sms(from_number=axb.parties.buyer, to_number=axb.relay_number, body=f"I am {axb.parties.buyer}")
    carrier.call(from_number=axe.parties.courier, to_number=axe.relay_number, digits=[axe.extension or ""])
    carrier.call(from_number=fresh.stranger, to_number=axb.relay_number)
    carrier.call(from_number=fresh.stranger, to_number=axe.relay_number, digits=["0000", "0000"])
    relay.post(VOICE_PATH, voice_form(fresh.stranger, axb.relay_number), signature="forged")
    # A request logged after all of these, to know the log has them.
    # Letters only: the access log masks anything that reads as a phone number,
    # and a run of hex digits can.
    marker = "/e2e-log-marker-" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(16))
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(relay.server.base_url + marker, timeout=10)  # noqa: S310 (loopback)

    log = wait_for(lambda: _log_with(relay, marker), relay.server.process)

    assert '"POST /webhooks/twilio/voice" 200' in log and '"POST /webhooks/twilio/sms" 200' in log
    assert "bad X-Twilio-Signature" in log
    forms = [form for number in relay.used for form in _written_forms(number)]
    assert find_leaks("the server log", log, forms) == []
    # Digits split up in any other way (a line's digits, run together).
    for line in log.splitlines():
        digits = re.sub(r"\D", "", line)
        assert not [n for n in relay.used if n[2:] in digits], line
