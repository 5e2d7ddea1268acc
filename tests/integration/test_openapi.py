"""/openapi.json describes every /v1 route, and schemathesis finds no 5xx and no answer off the schema."""

from __future__ import annotations

import re
from typing import Any

import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests.integration.api_helpers import make_key


def test_every_v1_route_is_described(app: Flask) -> None:
    spec = app.test_client().get("/openapi.json").get_json()
    described = {
        (path, method.upper())
        for path, item in spec["paths"].items()
        for method in item
        if method != "parameters"
    }
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/v1/"):
            path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
            served |= {(path, m) for m in rule.methods or () if m not in {"HEAD", "OPTIONS"}}
    assert served == described


def test_the_spec_is_valid_openapi_3_1(app: Flask) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    assert len(list(schema.get_all_operations())) == 11


# Conformance, not "every schema-valid request is accepted": an opaque cursor
# or an unknown binding id is valid to the schema and rightly refused.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


def test_schemathesis_smoke_run_finds_no_server_error_and_no_answer_off_the_schema(app: Flask) -> None:
    """A short run over every operation: generated bodies, queries and ids."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {make_key(app, 'fuzz')}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 11
    for operation in operations:

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        run()


def test_every_operation_is_named_tagged_and_served(app: Flask) -> None:
    from maskline.api.openapi_meta import OPERATIONS

    spec = app.test_client().get("/openapi.json").get_json()
    operations = [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method != "parameters"
    ]
    ids = [op["operationId"] for _, _, op in operations]
    assert len(ids) == len(set(ids))
    # Each has a chosen name (openapi_meta.OPERATIONS), not the derived stand-in.
    assert all((path, method) in OPERATIONS for path, method, _ in operations)
    assert all(op["tags"] and op["tags"][0] in {t["name"] for t in spec["tags"]} for _, _, op in operations)
    assert spec["servers"] == [{"url": "http://localhost", "description": spec["servers"][0]["description"]}]


def test_error_codes_are_enumerated_and_every_raised_code_is_listed(app: Flask) -> None:
    from maskline.api import interfaces

    spec = app.test_client().get("/openapi.json").get_json()
    listed = set(spec["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"])
    raised = {
        cls.code
        for cls in vars(interfaces).values()
        if isinstance(cls, type) and issubclass(cls, interfaces.ApiError) and cls is not interfaces.ApiError
    }
    assert {"pool_exhausted", "idempotency_key_reused", "rate_limited", "unavailable"} <= listed
    assert raised <= listed


def test_the_main_operations_carry_examples(app: Flask) -> None:
    spec = app.test_client().get("/openapi.json").get_json()
    create = spec["paths"]["/v1/bindings"]["post"]

    assert set(create["requestBody"]["content"]["application/json"]["examples"]) == {"axb", "axe"}
    assert create["responses"]["201"]["content"]["application/json"]["example"]["relay_number"]
    conflict = create["responses"]["409"]["content"]["application/json"]["examples"]
    assert conflict["pool_exhausted"]["value"]["error"]["code"] == "pool_exhausted"


def test_servers_names_the_public_url_when_one_is_set(make_app: Any) -> None:
    app = make_app(public_url="https://relay.example.com")

    spec = app.test_client().get("/openapi.json").get_json()

    assert spec["servers"][0]["url"] == "https://relay.example.com"
