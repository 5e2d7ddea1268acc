"""The canonical form of an audit record and its chained hash.

Fixed representations (UTC with microseconds, sorted-key compact JSON) make
SQLite and PostgreSQL produce byte-identical input to the hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

GENESIS_HASH = "0" * 64


def canonical_time(at: dt.datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_data(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_record(
    *, seq: int, at: dt.datetime, actor: str, action: str, subject: str, reason: str, data: str
) -> bytes:
    body = {
        "seq": seq,
        "at": canonical_time(at),
        "actor": actor,
        "action": action,
        "subject": subject,
        "reason": reason,
        "data": data,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(prev_hash: str, record: bytes) -> str:
    return hashlib.sha256(prev_hash.encode() + record).hexdigest()
