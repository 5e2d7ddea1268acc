"""What the OpenAPI document says about its operations besides their schemas:
operationId and tags (so generated clients get ``create_binding``, filed under
``bindings``), ``servers``, examples, and the enumerated error codes.

Kept apart from the paths in :mod:`maskline.api.openapi` and applied to the
finished document by :func:`annotate`: an operation added there without an
entry here still gets a derived operationId and a tag, and the test in
``tests/integration/test_openapi.py`` asks for a real name.
"""

from __future__ import annotations

import re
from typing import Any

from maskline.api.interfaces import ERROR_CODES

# (path, method) -> (operationId, tag)
OPERATIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("/v1/bindings", "post"): ("create_binding", "bindings"),
    ("/v1/bindings", "get"): ("list_bindings", "bindings"),
    ("/v1/bindings:batch", "post"): ("create_bindings_batch", "bindings"),
    ("/v1/bindings/{binding_id}", "get"): ("get_binding", "bindings"),
    ("/v1/bindings/{binding_id}", "patch"): ("update_binding", "bindings"),
    ("/v1/bindings/{binding_id}", "delete"): ("delete_binding", "bindings"),
    ("/v1/bindings/{binding_id}/interactions", "get"): ("list_interactions", "interactions"),
    ("/v1/bindings/{binding_id}/calls", "post"): ("create_call", "calls"),
    ("/v1/bindings/{binding_id}/waybills/{tracking_no}", "put"): ("link_waybill", "waybills"),
    ("/v1/waybills/{tracking_no}/contact", "get"): ("get_waybill_contact", "waybills"),
    ("/v1/pool", "get"): ("list_pool", "pool"),
}

TAGS = [
    {"name": "bindings", "description": "Bind an order's parties to a relay number; extend, change, unbind."},
    {"name": "interactions", "description": "Calls and messages of a binding, by role, never by number."},
    {"name": "calls", "description": "Click-to-call: Twilio calls one party, then bridges to the other."},
    {"name": "waybills", "description": "Carriers' tracking numbers and what a courier may dial."},
    {"name": "pool", "description": "The relay numbers and their load."},
]

_HTTP_METHODS = ("get", "put", "post", "delete", "patch")

_BINDING_EXAMPLE = {
    "id": "bd_k3v8q2m4x7p1r9t5",
    "order_id": "order-10023",
    "mode": "axb",
    "relay_number": "+14155550100",
    "extension": None,
    "status": "active",
    "expires_at": "2026-12-11T09:30:00Z",
    "created_at": "2026-12-08T09:30:00Z",
    "delivered_at": None,
    "roles": ["buyer", "merchant"],
    "allow": None,
    "allowed_callers": 0,
    "fallback_used": False,
    "record": False,
    "sms_policy": {"redact": None, "media": None},
    "language": None,
    "dial": {"buyer": "+14155550100", "merchant": "+14155550100"},
}

# Request and response examples of the main operations, by (path, method).
REQUEST_EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("/v1/bindings", "post"): {
        "axb": {
            "summary": "a buyer and a merchant share one relay number",
            "value": {
                "order_id": "order-10023",
                "mode": "axb",
                "parties": {"buyer": "+14155550132", "merchant": "+12125550143"},
                "ttl_seconds": 259200,
            },
        },
        "axe": {
            "summary": "a slip number with an extension, for the assigned courier",
            "value": {
                "order_id": "order-10024",
                "mode": "axe",
                "parties": {"buyer": "+14155550132"},
                "allow": ["+13125550154"],
            },
        },
    },
    ("/v1/bindings/{binding_id}", "patch"): {
        "extend": {"summary": "extend by a day", "value": {"extend_by_seconds": 86400}},
        "from_now": {"summary": "expire a day from now", "value": {"ttl_seconds": 86400}},
        "shorten": {
            "summary": "end in two hours, even if that is earlier",
            "value": {"ttl_seconds": 7200, "allow_shorten": True},
        },
        "delivered": {"summary": "the order was delivered", "value": {"status": "delivered"}},
    },
    ("/v1/bindings/{binding_id}/calls", "post"): {
        "merchant_first": {
            "summary": "ring the merchant, then the buyer",
            "value": {"from_role": "merchant"},
        },
    },
}

