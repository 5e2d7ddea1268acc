"""The webhooks package's contract: what a webhook answers, and its exceptions.

Exception tree::

    WebhookError
    ├── SignatureInvalid     missing or wrong X-Twilio-Signature (HTTP 403)
    ├── BadWebhookRequest    a signed request lacks a field or has a bad one (HTTP 400)
    └── BackendUnavailable   Redis, the database or the vault failed: apologise, HTTP 200

No message carries a party number. Relay numbers are public, but they are
never metric labels either.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal, Protocol

# Why a call or message reached no one: the router's reasons, plus the
# webhook's own. These (never numbers) are the metric labels.
from maskline import errors
from maskline.numbers.interfaces import RejectReason, RouteDecision

WebhookReason = Literal[
    RejectReason,
    "relay_caller",
    "locked_out",
    "quota",
    "media_refused",
    "completed",
    "wrong_relay",
    "locked_down",
    "ended",
    "opted_out",
    "opted_in",
    "recipient_opted_out",
]

TERMINAL_CALL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
TERMINAL_SMS_STATUSES = frozenset({"delivered", "undelivered", "failed", "read"})


class WebhookError(errors.MasklineError):
    """Base of the webhooks package's errors."""


class SignatureInvalid(WebhookError, errors.Forbidden):
    """The request is not signed by Twilio for the URL it was sent to."""


class BadWebhookRequest(WebhookError, errors.InputError):
    """A signed request lacks a required field or has an unusable one."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field}: missing or invalid")
        self.field = field


class BackendUnavailable(WebhookError, errors.Unavailable):
    """Redis, the database or the vault could not serve this request."""


@dataclass(frozen=True, kw_only=True)
class StepDecision:
    """What one webhook step decided, as stored for retries (no number in it).

    ``action`` is ``connect``, ``gather`` (ask for the extension; ``attempt``
    is the next attempt number) or ``reject``. A connect names the target by
    vault token, so a retry re-opens the vault rather than storing a number.
    """

    action: Literal["connect", "gather", "reject"]
    reason: str | None = None
    binding_id: str | None = None
    from_role: str | None = None
    target_role: str | None = None
    target_token: str | None = None
    attempt: int = 0
    # How many digits a gather collects: the relay number's extension length.
    digits: int = 0

    @classmethod
    def from_route(cls, decision: RouteDecision) -> StepDecision:
        if decision.action == "connect":
            return cls(
                action="connect",
                binding_id=decision.binding_id,
                from_role=decision.from_role,
                target_role=decision.target_role,
                target_token=decision.target_token,
            )
        return cls.rejected(decision.reason or "unavailable", binding_id=decision.binding_id)

    @classmethod
    def rejected(cls, reason: str, *, binding_id: str | None = None) -> StepDecision:
        return cls(action="reject", reason=reason, binding_id=binding_id)

    def dumps(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v not in (None, 0)}, sort_keys=True)

    @classmethod
    def loads(cls, text: str | bytes) -> StepDecision:
        return cls(**json.loads(text))


class Webhooks(Protocol):
    """The decisions behind the endpoints; each returns TwiML text and never raises
    for a backend failure (that is an apology, counted)."""

    def voice(self, *, call_sid: str, relay: str, caller: str) -> str:
        """An incoming call to ``relay``."""
        ...

    def extension(self, *, call_sid: str, relay: str, caller: str, digits: str, attempt: int) -> str:
        """The digits a caller keyed after the ``attempt``-th extension prompt."""
        ...

    def sms(self, *, message_sid: str, relay: str, sender: str, body: str, media: list[str]) -> str:
        """An incoming message to ``relay``, with the URLs of its media."""
        ...

    def voice_status(self, *, call_sid: str, status: str, duration: int | None) -> None:
        """A call status callback: store the interaction, mark a finished call."""
        ...

    def sms_status(self, *, message_sid: str, status: str) -> None:
        """A message status callback: store the interaction."""
        ...
