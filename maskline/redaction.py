"""Finding and masking phone numbers in free text (reasons, logs, SMS bodies).

phonenumbers' matcher finds numbers in any written format; a digit-run rule
catches what it cannot place (e.g. national numbers of another region).
"""

from __future__ import annotations

import re

from phonenumbers import Leniency, PhoneNumberMatcher

PHONE_PLACEHOLDER = "[phone removed]"

# Seven or more digits, allowing the separators people type between groups
# (spaces, brackets, dots, slashes, underscores, hyphens and dashes).
_DIGIT_RUN = re.compile(r"\+?\d(?:[\s().\-/_\u2010-\u2015]{0,3}\d){6,}")
# ISO dates (and date-times) look like digit runs but are not numbers anybody
# dials. They are blanked out before the digit-run rule runs, so that a date
# followed by a time ("2026-11-24 12:00") is not read as one long number.
_ISO_DATE = re.compile(
    r"(?<![\d+])(?:19|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
    r"(?:[T ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:[.,]\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?(?!\d)"
)


def redact_phone_numbers(text: str, *, region: str = "US", placeholder: str = PHONE_PLACEHOLDER) -> str:
    """``text`` with every phone number in it replaced by ``placeholder``."""
    if not text:
        return text
    spans = [(m.start, m.end) for m in PhoneNumberMatcher(text, region, leniency=Leniency.VALID)]
    # Same length, no digits: positions in ``dateless`` are positions in ``text``.
    dateless = _ISO_DATE.sub(lambda m: "#" * len(m.group()), text)
    spans += [(m.start(), m.end()) for m in _DIGIT_RUN.finditer(dateless)]
    if not spans:
        return text
    spans.sort()
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, last = [], 0
    for start, end in merged:
        out.append(text[last:start])
        out.append(placeholder)
        last = end
    out.append(text[last:])
    return "".join(out)


def contains_phone_number(text: str, *, region: str = "US") -> bool:
    return redact_phone_numbers(text, region=region) != text


__all__ = ["PHONE_PLACEHOLDER", "contains_phone_number", "redact_phone_numbers"]
