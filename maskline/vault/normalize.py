"""Turning user input into an acceptable E.164 party number, or a clear error.

Every number is parsed by ``phonenumbers`` before anything else touches it.
Errors name the field and the reason but never echo the input, because the
input may be somebody's real number.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

from maskline.vault.interfaces import InvalidPhoneNumber

# Longer input than this is not a phone number; refusing it early keeps
# pathological strings away from the parser.
MAX_INPUT_LENGTH = 64

_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: (
        "has no valid country code (use +<country code> or set a region)"
    ),
    NumberParseException.NOT_A_NUMBER: "is not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "is too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "is too short to be a phone number",
    NumberParseException.TOO_LONG: "is too long to be a phone number",
}


def _type_names(types: Iterable[str]) -> frozenset[int]:
    result = set()
    for name in types:
        value = getattr(PhoneNumberType, name.upper(), None)
        if not isinstance(value, int):
            raise ValueError(f"unknown phone number type {name!r}")
        result.add(value)
    return frozenset(result)


def _type_label(number_type: int) -> str:
    for name in dir(PhoneNumberType):
        if not name.startswith("_") and getattr(PhoneNumberType, name) == number_type:
            return name.lower().replace("_", "-")
    return "unknown"


@dataclass(frozen=True, kw_only=True)
class NumberPolicy:
    """Which numbers may be party numbers.

    ``allowed_countries`` empty means any country; ``refused_types`` are
    phonenumbers type names (premium-rate and shared-cost by default).
    """

    default_region: str = "US"
    allowed_countries: frozenset[str] = frozenset()
    refused_types: frozenset[str] = frozenset({"PREMIUM_RATE", "SHARED_COST"})
    _refused: frozenset[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_refused", _type_names(self.refused_types))

    def normalize(self, raw: object, *, field: str = "number", region: str | None = None) -> str:
        """The E.164 form of ``raw``, or :class:`InvalidPhoneNumber` naming ``field``."""
        parsed = self._parse(raw, field=field, region=region)
        self._check(parsed, field=field)
        return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)

    def _parse(self, raw: object, *, field: str, region: str | None) -> phonenumbers.PhoneNumber:
        if not isinstance(raw, str):
            raise InvalidPhoneNumber(field, "must be a string")
        text = raw.strip()
        if not text:
            raise InvalidPhoneNumber(field, "is empty")
        if len(text) > MAX_INPUT_LENGTH:
            raise InvalidPhoneNumber(field, f"is longer than {MAX_INPUT_LENGTH} characters")
        try:
            parsed = phonenumbers.parse(text, (region or self.default_region).upper())
        except NumberParseException as exc:
            reason = _PARSE_REASONS.get(exc.error_type, "could not be parsed as a phone number")
            raise InvalidPhoneNumber(field, reason) from None
        if not phonenumbers.is_possible_number(parsed):
            raise InvalidPhoneNumber(field, "has an impossible length for its country")
        if not phonenumbers.is_valid_number(parsed):
            raise InvalidPhoneNumber(field, "is not a valid number in its numbering plan")
        if parsed.extension:
            # E.164 has no extension: dropping it would be a guess, and would
            # give everyone behind one switchboard the same token.
            raise InvalidPhoneNumber(field, "has an extension, which a party number cannot have")
        return parsed

    def _check(self, parsed: phonenumbers.PhoneNumber, *, field: str) -> None:
        country = phonenumbers.region_code_for_number(parsed)
        if self.allowed_countries and country not in self.allowed_countries:
            allowed = ", ".join(sorted(self.allowed_countries))
            raise InvalidPhoneNumber(
                field, f"belongs to {country}, which is not allowed (allowed: {allowed})"
            )
        number_type = phonenumbers.number_type(parsed)
        if number_type in self._refused:
            raise InvalidPhoneNumber(field, f"is a {_type_label(number_type)} number, which is refused")


def region_of(e164: str) -> str:
    """The ISO region of an E.164 number (e.g. ``CN``), or ``ZZ`` if unknown."""
    return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None)) or "ZZ"
