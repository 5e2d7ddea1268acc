"""The OpenAPI 3.1 description of /v1, served at ``/openapi.json``.

Written by hand next to the views; ``tests/integration/test_openapi.py``
checks that every /v1 route is described and schemathesis checks that the
answers match it.
"""

from __future__ import annotations

import copy
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask.typing import ResponseReturnValue

from maskline.api.interfaces import SCOPES
from maskline.api.openapi_meta import annotate
from maskline.version import __version__

bp = Blueprint("openapi", __name__)
# maskline.api.views.EXTENSION_KEY, named here so this module need not import the views.
_API_EXTENSION = "maskline.api"

_TIME = {"type": "string", "format": "date-time"}
_NUMBER = {
    "type": "string",
    "description": (
        "a party's phone number: E.164 (+8613912345678, +14155550132), or a national form read in"
        " `region`, else the deployment's region (CN: 13912345678, 010 6552 0100; US: (415) 555-0132)."
        " Service numbers (95xxx, 400, 800, premium-rate) are refused"
    ),
    "maxLength": 64,
}

_REGION = {
    "type": "string",
    "minLength": 2,
    "maxLength": 2,
    "description": "where national forms are read, e.g. CN or US (default: the deployment's region)",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


_ERRORS = {
    "401": _error_response("no key, or an unknown or revoked one"),
    "403": _error_response("the key lacks the scope"),
    "429": _error_response("the key's rate limit for this scope is used up; see Retry-After"),
}
_BODY_ERRORS = {
    "400": _error_response("malformed JSON, or not a JSON object"),
    "413": _error_response("the body is larger than allowed"),
    "422": _error_response("invalid fields, each named with why"),
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "fields": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["field", "reason"],
                            "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
                        },
                    },
                },
            }
        },
    },
    "SmsPolicy": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "redact": {"type": ["array", "null"], "items": {"enum": ["phones", "links"]}},
            "media": {"enum": ["forward", "refuse", None]},
        },
    },
    "NewBinding": {
        "type": "object",
        "additionalProperties": False,
        "required": ["order_id", "mode", "parties"],
        "properties": {
            "order_id": {"type": "string", "minLength": 1, "maxLength": 128},
            "mode": {"enum": ["axb", "axe"]},
            "parties": {
                "type": "object",
                "minProperties": 1,
                "maxProperties": 10,
                "propertyNames": {"pattern": "^[a-z][a-z0-9_]{0,31}$"},
                "additionalProperties": _NUMBER,
            },
            "allow": {"oneOf": [{"const": "any"}, {"type": "array", "maxItems": 20, "items": _NUMBER}]},
            "ttl_seconds": {"type": "integer", "minimum": 60},
            "expires_at": _TIME,
            "fallback": {"enum": ["axe", None]},
            "record": {"type": "boolean"},
            "sms_policy": _ref("SmsPolicy"),
            "region": _REGION,
            "language": {
                "enum": ["en-US", "zh-CN", None],
                "description": "the language callers and texters of this binding are answered in "
                "(voice prompts, SMS auto-replies, the recording notice); none: the deployment's",
            },
        },
    },
    "BindingChange": {
        "type": "object",
        "description": (
            "At most one of ttl_seconds (from now), extend_by_seconds (added to the current expiry) "
            "or expires_at; several, or a body that changes nothing, answer 400 naming the fields. "
            'A new expiry earlier than the current one needs "allow_shorten": true, else 409 '
            "would_shorten with nothing changed. status: delivered ends the binding after the "
            "delivery grace, which may be earlier: that is what it asks for."
        ),
        "additionalProperties": False,
        "minProperties": 1,
        "properties": {
            "ttl_seconds": {"type": "integer", "minimum": 60},
            "extend_by_seconds": {"type": "integer", "minimum": 1},
            "expires_at": _TIME,
            "allow_shorten": {"type": "boolean", "default": False},
            "allow": {"oneOf": [{"const": "any"}, {"type": "array", "maxItems": 20, "items": _NUMBER}]},
            "status": {"const": "delivered"},
            "region": _REGION,
        },
    },
    "Binding": {
        "type": "object",
        "description": "A binding as anyone sees it: relay number, extension, roles. Never a party number.",
        "required": [
            "id",
            "order_id",
            "mode",
            "relay_number",
            "status",
            "expires_at",
            "created_at",
            "roles",
            "dial",
        ],
        "properties": {
            "id": {"type": "string"},
            "order_id": {"type": "string"},
            "mode": {"enum": ["axb", "axe"]},
            "relay_number": {"type": "string"},
            "extension": {"type": ["string", "null"]},
            "status": {"enum": ["active", "expired", "unbound"]},
            "expires_at": _TIME,
            "created_at": _TIME,
            "delivered_at": {"type": ["string", "null"], "format": "date-time"},
            "roles": {"type": "array", "items": {"type": "string"}},
            "allow": {"enum": ["any", "list", None]},
            "allowed_callers": {"type": "integer"},
            "fallback_used": {"type": "boolean"},
            "record": {"type": "boolean"},
            "sms_policy": _ref("SmsPolicy"),
            "language": {"enum": ["en-US", "zh-CN", None]},
            "dial": {
                "type": "object",
                "description": "what each role (and, in axe, any caller) dials: the relay number[,extension]",
                "additionalProperties": {"type": "string"},
            },
        },
    },
    "ChangedBinding": {
        "allOf": [
            _ref("Binding"),
            {
                "type": "object",
                "required": ["previous_expires_at"],
                "properties": {"previous_expires_at": _TIME},
            },
        ],
        "description": "the binding after a PATCH, with the expiry it had before",
    },
    "BindingBatch": {
        "type": "object",
        "description": "up to 100 binds, each the body of POST /v1/bindings",
        "required": ["items"],
        "additionalProperties": False,
        "properties": {
            "items": {"type": "array", "minItems": 1, "maxItems": 100, "items": _ref("NewBinding")}
        },
    },
    "BindingBatchResults": {
        "type": "object",
        "required": ["results"],
        "properties": {
            "results": {
                "type": "array",
                "description": "one per item, in the items' order",
                "items": {
                    "type": "object",
                    "required": ["status", "body"],
                    "properties": {
                        "status": {
                            "type": "integer",
                            "description": "what POST /v1/bindings would have answered: 201, 409, 422, 503",
                        },
                        "body": {
                            "description": "the binding (201) or the error",
                            "oneOf": [_ref("Binding"), _ref("Error")],
                        },
                    },
                },
            }
        },
    },
    "BindingPage": {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": _ref("Binding")},
            "next_cursor": {"type": ["string", "null"]},
        },
    },
    "Interaction": {
        "type": "object",
        "required": ["sid", "type", "from_role", "to_role", "status"],
        "properties": {
            "sid": {"type": "string"},
            "type": {"enum": ["call", "sms"]},
            "from_role": {"type": "string"},
            "to_role": {"type": "string"},
            "status": {"type": "string"},
            "duration": {"type": ["integer", "null"]},
            "started_at": {"type": ["string", "null"], "format": "date-time"},
            "ended_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "NewCall": {
        "type": "object",
        "additionalProperties": False,
        "required": ["from_role"],
        "properties": {
            "from_role": {
                "type": "string",
                "description": "the party Twilio calls first; the other party is then dialed",
            }
        },
    },
    "Call": {
        "type": "object",
        "description": "A call Twilio was asked to place. Its interaction appears under the binding.",
        "required": ["sid", "binding_id", "from_role", "to_role", "status"],
        "properties": {
            "sid": {"type": "string", "description": "Twilio's CallSid"},
            "binding_id": {"type": "string"},
            "from_role": {"type": "string"},
            "to_role": {"type": "string"},
            "status": {"type": "string", "description": "Twilio's call status, e.g. queued"},
        },
    },
    "Waybill": {
        "type": "object",
        "required": ["carrier", "tracking_no", "binding_id"],
        "properties": {
            "carrier": {"type": "string"},
            "tracking_no": {"type": "string"},
            "binding_id": {"type": "string"},
        },
    },
    "Contact": {
        "type": "object",
        "description": "What a courier may know. Never a party number.",
        "required": ["tracking_no", "relay_number", "dial", "expires_at"],
        "properties": {
            "tracking_no": {"type": "string"},
            "relay_number": {"type": "string"},
            "extension": {"type": ["string", "null"]},
            "dial": {"type": "string"},
            "expires_at": _TIME,
        },
    },
    "PoolNumber": {
        "type": "object",
        "required": ["number", "country", "status", "live_bindings", "capacity"],
        "properties": {
            "number": {"type": "string"},
            "country": {"type": "string"},
            "area": {"type": "string"},
            "capabilities": {"type": "array", "items": {"enum": ["voice", "sms"]}},
            "status": {"enum": ["active", "locked", "retired"]},
            "live_bindings": {"type": "integer"},
            "capacity": {"type": "integer"},
        },
    },
}

