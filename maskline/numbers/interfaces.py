"""The numbers package's contract: pool, bindings, routing decisions, errors.

Exception tree::

    NumbersError
    ├── InvalidRequest          bad input; names the field; nothing changed
    ├── PoolError               pool administration refused (names the number)
    ├── PoolExhausted           no relay number can take the binding
    │   └── NoNumberInRegion    strict geo policy, no free number in the area
    ├── OwnerLimitReached       the owner's cap on live bindings is reached
    ├── BindingNotFound         no such binding for this owner
    ├── BindingNotLive          the binding has ended (unbound or expired)
    └── RoutingUnavailable      Redis cannot answer or lost its data: fail closed

Messages never contain a party number; relay numbers are public and may
appear.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

from maskline import errors

Mode = Literal["axb", "axe"]
MODES: tuple[Mode, ...] = ("axb", "axe")

RejectReason = Literal[
    "no_binding",
    "stranger",
    "expired",
    "extension_required",
    "bad_extension",
    "unavailable",
    "no_recent_caller",
    "not_pool_number",
]


class NumbersError(errors.MasklineError):
    """Base of the numbers package's errors."""


class InvalidRequest(NumbersError, errors.InputError):
    """A request field is unacceptable. ``field`` names it; nothing was changed."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class PoolError(NumbersError, errors.Conflict):
    """A pool operation was refused (e.g. retiring a number with live bindings)."""


class PoolExhausted(NumbersError, errors.Conflict):
    """No relay number can take this binding.

    ``role`` is the party that could not be placed and ``needed`` how many
    more numbers the pool would need to place it.
    """

    def __init__(self, message: str, *, role: str | None = None, needed: int = 1) -> None:
        super().__init__(message)
        self.role = role
        self.needed = needed


class NoNumberInRegion(PoolExhausted):
    """The strict geo policy found no free number in the buyer's area."""


class OwnerLimitReached(NumbersError, errors.Conflict):
    """The owner holds as many live bindings as its cap allows (``limit``).

    Not a PoolExhausted: the pool may have room, this owner has none.
    """

    def __init__(self, *, owner: str, limit: int) -> None:
        super().__init__(
            f"owner {owner} has reached its cap of {limit} live bindings "
            "(MASKLINE_OWNER_MAX_LIVE_BINDINGS or maskline owner set-limits); "
            "unbind ended orders or ask for a higher cap"
        )
        self.owner = owner
        self.limit = limit


class BindingNotFound(NumbersError, errors.NotFound):
    """No binding with that id belongs to this owner."""


class BindingNotLive(NumbersError, errors.Conflict):
    """The binding has already ended."""


class RoutingUnavailable(NumbersError, errors.Unavailable):
    """The routing store cannot answer (down, or lost its data). Fail closed."""


class WouldShorten(NumbersError, errors.Conflict):
    """The change would make the expiry earlier and shortening was not asked
    for. Nothing was changed; ``current`` and ``requested`` say by how much."""

    def __init__(self, *, current: dt.datetime, requested: dt.datetime) -> None:
        super().__init__("the new expiry is earlier than the current one")
        self.current = current
        self.requested = requested


@dataclass(frozen=True, kw_only=True)
class ExpiryChange:
    """A changed binding and the expiry it had before the change."""

    view: BindingView
    previous_expires_at: dt.datetime


@dataclass(frozen=True, kw_only=True)
class BindRequest:
    """What an order system asks for. Party numbers are raw input here only."""

    order_id: str
    mode: Mode
    parties: dict[str, str]
    owner: str = "default"
    allow: list[str] | Literal["any"] | None = None
    ttl: dt.timedelta | None = None
    expires_at: dt.datetime | None = None
    fallback: Literal["axe"] | None = None
    region: str | None = None
    # Only these relay numbers may take the binding (None: the whole pool):
    # a compatibility face's own pool, or the one number its caller named.
    # The deployment's geo policy does not apply to a list given here.
    relay_numbers: frozenset[str] | None = None
    # Relay numbers tried first, in this order, before the usual ranking
    # (a participant's number from an earlier session, a preferred city).
    prefer_relays: tuple[str, ...] = ()
    # Record calls (announced to both sides).
    record: bool = False
    # The binding's own SMS policy; None keeps the deployment's. An empty
    # set means no redaction.
    sms_redact: frozenset[str] | None = None
    sms_media: Literal["forward", "refuse"] | None = None
    # The language its callers and texters are answered in (en-US, zh-CN;
    # None: the deployment's MASKLINE_VOICE_LANGUAGE).
    language: str | None = None
    # Who asks (``apikey:<id>``, ``admin:<name>``, ``cli:<user>``): told to
    # listeners, which put it in the audit chain. Never a number.
    actor: str | None = None
    # The parties' and allowed callers' numbers are already E.164, as the
    # vault's policy normalized them (a face that checked them): not parsed again.
    normalized: bool = False


