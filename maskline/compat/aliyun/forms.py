"""Numbers as Alibaba writes them: mainland numbers in national form (no Flask here)."""

from __future__ import annotations

import phonenumbers

# Alibaba's numbers are mainland numbers: national forms are read as such,
# whatever the deployment's default region.
MAINLAND = "CN"
MAINLAND_CODE = 86


def national(e164: str) -> str:
    """A number as Alibaba writes it: a mainland number in its national form,
    digits only (``13800138000``, ``01012345678``); any other in E.164."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    if parsed.country_code != MAINLAND_CODE:
        return e164
    text = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    return "".join(c for c in text if c.isdigit())


def mask(e164: str) -> str:
    """A party number as QuerySubscriptionDetail shows it, every digit masked:
    a mainland number in Alibaba's national form (``***********`` for a
    mobile), any other as the country code and one ``*`` per other digit
    (``+1**********``)."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return "****"
    if parsed.country_code == MAINLAND_CODE:
        return "*" * len(national(e164))
    significant = phonenumbers.national_significant_number(parsed)
    return f"+{parsed.country_code}{'*' * len(significant)}"
