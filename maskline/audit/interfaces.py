"""The audit log's contract.

An append-only, hash-chained record of who did what to which subject, and
why. ``hash = SHA-256(prev_hash + canonical record)``; editing, deleting or
reordering any row breaks the chain, and ``verify`` names the first break.

Exceptions::

    AuditError
    ├── AuditChainBroken   (raised only by callers that want verify to throw)
    ├── CheckpointError    (signing key, checkpoint file or destination unusable)
    └── AlertNotFound      no alert with that id (acknowledge)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from maskline import errors


class AuditError(errors.MasklineError):
    """Base of the audit package's errors."""


class AuditChainBroken(AuditError, errors.IntegrityError):
    """The chain does not verify; the message names the first bad record."""


class CheckpointError(AuditError):
    """A checkpoint cannot be made, sent or read: the message says which and
    why, never a key, a signature secret or a destination URL."""


class AlertNotFound(AuditError, errors.NotFound):
    """No alert has that id."""


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


# -- alerts ---------------------------------------------------------------------

AlertKind = Literal[
    "distinct_buyers",  # a caller or an API key reached many distinct buyers in an hour
    "binding_burst",  # an API key created many bindings in a minute
    "stranger_calls",  # calls or messages from non-parties, to a relay number or from a caller
    "wrong_extensions",  # wrong extensions keyed, on a relay number or by a caller
    "failed_logins",  # failed console logins of one account in an hour
    "off_hours_reveal",  # a number was revealed outside working hours or days
    "extension_lockdown",  # a relay number's open extensions locked down after many wrong ones
    "pool_low",  # a region's live bindings passed 80% of what its active numbers hold
    "reveal_requested",  # a reveal request waits for approval (MASKLINE_REVEAL_NOTICE)
]
ALERT_KINDS: tuple[AlertKind, ...] = (
    "distinct_buyers",
    "binding_burst",
    "stranger_calls",
    "wrong_extensions",
    "failed_logins",
    "off_hours_reveal",
    "extension_lockdown",
    "pool_low",
    "reveal_requested",
)
# The outbox owner of alerts: the worker sends its rows to the configured
# alerts URL, signed with the alerts secret. Owner names (of API keys and of
# events settings) must start with a letter or digit, so no owner can be
# called this and receive, or redirect, the alerts.
ALERTS_OWNER = "@alerts"


@dataclass(frozen=True, kw_only=True)
class AlertView:
    """An alert as the console shows it. ``subject`` is ``apikey:<id>``,
    ``admin:<name>``, ``relay:<relay number>``, ``pool:<country>:<area>`` or
    ``caller:<fingerprint>``
    (the first 12 hex digits of the caller's blind index), never a party
    number; ``count`` is the highest count seen in the window, over
    ``threshold`` (the most that passes without an alert)."""

    alert_id: str
    kind: str
    subject: str
    count: int
    threshold: int
    window_start: dt.datetime
    raised_at: dt.datetime
    detail: dict[str, Any]
    acknowledged_by: str | None
    acknowledged_at: dt.datetime | None


class Alerts(Protocol):
    """What the admin console (and the rest of maskline) asks of the alerts.

    The signal methods never raise and never wait on SQL or Redis: the work
    is queued and done by a background thread (see ``maskline.audit.alerts``).
    """

    def failed_login(self, *, account: str, at: dt.datetime) -> None:
        """A console login of ``account`` failed at ``at``."""
        ...

    def reveal_viewed(self, *, admin: str, request_id: str, at: dt.datetime) -> None:
        """``admin`` viewed the number of reveal request ``request_id`` at
        ``at``; an alert if that is outside working hours or days (in the
        configured working time zone)."""
        ...

    def recent(self, session: Any, *, limit: int = 100, open_only: bool = False) -> list[AlertView]:
        """Alerts, newest first; ``open_only``: those not acknowledged yet."""
        ...

    def acknowledge(self, session: Any, alert_id: str, *, by: str) -> None:
        """Mark an alert seen by ``by`` (the first acknowledgement stands);
        :class:`AlertNotFound` for an unknown id."""
        ...
