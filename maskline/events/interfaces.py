"""The events package's contract: event types, headers, signatures, errors.

Exception tree::

    EventsError
    ├── OwnerNotFound       no owner of that name
    ├── InvalidOwnerName    not a name an owner can have
    ├── InvalidOwnerLimit   a cap that is not a whole number from 0 (no cap)
    ├── OwnerLimitsUnavailable  Redis cannot take a new cap; nothing changed
    └── InvalidEventsUrl    the URL is not https (or http to loopback in development)

An event never carries a party number: only ids, roles, the (public) relay
number and extension, statuses and times.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

from maskline import errors

EventType = Literal[
    "binding.created",
    "binding.expired",
    "binding.unbound",
    "interaction.completed",
    "pool.exhausted",
]
EVENT_TYPES: tuple[EventType, ...] = (
    "binding.created",
    "binding.expired",
    "binding.unbound",
    "interaction.completed",
    "pool.exhausted",
)

EVENT_ID_HEADER = "Maskline-Event-Id"
TIMESTAMP_HEADER = "Maskline-Timestamp"
SIGNATURE_HEADER = "Maskline-Signature"
SIGNATURE_VERSION = "v1"


class EventsError(errors.MasklineError):
    """Base of the events package's errors."""


class OwnerNotFound(EventsError, errors.NotFound):
    """No owner of that name."""


class OwnerExists(EventsError, errors.Conflict):
    """An owner of that name already exists."""


class InvalidOwnerName(EventsError, errors.InputError):
    """Owner names are letters, digits and . _ : - (as API key owners)."""


class InvalidOwnerLimit(EventsError, errors.InputError):
    """A cap on live bindings must be a whole number from 0 (no cap)."""


class OwnerLimitsUnavailable(EventsError, errors.Unavailable):
    """Redis could not take the owner's new cap; nothing changed."""


class InvalidEventsUrl(EventsError, errors.InputError):
    """An events URL maskline will not send to; the message says why (never the query)."""


def signature(secret: str, timestamp: int | str, body: bytes) -> str:
    """``v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`` under the owner's events secret.

    The timestamp is signed with the body so that a captured request cannot
    be replayed later with a fresh timestamp.
    """
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def verify(secret: str, timestamp: str, body: bytes, header: str) -> bool:
    """Whether ``header`` (a Maskline-Signature value) signs ``timestamp`` and ``body``."""
    return hmac.compare_digest(signature(secret, timestamp, body), header.strip())
