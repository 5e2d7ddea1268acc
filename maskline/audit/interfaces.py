"""The audit log's contract.

An append-only, hash-chained record of who did what to which subject, and
why. ``hash = SHA-256(prev_hash + canonical record)``; editing, deleting or
reordering any row breaks the chain, and ``verify`` names the first break.

Exceptions::

    AuditError
    └── AuditChainBroken   (raised only by callers that want verify to throw)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


class AuditError(Exception):
    """Base of the audit package's errors."""


class AuditChainBroken(AuditError):
    """The chain does not verify; the message names the first bad record."""


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """One record as appended. ``subject`` is a token or an id, never a number."""

    actor: str
    action: str
    subject: str
    reason: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class VerifyResult:
    """Outcome of walking the chain."""

    ok: bool
    records: int
    first_bad_seq: int | None = None
    problem: str | None = None
    last_hash: str | None = None
    last_at: dt.datetime | None = None

    def summary(self) -> str:
        if self.ok:
            return f"OK {self.records} records"
        return f"BROKEN at record {self.first_bad_seq}: {self.problem}"
