"""Fuzzing /v1: no 5xx, no answer off the schema, no party number in an answer or a log line.

Bindings are made first, so schemathesis' requests (with real binding ids
and tracking numbers mixed into the generated ones) reach live records. Bad
keys never get past 401. Hypothesis then throws junk bodies at
``POST /v1/bindings``: a refusal names the field and writes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from werkzeug.exceptions import MethodNotAllowed, NotFound

from config import API_SCOPES
from maskline import services_of
from maskline.api.requests import CREATE_FIELDS, shown_name
from maskline.api.views import EXTENSION_KEY
from maskline.db import Base
from tests.integration.api_helpers import ApiClient, make_key
from tests.integration.conftest import BUYER, COURIER, MERCHANT, STRANGER, AppMaker
from tests.integration.fuzz_helpers import LogWatch, access_log_line, leaks, watching_logs, written_forms
from tests.integration.test_openapi import CHECKS

BOUND = (BUYER, MERCHANT, COURIER, STRANGER)
FORMS = [form for number in BOUND for form in written_forms(number)]
TRACKING_NO = "SF1234567"
OWNER = "shop-a"
# No 429 in the way: the fuzzers send faster than any client would.
NO_LIMITS = {scope: "1000000/second" for scope in API_SCOPES}
FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck))


@dataclass
class Scene:
    app: Flask
    api: ApiClient
    binding_ids: list[str]
    logs: LogWatch
    seen: dict[int, int] = field(default_factory=dict)

    def count(self, status: int) -> None:
        self.seen[status] = self.seen.get(status, 0) + 1


@pytest.fixture
def scene(make_app: AppMaker, settings: Any) -> Iterator[Scene]:
    # DEBUG: the log file gets every line production could ever write.
    app = make_app(log_level="DEBUG", api_rate_limits=NO_LIMITS)
    api = ApiClient(app, make_key(app, OWNER))
    axb = api.post(
        "/v1/bindings", {"order_id": "o-1", "mode": "axb", "parties": {"buyer": BUYER, "merchant": MERCHANT}}
    )
    axe = api.post(
        "/v1/bindings", {"order_id": "o-2", "mode": "axe", "parties": {"buyer": BUYER}, "allow": [COURIER]}
    )
    assert (axb.status, axe.status) == (201, 201), (axb.text, axe.text)
    link = api.call("PUT", f"/v1/bindings/{axe.body['id']}/waybills/{TRACKING_NO}", {"carrier": OWNER})
    assert link.status == 201, link.text
    with watching_logs(settings.log_file) as logs:
        yield Scene(app, api, [axb.body["id"], axe.body["id"]], logs)


# What a phone number looks like as written, digits and separators only (no letters).
_PHONE_LIKE = re.compile(r"^\s*(?:tel:)?[+\d\s().\-/\uff10-\uff19]+$")


def sent_numbers(body: Any) -> set[str]:
    """The numbers a request body sent where a party's number goes (E.164, if they parse)."""
    if not isinstance(body, dict):
        return set()
    parties = body.get("parties")
    allow = body.get("allow")
    raw = [*(parties if isinstance(parties, dict) else {})]
    raw += [*(parties.values() if isinstance(parties, dict) else ())]
    raw += [*(allow if isinstance(allow, list) else ())]
    region = body.get("region") if isinstance(body.get("region"), str) else "US"
    found = set()
    for value in raw:
        if not isinstance(value, str) or not _PHONE_LIKE.match(value) or len(re.sub(r"\D", "", value)) < 7:
            continue
        try:
            parsed = phonenumbers.parse(
                value, region.upper() if region.upper() in phonenumbers.SUPPORTED_REGIONS else "US"
            )
        except phonenumbers.NumberParseException:
            continue
        if len(phonenumbers.national_significant_number(parsed)) >= 7:
            found.add(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
    return found


def assert_no_leak(scene: Scene, response: Any, text: str, body: Any) -> None:
    """No bound number, nor one the request sent as a party, in the answer, its headers or a log line."""
    watched = set(BOUND) | sent_numbers(body)
    headers = "\n".join(f"{name}: {value}" for name, value in response.headers.items())
    found = leaks("the answer", text, watched) + leaks("the headers", headers, watched)
    found += leaks("the access log", access_log_line(response), watched)
    found += [leak for line in scene.logs.take() for leak in leaks("a log line", line, watched)]
    assert found == [], found


def routed(app: Flask, method: str, path: str) -> bool:
    """Whether ``method path`` reaches a view (else Flask answers 404/405 before any view runs)."""
    try:
        app.url_map.bind("localhost").match(path, method)
    except (NotFound, MethodNotAllowed):
        return False
    return True


# -- schemathesis over the spec ------------------------------------------------------------


def _operations(app: Flask) -> list[Any]:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 11  # the batch bind included
    return operations


def _mix_real_records(case: schemathesis.Case, data: st.DataObject, scene: Scene) -> None:
    """Now and then, real binding ids, tracking number and party numbers in place of generated ones."""
    if "binding_id" in (case.path_parameters or {}) and data.draw(st.booleans()):
        case.path_parameters["binding_id"] = data.draw(st.sampled_from(scene.binding_ids))
    if "tracking_no" in (case.path_parameters or {}) and data.draw(st.booleans()):
        case.path_parameters["tracking_no"] = TRACKING_NO
    if (
        case.method == "POST"
        and case.path == "/v1/bindings"
        and isinstance(case.body, dict)
        and data.draw(st.booleans())
    ):
        case.body["parties"] = data.draw(
            st.dictionaries(
                st.sampled_from(["buyer", "merchant", "courier"]), st.sampled_from(FORMS), min_size=1
            )
        )


def test_schemathesis_with_a_valid_key_finds_no_server_error_no_answer_off_the_schema_and_no_number(
    scene: Scene,
) -> None:
    headers = {"Authorization": f"Bearer {scene.api.key}"}
    for operation in _operations(scene.app):

        @settings(FUZZ, max_examples=40)
        @given(case=operation.as_strategy(), data=st.data())
        def run(case: schemathesis.Case, data: st.DataObject) -> None:
            _mix_real_records(case, data, scene)
            response = case.call(headers=headers)
            case.validate_response(response, checks=CHECKS)
            scene.count(response.status_code)
            assert_no_leak(scene, response, response.text, case.body)

        run()
    # Real records were reached (200), as well as refusals.
    assert {200, 404, 422} <= set(scene.seen), scene.seen


BAD_KEYS = [
    None,
    "Bearer ",
    "Bearer ml_not-a-key",
    "Basic c2hvcC1hOnNlY3JldA==",
    "bearer\tml_x",
    "Token ml_abc",
]


def test_schemathesis_with_bad_keys_gets_401_and_never_a_server_error(scene: Scene) -> None:
    app = scene.app
    revoked = make_key(app, OWNER)
    app.extensions[EXTENSION_KEY].keys.revoke(revoked.split("_", 2)[1])
    bad = [*BAD_KEYS, f"Bearer {revoked}", f"Bearer {scene.api.key}x", f"Bearer {scene.api.key[:-1]}"]
    for operation in _operations(app):

        @settings(FUZZ, max_examples=10)
        @given(case=operation.as_strategy(), authorization=st.sampled_from(bad), data=st.data())
        def run(case: schemathesis.Case, authorization: str | None, data: st.DataObject) -> None:
            _mix_real_records(case, data, scene)
            headers = {"Authorization": authorization} if authorization is not None else {}
            if authorization is None:
                case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
            response = case.call(headers=headers)
            case.validate_response(response, checks=CHECKS)
            expected = 401 if routed(app, case.method, case.formatted_path) else 404
            assert response.status_code == expected, (response.status_code, response.text[:200])
            assert_no_leak(scene, response, response.text, case.body)

        run()


def test_schemathesis_with_keys_of_another_owner_or_scope_never_reaches_the_records(scene: Scene) -> None:
    app = scene.app
    other_owner = f"Bearer {make_key(app, 'shop-b')}"
    pool_only = f"Bearer {make_key(app, OWNER, ['pool:read'])}"
    for operation in _operations(app):

        @settings(FUZZ, max_examples=10)
        @given(
            case=operation.as_strategy(),
            authorization=st.sampled_from([other_owner, pool_only]),
            data=st.data(),
        )
        def run(case: schemathesis.Case, authorization: str, data: st.DataObject) -> None:
            _mix_real_records(case, data, scene)
            response = case.call(headers={"Authorization": authorization})
            case.validate_response(response, checks=CHECKS)
            if authorization == pool_only and routed(app, case.method, case.formatted_path):
                assert response.status_code == (200 if case.path == "/v1/pool" else 403), response.text[:200]
            # Another owner's records are 404, never listed, never linked.
            assert not any(binding_id in response.text for binding_id in scene.binding_ids), response.text[
                :300
            ]
            assert_no_leak(scene, response, response.text, case.body)

        run()


# -- POST /v1/bindings bodies -----------------------------------------------------------------

_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)
_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), _TEXT)
_JUNK = st.recursive(
    _SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)