RESPONSE_EXAMPLES: dict[tuple[str, str, str], Any] = {
    ("/v1/bindings", "post", "201"): _BINDING_EXAMPLE,
    ("/v1/bindings/{binding_id}", "get", "200"): _BINDING_EXAMPLE,
    ("/v1/bindings", "get", "200"): {"data": [_BINDING_EXAMPLE], "next_cursor": None},
    ("/v1/bindings/{binding_id}/interactions", "get", "200"): {
        "data": [
            {
                "sid": "CA5f0c0d9b6a2e4c1f8e7d6c5b4a392817",
                "type": "call",
                "from_role": "merchant",
                "to_role": "buyer",
                "status": "completed",
                "duration": 42,
                "started_at": "2026-12-08T09:41:00Z",
                "ended_at": "2026-12-08T09:41:42Z",
            }
        ]
    },
}

_ERROR_EXAMPLES: dict[str, dict[str, Any]] = {
    "409": {
        "pool_exhausted": {
            "error": {"code": "pool_exhausted", "message": "no relay number is free for buyer"}
        },
        "owner_limit_reached": {
            "error": {
                "code": "owner_limit_reached",
                "message": "owner shop-1 has reached its cap of 5000 live bindings",
            }
        },
        "idempotency_key_reused": {
            "error": {
                "code": "idempotency_key_reused",
                "message": "this Idempotency-Key was used with a different request",
            }
        },
    },
    "422": {
        "invalid_fields": {
            "error": {
                "code": "invalid_fields",
                "message": "invalid field",
                "fields": [{"field": "parties.buyer", "reason": "not a valid phone number; send E.164"}],
            }
        }
    },
}


def derived_operation_id(path: str, method: str) -> str:
    """``post /v1/bindings/{binding_id}/calls`` -> ``post_bindings_binding_id_calls``: a
    stand-in for an operation :data:`OPERATIONS` does not name yet."""
    words = re.sub(r"[^a-z0-9]+", "_", path.removeprefix("/v1").lower()).strip("_")
    return f"{method}_{words}"


def _error_code_schema() -> dict[str, Any]:
    return {
        "type": "string",
        "enum": sorted(ERROR_CODES),
        "description": "A stable code, one per kind of failure:\n"
        + "\n".join(f"- `{code}` ({status}): {what}" for code, (status, what) in sorted(ERROR_CODES.items())),
    }


def _with_examples(operation: dict[str, Any], path: str, method: str) -> None:
    if (examples := REQUEST_EXAMPLES.get((path, method))) is not None:
        media = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if media is not None:
            media["examples"] = examples
    for status, response in operation.get("responses", {}).items():
        media = response.get("content", {}).get("application/json")
        if media is None:
            continue
        if (example := RESPONSE_EXAMPLES.get((path, method, status))) is not None:
            media["example"] = example
        elif status in _ERROR_EXAMPLES:
            media["examples"] = {name: {"value": value} for name, value in _ERROR_EXAMPLES[status].items()}


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def annotate(document: dict[str, Any], *, server_url: str | None = None) -> dict[str, Any]:
    """``document`` with operationIds, tags, servers, examples and the error codes added."""
    document["servers"] = [
        {"url": server_url or "/", "description": "this server (MASKLINE_PUBLIC_URL when set)"}
    ]
    document["tags"] = TAGS
    for path, item in document.get("paths", {}).items():
        for method in _HTTP_METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            operation_id, tag = OPERATIONS.get(
                (path, method), (derived_operation_id(path, method), "bindings")
            )
            operation["operationId"] = operation_id
            operation["tags"] = [tag]
            responses = operation.setdefault("responses", {})
            # Every operation can meet these, whatever its own errors.
            responses.setdefault("503", _error_response("Redis or the database cannot be reached; retry"))
            if "requestBody" in operation:
                responses.setdefault("415", _error_response("the body is not application/json"))
            _with_examples(operation, path, method)
    error = document["components"]["schemas"]["Error"]["properties"]["error"]
    error["properties"]["code"] = _error_code_schema()
    document["components"]["x-error-codes"] = [
        {"code": code, "status": status, "meaning": what}
        for code, (status, what) in sorted(ERROR_CODES.items())
    ]
    return document
