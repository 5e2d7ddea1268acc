"""Fuzzing every Twilio webhook: no 5xx, and no party number anywhere but where a connect needs it.

Live bindings are made first, so fuzzed fields mixed with the real relay and
party numbers, extensions, sids and bridge references reach the connect paths.
Each request is signed as Twilio signs it (twilio's RequestValidator over the
public URL), or signed wrongly, or not at all. A party number may appear only
in ``<Dial><Number>`` and in ``<Message to=...>``, and only as a party of the
binding on the relay number called; never in another part of an answer, a
header, a line of the app's log or of the access log.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import phonenumbers
import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from maskline import services_of
from maskline.numbers.interfaces import BindingView, BindRequest
from maskline.numbers.models import BindingMember
from maskline.webhooks.bridge import Bridge, BridgeStore
from maskline.webhooks.services import DecisionStore
from tests.integration.conftest import AUTH_TOKEN, BUYER, COURIER, MERCHANT, STRANGER, AppMaker
from tests.integration.fuzz_helpers import access_log_line, leaks, watching_logs, written_forms

PUBLIC = "https://relay.example.com"
PREFIX = "/webhooks/twilio"
BUYER2, MERCHANT2 = "+13105550176", "+12065550187"
PARTIES = (BUYER, MERCHANT, COURIER, BUYER2, MERCHANT2)
WATCHED = (*PARTIES, STRANGER)
FORMS = [form for number in WATCHED for form in written_forms(number)]
# Over this (the app's MAX_CONTENT_LENGTH), a form is refused (413) before anything reads it.
MAX_FORM = 1024 * 1024

# The fields each route reads; every other field is noise to it.
ROUTES: dict[str, tuple[str, ...]] = {
    "/voice": ("CallSid", "From", "To"),
    "/voice/extension": ("CallSid", "From", "To", "Digits"),
    "/voice/whisper": ("CallSid",),
    "/voice/recording": (
        "RecordingSid",
        "CallSid",
        "RecordingUrl",
        "RecordingStatus",
        "RecordingDuration",
        "RecordingChannels",
    ),
    "/sms": ("MessageSid", "From", "To", "Body", "NumMedia", "MediaUrl0", "MediaUrl1"),
    "/voice/status": ("CallSid", "CallStatus", "CallDuration"),
    "/sms/status": ("MessageSid", "MessageStatus"),
    "/voice/bridge": ("CallSid", "From", "To"),
}
QUERY: dict[str, tuple[str, ...]] = {
    "/voice/extension": ("attempt",),
    "/voice/recording": ("ref",),
    "/sms/status": ("ref",),
    "/voice/bridge": ("ref",),
}
# What a 400 may name, per route.
BAD_FIELDS = {
    route: {*fields, *QUERY.get(route, ()), "NumMedia", "MediaUrl"} for route, fields in ROUTES.items()
}
OTHER_TWILIO_FIELDS = (
    "AccountSid",
    "ApiVersion",
    "Direction",
    "CallerName",
    "ForwardedFrom",
    "SmsSid",
    "FromCity",
)
# What XML 1.0 cannot carry (the app drops it from what it forwards).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# About 1000 requests: under ten seconds on two cores.
FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
SIGNINGS = ("valid",) * 6 + ("missing", "wrong_token", "wrong_url", "garbage", "other_fields")


@dataclass(frozen=True)
class Fuzzed:
    """One webhook request: form pairs (repeats allowed), query pairs, how it is signed."""

    route: str
    fields: tuple[tuple[str, str], ...]
    query: tuple[tuple[str, str], ...] = ()
    signing: str = "valid"
    garbage: str = ""
    raw: tuple[str, bytes] | None = None  # (content type, body) sent instead of a form

    def first(self, name: str) -> str | None:
        return next((value for key, value in self.fields if key == name), None)

    def __repr__(self) -> str:
        def short(value: object) -> str:
            text = repr(value)
            return text if len(text) <= 120 else f"{text[:60]}...({len(text)} chars)"

        pairs = ", ".join(f"({k!r}, {short(v)})" for k, v in self.fields)
        raw = None if self.raw is None else (self.raw[0], short(self.raw[1]))
        return (
            f"Fuzzed({self.route!r}, fields=({pairs}), query={short(self.query)}, "
            f"signing={self.signing!r}, garbage={self.garbage!r}, raw={raw})"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # Hypothesis prints failing examples with this: keep huge values short.
        printer.text(repr(self))


@dataclass
class Scene:
    """Three live bindings and a click-to-call reference on a real app."""

    app: Flask
    axb: BindingView
    axe: BindingView
    recorded: BindingView
    bridge_ref: str
    call_sids: list[str]
    message_sids: list[str]
    # (relay, from, to) that a connect may join, in E.164.
    pairs: set[tuple[str, str, str]] = field(default_factory=set)

    @property
    def relays(self) -> list[str]:
        return sorted({self.axb.relay_number, self.axe.relay_number, self.recorded.relay_number})


def _sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def _token(app: Flask, binding_id: str, role: str) -> str:
    with services_of(app).db.session() as session:
        return session.scalars(
            select(BindingMember.token).where(
                BindingMember.binding_id == binding_id, BindingMember.role == role
            )
        ).one()


@pytest.fixture
def scene(make_app: AppMaker) -> Scene:
    # DEBUG: the log file gets every line production could ever write.
    app = make_app(public_url=PUBLIC, log_level="DEBUG")
    bindings = services_of(app).numbers.bindings
    axb = bindings.bind(
        BindRequest(order_id="o-1", mode="axb", parties={"buyer": BUYER, "merchant": MERCHANT})
    )
    axe = bindings.bind(BindRequest(order_id="o-2", mode="axe", parties={"buyer": BUYER}, allow=[COURIER]))
    recorded = bindings.bind(
        BindRequest(
            order_id="o-3",
            mode="axb",
            parties={"buyer": BUYER2, "merchant": MERCHANT2},
            record=True,
            sms_media="forward",
        )
    )
    ref = BridgeStore(services_of(app).redis).put(
        Bridge(
            binding_id=axb.id,
            from_role="merchant",
            to_role="buyer",
            target_token=_token(app, axb.id, "buyer"),
            relay=axb.relay_number,
        )
    )
    scene = Scene(
        app=app,
        axb=axb,
        axe=axe,
        recorded=recorded,
        bridge_ref=ref,
        call_sids=[_sid("CA") for _ in range(6)],
        message_sids=[_sid("SM") for _ in range(4)],
    )
    for relay, group in (
        (axb.relay_number, (BUYER, MERCHANT)),
        (axe.relay_number, (BUYER, COURIER)),
        (recorded.relay_number, (BUYER2, MERCHANT2)),
    ):
        scene.pairs |= {(relay, a, b) for a in group for b in group if a != b}
    return scene


# -- strategies ------------------------------------------------------------------------

_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
_HUGE = st.builds(
    lambda chunk, n: chunk * n,
    st.sampled_from(["9", "é", "+14155550132 ", "<&>"]),
    st.integers(min_value=1_000, max_value=90_000),
)
_JUNK = st.one_of(
    _TEXT,
    st.sampled_from(FORMS),
    st.integers().map(str),
    st.floats().map(str),
    st.just(""),
    _HUGE,
)
_CALL_STATUSES = ["queued", "ringing", "in-progress", "completed", "busy", "failed", "no-answer", "canceled"]
_SMS_STATUSES = ["accepted", "queued", "sending", "sent", "delivered", "undelivered", "failed", "received"]


def _with_number(text: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Free text with a party number written into it somewhere."""
    return st.builds(lambda a, n, b: f"{a}{n}{b}", text, st.sampled_from(FORMS), text)


