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


# Where the sequence number sits in a canonical record: keys are sorted, so
# "seq" comes between "reason" and "subject". A quote inside a string value is
# always escaped (\"), so this text can only be the record's own key.
_SEQ_SLOT = ',"seq":0,"subject":'


def canonical_parts(
    *, at: dt.datetime, actor: str, action: str, subject: str, reason: str, data: str
) -> tuple[str, str]:
    """The canonical record around its ``seq``: ``prefix + str(seq) + suffix``
    is ``canonical_record(seq=seq, ...)`` decoded, for a writer that learns the
    ``seq`` only inside the statement that stores the record."""
    whole = canonical_record(
        seq=0, at=at, actor=actor, action=action, subject=subject, reason=reason, data=data
    ).decode()
    prefix, slot, rest = whole.partition(_SEQ_SLOT)
    if not slot:
        raise AssertionError("a canonical record always has its seq key")
    return prefix + ',"seq":', ',"subject":' + rest