_HUGE = st.builds(
    lambda chunk, n: chunk * n, st.sampled_from(["9", "+14155550132,", "é"]), st.integers(1_000, 40_000)
)
_NUMBER = st.one_of(
    st.sampled_from(FORMS), st.sampled_from(["+8613800138000", "+14155550100", "+1 415 555 01329", "911"])
)
_ROLE = st.one_of(st.sampled_from(["buyer", "merchant", "courier", "b2"]), _TEXT, st.sampled_from(FORMS))
_TIME = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat()),
    st.sampled_from(
        [
            "2026-12-01T18:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "2026-11-24",
            "now",
        ]
    ),
)
_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "order_id": st.one_of(st.sampled_from(["o-9", " ", ""]), _TEXT, _HUGE),
    "mode": st.sampled_from(["axb", "axe", "AXB", "axc"]),
    "parties": st.one_of(
        st.dictionaries(_ROLE, st.one_of(_NUMBER, _NUMBER, _JUNK), max_size=3),
        st.dictionaries(_ROLE, _HUGE, max_size=1),
    ),
    "allow": st.one_of(
        st.just("any"),
        st.lists(st.one_of(_NUMBER, _JUNK), max_size=3),
        st.lists(_NUMBER, min_size=21, max_size=22),
    ),
    "ttl_seconds": st.one_of(
        st.integers(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([60, 3600, 1.5, "60", True]),
    ),
    "expires_at": _TIME,
    "fallback": st.sampled_from(["axe", "axb", None, 1]),
    "record": st.sampled_from([True, False, "yes", 0]),
    "sms_policy": st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "redact": st.lists(st.sampled_from(["phones", "links", "emails"])),
                "media": st.sampled_from(["forward", "refuse", "drop"]),
            },
        ),
        _JUNK,
    ),
    "region": st.sampled_from(["US", "us", "CN", "ZZ", "001", ""]),
}
_BODY = st.one_of(
    # Mostly a body of the right shape, with some fields wrong; sometimes anything at all.
    st.fixed_dictionaries({}, optional={name: st.one_of(s, s, _JUNK) for name, s in _FIELDS.items()}).flatmap(
        lambda body: st.dictionaries(_TEXT, _JUNK, max_size=2).map(lambda extra: {**extra, **body})
    ),
    st.fixed_dictionaries({}, optional={name: st.one_of(s, s, _JUNK) for name, s in _FIELDS.items()}),
    _JUNK,
)