def requests(scene: Scene) -> st.SearchStrategy[Fuzzed]:
    relays = scene.relays
    call_sid = st.one_of(st.sampled_from(scene.call_sids), st.uuids().map(lambda u: "CA" + u.hex))
    message_sid = st.one_of(st.sampled_from(scene.message_sids), st.uuids().map(lambda u: "SM" + u.hex))
    caller = st.one_of(
        st.sampled_from([*WATCHED, *relays]),
        st.sampled_from([*FORMS, "anonymous", "client:alice", "sip:alice@example.com", "+", "+0"]),
    )
    digits = st.one_of(
        st.sampled_from([scene.axe.extension or "", "0000", "1", "123456789"]),
        st.text("0123456789#*", max_size=10),
    )
    duration = st.one_of(
        st.integers(min_value=0, max_value=10**12).map(str), st.sampled_from(["-1", "1.5", "٣"])
    )
    valid: dict[str, st.SearchStrategy[str]] = {
        "CallSid": call_sid,
        "MessageSid": message_sid,
        "From": caller,
        "To": st.sampled_from(relays),
        "Digits": digits,
        "Body": st.one_of(_TEXT, _with_number(_TEXT), _HUGE),
        "NumMedia": st.sampled_from(["0", "1", "2", "11", "-1", "x", " 1"]),
        "MediaUrl0": st.sampled_from(["https://api.twilio.com/media/ME1", "http://example.com/a.jpg"]),
        "MediaUrl1": _with_number(st.just("https://media.example.com/")),
        "CallStatus": st.sampled_from(_CALL_STATUSES),
        "MessageStatus": st.sampled_from(_SMS_STATUSES),
        "CallDuration": duration,
        "RecordingSid": st.uuids().map(lambda u: "RE" + u.hex),
        "RecordingUrl": st.one_of(
            st.just("https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"),
            _with_number(st.just("https://api.twilio.com/")),
        ),
        "RecordingStatus": st.sampled_from(["completed", "absent", "failed", "in-progress"]),
        "RecordingDuration": duration,
        "RecordingChannels": st.sampled_from(["1", "2", "0"]),
    }
    query_valid: dict[str, st.SearchStrategy[str]] = {
        "attempt": st.sampled_from(["1", "2", "3", "0", "x", ""]),
        "ref": st.sampled_from([scene.bridge_ref, *scene.call_sids, *scene.message_sids]),
    }

    def values(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
        # Mostly one plausible value; else junk, none, or the field twice.
        single = st.lists(strategy, min_size=1, max_size=1)
        return st.one_of([single] * 8 + [st.lists(st.one_of(strategy, _JUNK), max_size=2)])

    def pairs(names: tuple[str, ...], table: dict[str, st.SearchStrategy[str]]) -> Any:
        return st.tuples(
            *(values(table[name]).map(lambda vs, n=name: [(n, v) for v in vs]) for name in names)
        )

    extra_name = st.one_of(st.sampled_from([*OTHER_TWILIO_FIELDS, *valid]), _TEXT.filter(bool))

    @st.composite
    def fuzzed(draw: st.DrawFn) -> Fuzzed:
        route = draw(st.sampled_from(list(ROUTES)))
        fields = [pair for group in draw(pairs(ROUTES[route], valid)) for pair in group]
        fields += draw(st.lists(st.tuples(extra_name, _JUNK), max_size=3))
        query = [pair for group in draw(pairs(QUERY.get(route, ()), query_valid)) for pair in group]
        query += draw(
            st.lists(st.tuples(st.sampled_from(["x", "From", "n"]), st.sampled_from(FORMS)), max_size=1)
        )
        signing = draw(st.sampled_from(SIGNINGS))
        garbage = draw(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40))
        content_type = st.sampled_from(
            ["application/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
        )
        # Now and then a body that is not the form Twilio sends.
        raw = draw(st.one_of([st.none()] * 7 + [st.tuples(content_type, st.binary(max_size=200))]))
        return Fuzzed(route, tuple(fields), tuple(query), signing, garbage, raw)

    return fuzzed()


# -- sending and judging ---------------------------------------------------------------

VALIDATOR = RequestValidator(AUTH_TOKEN)


def send(client: Any, req: Fuzzed) -> Any:
    path = PREFIX + req.route + (f"?{urlencode(req.query)}" if req.query else "")
    form: MultiDict[str, str] = MultiDict(list(req.fields))
    signed: MultiDict[str, str] = MultiDict() if req.raw else form
    url = PUBLIC + path
    signature = {
        "valid": lambda: VALIDATOR.compute_signature(url, signed),
        "wrong_token": lambda: RequestValidator("not-the-token").compute_signature(url, signed),
        "wrong_url": lambda: VALIDATOR.compute_signature("http://localhost" + path, signed),
        "other_fields": lambda: VALIDATOR.compute_signature(
            url, MultiDict([*signed.items(multi=True), ("\x00", "1")])
        ),
        "garbage": lambda: req.garbage,
        "missing": lambda: None,
    }[req.signing]()
    headers = {"X-Twilio-Signature": signature} if signature is not None else {}
    if req.raw:
        content_type, body = req.raw
        return client.post(path, data=body, content_type=content_type, headers=headers)
    return client.post(path, data=form, headers=headers)


def e164(text: str | None) -> str:
    """A caller field as the router reads it (a valid number in E.164), else as sent."""
    try:
        parsed = phonenumbers.parse(text or "", "US")
    except phonenumbers.NumberParseException:
        return text or ""
    return (
        phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
        if phonenumbers.is_valid_number(parsed)
        else text or ""
    )


@dataclass
class Tally:
    connects: set[str] = field(default_factory=set)
    recorded_connects: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    # (route, sid, step, relay) -> (relay, caller) of the request that made its
    # decision: a retry of a step to the same relay number gets that decision,
    # whatever else it sends (decisions are kept per relay number and sid).
    deciders: dict[tuple[str, str, str, str], tuple[str, str]] = field(default_factory=dict)

    def decider(self, req: Fuzzed) -> tuple[str, str]:
        sid = req.first("MessageSid") if req.route == "/sms" else req.first("CallSid")
        step = (
            next((v for k, v in req.query if k == "attempt"), "1") if req.route == "/voice/extension" else ""
        )
        relay = req.first("To") or ""
        return self.deciders.setdefault((req.route, sid or "", step, relay), (relay, e164(req.first("From"))))


def decision_stored(scene: Scene, req: Fuzzed) -> bool:
    """Whether the app stored a decision for this request's step. An answer
    after a backend failure (the apology, or an empty SMS answer) stores none,
    so the step's decision is made by a later request, perhaps another To."""
    if req.route == "/sms":
        sid, step = req.first("MessageSid"), "sms:1"
    elif req.route == "/voice":
        sid, step = req.first("CallSid"), "voice:1"
    else:
        sid, step = req.first("CallSid"), f"ext:{next((v for k, v in req.query if k == 'attempt'), '1')}"
    relay = req.first("To") or ""
    return bool(sid) and bool(services_of(scene.app).redis.hexists(DecisionStore.key(sid or "", relay), step))


def check_connects(scene: Scene, req: Fuzzed, root: ET.Element, tally: Tally) -> None:
    """Each <Dial> and <Message> joins two parties of one binding, from the relay number; then
    the party number is blanked out, as it is the one place it may be."""
    for dial in root.iter("Dial"):
        assert req.route in {"/voice", "/voice/extension", "/voice/bridge"}
        relay = dial.get("callerId", "")
        numbers = dial.findall("Number")
        assert len(numbers) == 1 and len(dial) == 1
        target = numbers[0].text or ""
        if req.route == "/voice/bridge":
            assert (relay, target) == (scene.axb.relay_number, BUYER) and req.first("From") == relay
        else:
            decided_relay, caller = tally.decider(req)
            assert relay == req.first("To") == decided_relay
            assert (relay, caller, target) in scene.pairs
        tally.connects.add(req.route)
        tally.recorded_connects += numbers[0].get("url") is not None
        numbers[0].text = ""
    for message in root.iter("Message"):
        if message.get("to") is None:
            continue  # a reply to the sender, which Twilio addresses itself
        assert req.route == "/sms"
        relay, target = message.get("from", ""), message.attrib.pop("to")
        decided_relay, caller = tally.decider(req)
        assert relay == req.first("To") == decided_relay
        assert (relay, caller, target) in scene.pairs
        tally.connects.add(req.route)
        # Media is fetched by Twilio from the sender's own URLs, never shown as text.
        for media in message.iter("Media"):
            assert media.text in {_NOT_XML.sub("", v) for k, v in req.fields if k.startswith("MediaUrl")}
            media.text = ""


def judge(scene: Scene, req: Fuzzed, response: Any, log_lines: list[str], tally: Tally) -> None:
    status = response.status_code
    tally.statuses[status] = tally.statuses.get(status, 0) + 1
    text = response.get_data(as_text=True)
    assert status < 500, text[:500]
    size = int(response.request.environ.get("CONTENT_LENGTH") or 0)
    if not req.raw:
        # Too large is refused before the signature is read; else the signature decides.
        assert (status == 413) == (size > MAX_FORM), (status, size)
        if status != 413:
            assert (status == 403) == (req.signing != "valid"), (status, req.signing, text[:200])
    assert status in {200, 400, 403, 413}
    if status == 400:
        assert text.startswith("bad request: ") and text[13:].strip() in BAD_FIELDS[req.route], text
    shown = text
    if status == 200:
        assert response.mimetype == "text/xml"
        root = ET.fromstring(text)  # noqa: S314 (TwiML from the app under test)
        assert root.tag == "Response"
        if req.route in {"/voice", "/voice/extension", "/sms"} and decision_stored(scene, req):
            tally.decider(req)  # the first request whose decision was stored decides the step
        check_connects(scene, req, root, tally)
        shown = ET.tostring(root, encoding="unicode")
    headers = "\n".join(f"{name}: {value}" for name, value in response.headers.items())
    found = leaks("the answer", shown, WATCHED) + leaks("the headers", headers, WATCHED)
    found += leaks("the access log", access_log_line(response), WATCHED)
    found += [leak for line in log_lines for leak in leaks("a log line", line, WATCHED)]
    assert found == [], found


def happy_paths(scene: Scene) -> list[Fuzzed]:
    """Real calls and messages, so the run always reaches every connect (and its status callbacks)."""
    axb, axe, rec = scene.axb.relay_number, scene.axe.relay_number, scene.recorded.relay_number
    call, recorded_call, ext_call, bridge_call = scene.call_sids[:4]
    msg = scene.message_sids[0]
    return [
        Fuzzed("/voice", (("CallSid", call), ("From", MERCHANT), ("To", axb))),
        Fuzzed("/voice/status", (("CallSid", call), ("CallStatus", "completed"), ("CallDuration", "42"))),
        Fuzzed("/voice", (("CallSid", call), ("From", MERCHANT), ("To", axb))),  # a replay: no one
        Fuzzed("/voice", (("CallSid", ext_call), ("From", COURIER), ("To", axe))),
        Fuzzed(
            "/voice/extension",
            (("CallSid", ext_call), ("From", COURIER), ("To", axe), ("Digits", scene.axe.extension or "")),
            (("attempt", "1"),),
        ),
        Fuzzed("/voice", (("CallSid", recorded_call), ("From", BUYER2), ("To", rec))),
        Fuzzed("/voice/whisper", (("CallSid", _sid("CA")),)),
        Fuzzed(
            "/voice/recording",
            (
                ("RecordingSid", _sid("RE")),
                ("RecordingUrl", "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1"),
                ("RecordingStatus", "completed"),
                ("RecordingDuration", "12"),
            ),
            (("ref", recorded_call),),
        ),
        Fuzzed(
            "/sms",
            (
                ("MessageSid", msg),
                ("From", BUYER),
                ("To", axb),
                ("Body", f"call me on {written_forms(BUYER)[3]}"),
            ),
        ),
        Fuzzed("/sms/status", (("MessageStatus", "delivered"),), (("ref", msg),)),
        Fuzzed(
            "/sms",
            (
                ("MessageSid", _sid("SM")),
                ("From", MERCHANT2),
                ("To", rec),
                ("Body", "photo"),
                ("NumMedia", "1"),
                ("MediaUrl0", "https://api.twilio.com/media/ME1"),
            ),
        ),
        Fuzzed(
            "/voice/bridge",
            (("CallSid", bridge_call), ("From", axb), ("To", MERCHANT)),
            (("ref", scene.bridge_ref),),
        ),
        Fuzzed("/voice", (("CallSid", _sid("CA")), ("From", STRANGER), ("To", axb)), signing="wrong_token"),
    ]


def test_every_webhook_route_is_fuzzed(app: Flask) -> None:
    # Flask's routes, and the fast path's in front of them.
    fast = app.wsgi_app.routes  # type: ignore[attr-defined]
    served = {
        rule.rule.removeprefix(PREFIX) for rule in app.url_map.iter_rules() if rule.rule.startswith(PREFIX)
    } | {path.removeprefix(PREFIX) for path in fast}
    assert served == set(ROUTES)


def test_fuzzed_webhooks_never_fail_and_never_show_a_party_number(scene: Scene, settings: Any) -> None:
    client = scene.app.test_client()
    tally = Tally()
    with watching_logs(settings.log_file) as logs:

        def run(req: Fuzzed) -> None:
            judge(scene, req, send(client, req), logs.take(), tally)

        for req in happy_paths(scene):  # first, in order: the run starts from real traffic
            run(req)

        @FUZZ
        @given(req=requests(scene))
        def fuzz(req: Fuzzed) -> None:
            run(req)

        fuzz()
    # The properties were not vacuous: every connect was reached, and lines were logged.
    assert tally.connects == {"/voice", "/voice/extension", "/sms", "/voice/bridge"}
    assert tally.recorded_connects >= 1
    assert {200, 400, 403} <= set(tally.statuses)
    assert logs.total > 0


# -- what the fuzzer found, kept as plain examples ---------------------------------------


def play(scene: Scene, log_file: Any, *reqs: Fuzzed) -> list[ET.Element | None]:
    """Send and judge ``reqs`` in order; their TwiML (None if not 200)."""
    client, tally, answers = scene.app.test_client(), Tally(), []
    with watching_logs(log_file) as logs:
        for req in reqs:
            response = send(client, req)
            answers.append(ET.fromstring(response.get_data()) if response.status_code == 200 else None)  # noqa: S314
            judge(scene, req, response, logs.take(), tally)
    return answers


def test_a_number_in_a_forged_query_string_stays_out_of_the_log(scene: Scene, settings: Any) -> None:
    # The refusal logged the whole URL: "?x=3+1+0+5+..." is a number the log filter cannot see.
    forged = Fuzzed("/voice", (("CallSid", ""),), (("x", " ".join(BUYER2[2:])),), signing="wrong_token")
    assert play(scene, settings.log_file, forged) == [None]
    assert (
        "bad X-Twilio-Signature for https://relay.example.com/webhooks/twilio/voice\n"
        in settings.log_file.read_text()
    )


def test_a_body_with_characters_xml_cannot_carry_is_forwarded_without_them(
    scene: Scene, settings: Any
) -> None:
    body = "leave it\x00 at the\x1b door\ufffe"
    sms = Fuzzed(
        "/sms", (("MessageSid", _sid("SM")), ("From", BUYER), ("To", scene.axb.relay_number), ("Body", body))
    )
    (answer,) = play(scene, settings.log_file, sms)
    assert answer is not None and answer.findtext("Message") == "leave it at the door"


@pytest.mark.parametrize("route", ["/voice", "/sms"])
def test_a_retried_sid_sent_to_another_number_connects_no_one(
    scene: Scene, settings: Any, route: str
) -> None:
    # A stored connect was rendered with the retry's To as the caller ID: even a party's number.
    sid_field, sid = ("CallSid", _sid("CA")) if route == "/voice" else ("MessageSid", _sid("SM"))
    relay, other = scene.axb.relay_number, scene.axe.relay_number
    first = Fuzzed(route, ((sid_field, sid), ("From", MERCHANT), ("To", relay), ("Body", "hi")))
    retries = [
        Fuzzed(route, ((sid_field, sid), ("From", MERCHANT), ("To", to), ("Body", "hi")))
        for to in (BUYER, other)
    ]
    answers = play(scene, settings.log_file, first, *retries, first)
    connects = [
        a is not None and (a.find("Dial") is not None or a.find("Message") is not None) for a in answers
    ]
    # A true retry (same number called) still gets the stored connect.
    assert connects == [True, False, False, True]