def _timestamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, kw_only=True)
class BindingView:
    """A binding as shown to anyone: relay number, extension, roles. No party number."""

    id: str
    owner: str
    order_id: str
    mode: Mode
    relay_number: str
    extension: str | None
    status: str
    expires_at: dt.datetime
    created_at: dt.datetime
    roles: list[str]
    allow: Literal["any", "list"] | None
    allowed_callers: int
    fallback_used: bool = False
    record: bool = False
    # The binding's own SMS policy (None: the deployment's).
    sms_redact: tuple[str, ...] | None = None
    sms_media: str | None = None
    delivered_at: dt.datetime | None = None
    language: str | None = None

    def dial_for(self, role: str) -> str:
        """What ``role`` should dial: the relay number, with the extension for
        callers of an axe binding (``,`` pauses before DTMF on most phones)."""
        if self.mode == "axe" and role not in self.roles and self.extension:
            return f"{self.relay_number},{self.extension}"
        return self.relay_number

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "owner": self.owner,
            "order_id": self.order_id,
            "mode": self.mode,
            "relay_number": self.relay_number,
            "extension": self.extension,
            "status": self.status,
            "expires_at": _timestamp(self.expires_at),
            "created_at": _timestamp(self.created_at),
            "roles": list(self.roles),
            "allow": self.allow,
            "allowed_callers": self.allowed_callers,
            "fallback_used": self.fallback_used,
            "delivered_at": _timestamp(self.delivered_at) if self.delivered_at else None,
            "record": self.record,
            "sms_policy": {
                "redact": None if self.sms_redact is None else list(self.sms_redact),
                "media": self.sms_media,
            },
            "language": self.language,
        }


BindingEventType = Literal["binding.created", "binding.updated", "binding.unbound", "binding.expired"]


@dataclass(frozen=True, kw_only=True)
class BindingEvent:
    """A binding was created or ended, told to listeners inside its transaction.

    ``at`` is when it happened: the binding's creation, change, or end.
    ``actor`` is who did it (None: maskline itself, e.g. the sweeper), with
    their ``reason``; ``changes`` names what an update changed (field names
    and new public values: expiry, delivered, the allow-list's size).
    """

    type: BindingEventType
    binding: BindingView
    at: dt.datetime
    actor: str | None = None
    reason: str = ""
    changes: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class PoolExhaustedEvent:
    """A bind failed with :class:`PoolExhausted`; told to listeners in a
    transaction of its own (the bind's was rolled back). No number in it."""

    owner: str
    order_id: str
    mode: Mode
    role: str | None
    needed: int
    at: dt.datetime
    type: Literal["pool.exhausted"] = "pool.exhausted"


@dataclass(frozen=True, kw_only=True)
class RouteDecision:
    """What to do with a call or message from ``caller`` to a relay number.

    ``action`` is ``connect`` (with target role, binding id and the target's
    vault token), ``gather`` (ask for an extension) or ``reject`` (with a
    reason). Never carries a number.
    """

    action: Literal["connect", "reject"]
    reason: RejectReason | None = None
    binding_id: str | None = None
    from_role: str | None = None
    target_role: str | None = None
    target_token: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def reject(cls, reason: RejectReason, *, binding_id: str | None = None) -> RouteDecision:
        return cls(action="reject", reason=reason, binding_id=binding_id)

    def to_json(self) -> dict[str, object]:
        return {
            "action": self.action,
            "reason": self.reason,
            "binding_id": self.binding_id,
            "from_role": self.from_role,
            "target_role": self.target_role,
        }