def _state(app: Flask) -> tuple[dict[str, int], set[bytes]]:
    """Rows per table, and the Redis keys (but the rate limiter's and the
    alerts' counters: counting a refused request is what they are for; the
    alerts' windows also roll over on their own during a long run)."""
    services = services_of(app)
    services.alerts.drain()
    with services.db.session() as session:
        rows = {
            t.name: session.scalar(select(func.count()).select_from(t)) or 0
            for t in Base.metadata.sorted_tables
        }
    keys = {
        k for k in services.redis.scan_iter(count=1000) if b"ml:rl" not in k and not k.startswith(b"ml:alert")
    }
    return rows, keys


def _field_root(name: str) -> str:
    return re.split(r"[.\[]", name, maxsplit=1)[0]


def test_junk_binding_bodies_are_refused_by_field_and_write_nothing(scene: Scene) -> None:
    app, api = scene.app, scene.api
    client = app.test_client()
    headers = {"Authorization": f"Bearer {api.key}"}

    @settings(FUZZ, max_examples=500)
    @given(body=_BODY)
    # Accepted bodies, in formats people write (the fuzzer rarely writes a whole valid one).
    @example(
        body={
            "order_id": "o-9",
            "mode": "axb",
            "parties": {"buyer": "(617) 555-0165", "b2": "+1 310 555 0176"},
        }
    )
    @example(body={"order_id": "o-10", "mode": "axe", "parties": {"buyer": "617.555.0165"}, "allow": "any"})
    # Found by this fuzzer: a 500 (OverflowError), and a number quoted back as a role.
    @example(body={"expires_at": "0001-01-01T00:00:00+01:00"})
    @example(body={"parties": {"+1 415-555-0132": "buyer", "merchant": "x"}, "4155550132": 1})
    def run(body: Any) -> None:
        before = _state(app)
        reply = client.post(
            "/v1/bindings", data=json.dumps(body), content_type="application/json", headers=headers
        )
        status, text, answer = reply.status_code, reply.get_data(as_text=True), reply.get_json(silent=True)
        scene.count(status)
        assert status < 500, text[:300]
        after = _state(app)
        if status == 201:
            assert after[0]["bindings"] == before[0]["bindings"] + 1
            # Free the pool again for the next examples.
            assert api.delete(f"/v1/bindings/{answer['id']}").status == 200
        else:
            assert status in {400, 409, 413, 422}, text[:300]
            error = answer["error"]
            assert error["code"] and error["message"]
            if status == 422:
                named = {f["field"] for f in error["fields"]}
                assert named and all(
                    _field_root(f) in CREATE_FIELDS or f in {shown_name(k) for k in body} for f in named
                ), named
            if status == 409:
                # The pool is full for these parties: only its event is written.
                written = {t for t in after[0] if after[0][t] != before[0][t]}
                assert written <= {"outbox"}, written
                assert after[1] == before[1]
            else:
                assert after[1] == before[1]
                assert {t: n for t, n in after[0].items() if before[0][t] != n} == {}
        assert_no_leak(scene, reply, text, body)

    run()
    assert {201, 400, 422} <= set(scene.seen), scene.seen


