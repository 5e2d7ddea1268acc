"""What a binding's calls and messages get: recording, SMS redaction, media, language.

The deployment sets the defaults (``MASKLINE_SMS_REDACT``, ``MASKLINE_SMS_MEDIA``);
a binding may carry its own, chosen when it is made. A connect reads them in
the same prepared statement as the target's sealed number (webhooks/services.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from maskline.webhooks.sms_redaction import LINK_PLACEHOLDER, redact

__all__ = ["LINK_PLACEHOLDER", "BindingOptions", "SmsPolicy"]


@dataclass(frozen=True, kw_only=True)
class SmsPolicy:
    """What happens to a message's content: redaction and media."""

    redact: frozenset[str]
    media: str  # forward or refuse

    def clean(self, body: str, *, region: str) -> str:
        """``body`` without the links and phone numbers this policy redacts, read
        after normalising (maskline.webhooks.sms_redaction; docs/sms-redaction.md).
        Numbers split across messages: maskline.webhooks.sms_carry."""
        return redact(body, region=region, phones="phones" in self.redact, links="links" in self.redact)


@dataclass(frozen=True, kw_only=True)
class BindingOptions:
    """One binding's effective options (its own, else the deployment's)."""

    record: bool
    sms: SmsPolicy
    # The binding's relay number: the only caller ID (and SMS sender) a connect may have.
    relay: str
    # The language its answers are in (None: the deployment's).
    language: str | None = None
