"""The console lists' filters: read from a query string, checked, typed.

Each filter is input from anyone with a console login: a value that cannot
be used is refused with :class:`InvalidAdminInput` naming the field, what
was seen is not echoed back, and nothing is queried. Times are read in the
console's zone (a date alone means the whole day); relay numbers by the
project's one parser in the deployment's region.

``args()`` gives the filter back as query-string pairs: for the pager's
links, for the CSV link, and for the audit record of an export.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from maskline.admin.interfaces import InvalidAdminInput
from maskline.numbers.services import is_binding_id
from maskline.vault.interfaces import InvalidPhoneNumber
from maskline.vault.normalize import parse_relay

MAX_TEXT = 120
_ACTOR = re.compile(r"^[\w.:@-]{1,120}$")
_ACTION = re.compile(r"^[a-z_.]{1,64}$")
# Subjects are ids and words (bd_..., rv_..., key:..., pool); never a number.
_SUBJECT = re.compile(r"^[\w.:@-]{1,120}$")
_CODE = re.compile(r"^[a-z_-]{1,40}$")
ALERT_STATES = ("open", "acknowledged")
# What the interactions page offers to filter by (any status code is accepted).
OUTCOMES = (
    "completed",
    "busy",
    "no-answer",
    "failed",
    "canceled",
    "refused",
    "rejected",
    "in-progress",
    "ringing",
    "queued",
    "delivered",
    "undelivered",
    "forwarded",
    "received",
    "sent",
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?$")


def _text(args: Mapping[str, str], field: str) -> str | None:
    value = (args.get(field) or "").strip()
    if len(value) > MAX_TEXT:
        raise InvalidAdminInput(field, f"must be at most {MAX_TEXT} characters")
    return value or None


def _matching(args: Mapping[str, str], field: str, pattern: re.Pattern[str], what: str) -> str | None:
    value = _text(args, field)
    if value is not None and not pattern.match(value):
        raise InvalidAdminInput(field, what)
    return value


def _time(args: Mapping[str, str], field: str, zone: zoneinfo.ZoneInfo, *, end: bool) -> dt.datetime | None:
    """A date (the day's start, or with ``end`` the next day's) or a date and time."""
    value = _text(args, field)
    if value is None:
        return None
    refused = InvalidAdminInput(field, "must be a date (2026-12-08) or a date and time (2026-12-08T14:30)")
    if not (_DATE.match(value) or _DATE_TIME.match(value)):
        raise refused
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise refused from None
    local = parsed.replace(tzinfo=zone)
    if end and _DATE.match(value):
        local += dt.timedelta(days=1)
    return local.astimezone(dt.UTC)


@dataclass(frozen=True, kw_only=True)
class TimeRange:
    """From ``since`` (inclusive) to ``until`` (exclusive), either open."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    # As typed, for links and the export's record.
    since_text: str | None = None
    until_text: str | None = None

    @classmethod
    def read(cls, args: Mapping[str, str], zone: zoneinfo.ZoneInfo) -> TimeRange:
        since = _time(args, "since", zone, end=False)
        until = _time(args, "until", zone, end=True)
        if since is not None and until is not None and until <= since:
            raise InvalidAdminInput("until", "must be later than since")
        return cls(since=since, until=until, since_text=_text(args, "since"), until_text=_text(args, "until"))

    def args(self) -> dict[str, str]:
        return {k: v for k, v in (("since", self.since_text), ("until", self.until_text)) if v}


def _pairs(**values: str | None) -> dict[str, str]:
    return {k: v for k, v in values.items() if v}


@dataclass(frozen=True, kw_only=True)
class AuditFilter:
    """Audit log: actor (a prefix: ``admin:`` finds every console user), action (a prefix),
    subject (exact: a binding's whole trail), time."""

    actor: str | None = None
    action: str | None = None
    subject: str | None = None
    time: TimeRange = TimeRange()

    @classmethod
    def read(cls, args: Mapping[str, str], *, zone: zoneinfo.ZoneInfo) -> AuditFilter:
        return cls(
            actor=_matching(args, "actor", _ACTOR, "must be an actor such as admin:olga or key:shop-a"),
            action=_matching(args, "action", _ACTION, "must be an action such as binding.unbound"),
            subject=_matching(args, "subject", _SUBJECT, "must be an id such as bd_0123456789abcdef"),
            time=TimeRange.read(args, zone),
        )

    def args(self) -> dict[str, str]:
        return {**_pairs(actor=self.actor, action=self.action, subject=self.subject), **self.time.args()}


@dataclass(frozen=True, kw_only=True)
class InteractionFilter:
    """Interactions: binding id, relay number, outcome (the status code), time."""

    binding: str | None = None
    relay: str | None = None
    outcome: str | None = None
    time: TimeRange = TimeRange()

    @classmethod
    def read(cls, args: Mapping[str, str], *, zone: zoneinfo.ZoneInfo, region: str) -> InteractionFilter:
        binding = _text(args, "binding")
        if binding is not None and not is_binding_id(binding):
            raise InvalidAdminInput("binding", "must be a binding id such as bd_0123456789abcdef")
        relay = _text(args, "relay")
        if relay is not None:
            try:
                relay = parse_relay(relay, field="relay", region=region)
            except InvalidPhoneNumber:
                raise InvalidAdminInput(
                    "relay", "must be a relay number, national or with its country code"
                ) from None
        return cls(
            binding=binding,
            relay=relay,
            outcome=_matching(args, "outcome", _CODE, "must be a status such as completed or no-answer"),
            time=TimeRange.read(args, zone),
        )

    def args(self) -> dict[str, str]:
        return {**_pairs(binding=self.binding, relay=self.relay, outcome=self.outcome), **self.time.args()}


@dataclass(frozen=True, kw_only=True)
class AlertFilter:
    """Alerts: kind (its code) and state (open or acknowledged)."""

    kind: str | None = None
    state: str | None = None

    @classmethod
    def read(cls, args: Mapping[str, str]) -> AlertFilter:
        state = _text(args, "state")
        # The old link's ?open=1 still means "open only".
        if state is None and args.get("open") == "1":
            state = "open"
        if state is not None and state not in ALERT_STATES:
            raise InvalidAdminInput("state", "must be open or acknowledged")
        return cls(
            kind=_matching(args, "kind", _CODE, "must be an alert kind such as binding_burst"), state=state
        )

    def args(self) -> dict[str, str]:
        return _pairs(**asdict(self))


@dataclass(frozen=True, kw_only=True)
class PoolFilter:
    """Pool numbers: status."""

    status: str | None = None

    @classmethod
    def read(cls, args: Mapping[str, str]) -> PoolFilter:
        status = _text(args, "status")
        if status is not None and status not in ("active", "locked", "retired"):
            raise InvalidAdminInput("status", "must be active, locked or retired")
        return cls(status=status)

    def args(self) -> dict[str, str]:
        return _pairs(status=self.status)


@dataclass(frozen=True, kw_only=True)
class RevealFilter:
    """Reveal requests: status."""

    status: str | None = None

    @classmethod
    def read(cls, args: Mapping[str, str]) -> RevealFilter:
        status = _text(args, "status")
        if status is not None and status not in (
            "pending",
            "approved",
            "viewed",
            "denied",
            "cancelled",
            "expired",
        ):
            raise InvalidAdminInput("status", "must be a reveal status such as pending or approved")
        return cls(status=status)

    def args(self) -> dict[str, str]:
        return _pairs(status=self.status)