# -- malformed bodies: never a 500 ------------------------------------------------------------

MALFORMED = {
    "arrays nested 5,000 deep": b"[" * 5000 + b"]" * 5000,
    "objects nested 5,000 deep": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "nested inside a valid field": b'{"order_id": "o-1", "metadata": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "invalid UTF-8": b'{"order_id": "\xff\xfe\xfd"}',
    "a lone surrogate": b'{"order_id": "\\ud800", "mode": "axb", "parties": {"buyer": "+16175550165"}}',
    "a 5,000-digit integer": b'{"ttl_seconds": 1' + b"0" * 5000 + b"}",
    "a 200-digit integer": b'{"ttl_seconds": ' + b"9" * 200 + b"}",
    "1e999": b'{"ttl_seconds": 1e999}',
    "-1e999": b'{"ttl_seconds": -1e999}',
    "NaN": b'{"ttl_seconds": NaN}',
    "Infinity": b'{"ttl_seconds": Infinity}',
}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/bindings"),
        ("PATCH", "/v1/bindings/{id}"),
        ("POST", "/v1/bindings/{id}/calls"),
        ("PUT", "/v1/bindings/{id}/waybills/SF1"),
    ],
)
def test_malformed_json_gets_400_in_the_error_shape(make_app: AppMaker, method: str, path: str) -> None:
    app = make_app(api_rate_limits=NO_LIMITS)
    api = ApiClient(app, make_key(app, OWNER))
    made = api.post(
        "/v1/bindings", {"order_id": "o-1", "mode": "axb", "parties": {"buyer": BUYER, "merchant": MERCHANT}}
    )
    assert made.status == 201, made.text
    before = _state(app)

    for shape, body in MALFORMED.items():
        reply = app.test_client().open(
            path.format(id=made.body["id"]),
            method=method,
            data=body,
            content_type="application/json",
            headers={"Authorization": f"Bearer {api.key}"},
        )

        assert reply.status_code == 400, (shape, reply.get_data(as_text=True)[:300])
        error = reply.get_json()["error"]
        assert error["code"] == "bad_request" and "JSON" in error["message"], (shape, error)
    assert _state(app) == before


@pytest.mark.parametrize("shape", list(MALFORMED))
def test_malformed_bodies_on_the_compat_faces_get_their_vendor_s_400(make_app: AppMaker, shape: str) -> None:
    from tests.compat_twilio_helpers import credentials

    app = make_app()
    issued = credentials(app, OWNER)
    client = app.test_client()
    body = MALFORMED[shape]

    twilio = client.post(
        "/twilio-proxy/v1/Services",
        data=body,
        content_type="application/x-www-form-urlencoded",
        auth=(issued.account_sid, issued.auth_token),
    )
    participants = client.post(
        "/twilio-proxy/v1/Services/KS" + "0" * 32 + "/Sessions",
        data={"UniqueName": "s", "Participants": body.decode("utf-8", "replace")[:1000]},
        auth=(issued.account_sid, issued.auth_token),
    )
    aliyun = client.post("/", data=body, content_type="application/x-www-form-urlencoded")

    for reply in (twilio, participants, aliyun):
        assert 400 <= reply.status_code < 500, reply.get_data(as_text=True)[:300]
        assert reply.is_json and isinstance(reply.get_json(), dict)
    assert twilio.status_code == 400 and twilio.get_json()["code"] == 20001
