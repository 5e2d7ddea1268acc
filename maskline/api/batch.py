"""``POST /v1/bindings:batch``: up to 100 binds in one request, answered per item.

Each item is a single bind's body and gets the single endpoint's answer:
``{"status": <code>, "body": <what POST /v1/bindings would have answered>}``,
in the items' order. Items are bound one after another, each in its own
transaction, so one bad item (a bad field, an exhausted pool) never fails
the others.

One ``Idempotency-Key`` covers the batch. Each item is also recorded under
a key derived from it (in the item's own transaction, exactly when its
binding commits), so a retry of a batch that died half-way binds only the
items that had not committed, and replays the others' answers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from maskline.api.interfaces import FieldError, Unprocessable

MAX_ITEMS = 100

# (status, body) of one item
Answer = tuple[int, dict[str, Any]]


def items_of(body: Any) -> list[Any]:
    """The batch's items, or Unprocessable naming what is wrong with the envelope."""
    if not isinstance(body, dict):
        raise Unprocessable(
            "invalid field", fields=[FieldError("items", 'send {"items": [<bind body>, ...]}')]
        )
    unknown = sorted(set(body) - {"items"})
    if unknown:
        raise Unprocessable(
            "invalid field", fields=[FieldError(unknown[0], 'is not a batch field (only "items")')]
        )
    items = body.get("items")
    if not isinstance(items, list) or not items:
        raise Unprocessable(
            "invalid field", fields=[FieldError("items", "must be a list of 1 to 100 bind bodies")]
        )
    if len(items) > MAX_ITEMS:
        raise Unprocessable(
            "invalid field",
            fields=[FieldError("items", f"has {len(items)} items; send at most {MAX_ITEMS} per batch")],
        )
    return items


def item_key(batch_key: str, position: int) -> str:
    """The idempotency key of one item of a batch sent with ``batch_key``."""
    digest = hashlib.sha256(batch_key.encode()).hexdigest()[:40]
    return f"batch:{digest}:{position}"


def run(items: list[Any], bind_one: Callable[[int, Any], Answer]) -> dict[str, Any]:
    """``{"results": [...]}`` of ``bind_one(position, item)`` for each item, in order."""
    results = []
    for position, item in enumerate(items):
        status, body = bind_one(position, item)
        results.append({"status": status, "body": body})
    return {"results": results}