# A retry with the same key and body gets the first answer; another body with it, 409.
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
}
_ID = {"name": "binding_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 64}}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _op(summary: str, scope: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "summary": summary,
        "security": [{"apiKey": [scope]}],
        "responses": {**responses, **_ERRORS},
        **extra,
    }


_PATHS: dict[str, Any] = {
    "/v1/bindings": {
        "post": _op(
            "Bind an order's parties to a relay number",
            "bindings:write",
            {
                "201": _json("Binding", "the binding"),
                "409": _error_response("pool exhausted, or Idempotency-Key reused with another body"),
                **_BODY_ERRORS,
            },
            parameters=[_IDEMPOTENCY_KEY],
            requestBody={"required": True, "content": {"application/json": {"schema": _ref("NewBinding")}}},
        ),
        "get": _op(
            "The owner's bindings, newest first",
            "bindings:read",
            {"200": _json("BindingPage", "a page"), "422": _error_response("bad query")},
            parameters=[
                {"name": "order_id", "in": "query", "schema": {"type": "string", "maxLength": 128}},
                {"name": "status", "in": "query", "schema": {"enum": ["active", "expired", "unbound"]}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"}},
            ],
        ),
    },
    "/v1/bindings:batch": {
        "post": _op(
            "Bind up to 100 orders' parties; each item answered as POST /v1/bindings would",
            "bindings:write",
            {
                "200": _json("BindingBatchResults", "one result per item, in order (a bad item fails alone)"),
                "409": _error_response("Idempotency-Key reused with another body"),
                **_BODY_ERRORS,
            },
            parameters=[_IDEMPOTENCY_KEY],
            requestBody={"required": True, "content": {"application/json": {"schema": _ref("BindingBatch")}}},
        ),
    },
    "/v1/bindings/{binding_id}": {
        "parameters": [_ID],
        "get": _op(
            "One binding",
            "bindings:read",
            {
                "200": _json("Binding", "the binding"),
                "404": _error_response("no such binding for this owner"),
            },
        ),
        "patch": _op(
            "Move the expiry, change the allow-list, or mark the order delivered",
            "bindings:write",
            {
                "200": _json("ChangedBinding", "the changed binding, with previous_expires_at"),
                "404": _error_response("no such binding for this owner"),
                "409": _error_response("the binding has ended, or would_shorten: nothing changed"),
                **_BODY_ERRORS,
                "400": _error_response(
                    "malformed JSON, not an object, several expiry fields, or none and no other change"
                ),
            },
            requestBody={
                "required": True,
                "content": {"application/json": {"schema": _ref("BindingChange")}},
            },
        ),
        "delete": _op(
            "Unbind now (idempotent)",
            "bindings:write",
            {
                "200": _json("Binding", "the ended binding"),
                "404": _error_response("no such binding for this owner"),
            },
        ),
    },
    "/v1/bindings/{binding_id}/interactions": {
        "parameters": [_ID],
        "get": _op(
            "Calls and messages of a binding, by role",
            "bindings:read",
            {
                "200": {
                    "description": "the interactions",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"data": {"type": "array", "items": _ref("Interaction")}},
                            }
                        }
                    },
                },
                "404": _error_response("no such binding for this owner"),
            },
        ),
    },
    "/v1/bindings/{binding_id}/calls": {
        "parameters": [_ID],
        "post": _op(
            "Click-to-call: Twilio calls from_role, then bridges to the other party",
            "calls:write",
            {
                "201": _json("Call", "Twilio accepted the call"),
                "404": _error_response("no such binding for this owner"),
                "409": _error_response(
                    "the binding has ended, or the Idempotency-Key was used with another request"
                ),
                "502": _error_response(
                    "Twilio refused the call or could not be reached; error.twilio has its status and code"
                ),
                "503": _error_response("click-to-call is not configured, or a backend is down"),
                **_BODY_ERRORS,
            },
            description=(
                "Both legs show the relay number. The binding needs exactly two parties (axb; axe "
                "with one allowed caller, whose role is `caller`). Each call counts against the "
                "binding's call quota: past it, 429 with code `call_quota_exceeded`."
            ),
            parameters=[_IDEMPOTENCY_KEY],
            requestBody={"required": True, "content": {"application/json": {"schema": _ref("NewCall")}}},
        ),
    },
    "/v1/bindings/{binding_id}/waybills/{tracking_no}": {
        "parameters": [
            _ID,
            {
                "name": "tracking_no",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "maxLength": 64},
            },
        ],
        "put": _op(
            "Link a carrier's tracking number to an axe binding",
            "bindings:write",
            {
                "200": _json("Waybill", "the link, updated"),
                "201": _json("Waybill", "the link, created"),
                "404": _error_response("no such binding for this owner"),
                "409": _error_response("the binding has ended, or another account linked the number"),
                **_BODY_ERRORS,
            },
            requestBody={
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["carrier"],
                            "properties": {"carrier": {"type": "string", "minLength": 1, "maxLength": 120}},
                        }
                    }
                },
            },
        ),
    },
    "/v1/waybills/{tracking_no}/contact": {
        "parameters": [
            {
                "name": "tracking_no",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "maxLength": 64},
            }
        ],
        "get": _op(
            "For the named carrier: the relay number and extension to print or dial",
            "waybills:read",
            {
                "200": _json("Contact", "the contact"),
                "404": _error_response("no such waybill for this carrier"),
            },
        ),
    },
    "/v1/pool": {
        "get": _op(
            "Relay numbers, region and load",
            "pool:read",
            {
                "200": {
                    "description": "the pool",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {"data": {"type": "array", "items": _ref("PoolNumber")}},
                            }
                        }
                    },
                }
            },
        )
    },
}


def spec(*, server_url: str | None = None) -> dict[str, Any]:
    """The document; operationIds, tags, servers, examples and error codes come
    from :mod:`maskline.api.openapi_meta`."""
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "maskline API",
            "version": __version__,
            "description": "Masked relay numbers for orders. No response carries a party's phone number.",
        },
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Authorization: Bearer ml_<id>_<secret>; scopes: " + ", ".join(SCOPES),
                }
            },
        },
        "paths": _PATHS,
    }
    return annotate(copy.deepcopy(document), server_url=server_url)


@bp.get("/openapi.json")
def openapi_json() -> ResponseReturnValue:
    # The URL clients use: MASKLINE_PUBLIC_URL behind TLS termination, else this request's.
    api = current_app.extensions.get(_API_EXTENSION)
    public = api.services.settings.public_url if api is not None else None
    return jsonify(spec(server_url=public or request.url_root.rstrip("/")))
