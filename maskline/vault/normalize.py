"""The one number parser: user input to E.164, or an error a user can act on.

Every input that names a phone number (the CLI's pool add, pool import,
bind, route and sim; the API; the console's search; the compatible faces)
goes through :func:`parse_party` or :func:`parse_relay`:

- E.164 (``+8613912345678``, ``+1 415 555 0132``) is always accepted.
- A national form (``13912345678``, ``010-6552 0100``, ``(415) 555-0132``)
  is read in the request's region, else the deployment's
  (``MASKLINE_DEFAULT_REGION``). ``phonenumbers`` knows the mainland forms:
  11-digit mobiles, and landlines written with the trunk ``0`` and an area
  code; full-width digits and ``0086`` work too.
- Mainland service numbers (95xxx, 10086-style short numbers, 400 and 800
  lines) are refused as *party* numbers: nobody's own phone is one, and a
  binding to a bank's hotline would route buyers to it.

Errors name the field, describe the form seen (its digits masked but for
the last two, as the console masks numbers: the input may be somebody's
real number) and say what to send instead. Relay numbers are public, but
their parse errors are masked the same way, because a relay field is where
a mistyped party number would land.
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

DEFAULT_REFUSED_TYPES = frozenset({"PREMIUM_RATE", "SHARED_COST"})

# Regions tried for the "it would be valid as ..." hint when a national form
# fails in the region it was read in: the two this project is deployed in.
_HINT_REGIONS = ("CN", "US")

_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "has no country code that exists",
    NumberParseException.NOT_A_NUMBER: "is not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "is too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "is too short to be a phone number",
    NumberParseException.TOO_LONG: "is too long to be a phone number",
}

_SEPARATORS = frozenset(" -.()/\u00a0\u3000\uff08\uff09\uff0d")  # incl. full-width ( ) -


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


def masked_form(text: str) -> str:
    """``text`` with every digit but the last two shown as ``•``.

    Separators and a leading ``+`` stay, so the shape the user typed is
    recognisable (``•••-••••-••78``); any other character becomes ``?``
    (it could be part of a name or an address).
    """
    digits = [i for i, c in enumerate(text) if c.isdigit()]
    keep = set(digits[-2:]) if len(digits) > 4 else set()
    out = []
    for i, c in enumerate(text):
        if c.isdigit():
            out.append(c if i in keep else "•")
        elif c in _SEPARATORS or (c in "+\uff0b" and i == 0):
            out.append(c)
        else:
            out.append("?")
    return "".join(out)


def describe_form(text: str, region: str | None) -> str:
    """What the input looked like, for an error: its kind, digit count, masked form."""
    count = sum(c.isdigit() for c in text)
    if text[:1] in "+\uff0b":
        kind = f"an international form, + and {count} digits"
    elif text.startswith("00"):
        kind = f"an international form with the 00 prefix, {count} digits"
    elif region:
        kind = f"a national form of {count} digits, read as a {region} number"
    else:
        kind = f"a national form of {count} digits, with no region to read it in"
    if count == 0:
        return "no digits"
    return f"{kind}: {masked_form(text[:MAX_INPUT_LENGTH])}"


def _send_instead(region: str | None) -> str:
    # No example digits here: an error must never contain the input, and an
    # example could (the input may be as short as two digits).
    what = "the number in E.164 (+, country code, number)"
    if region == "CN":
        what += ", or a mainland national form: an 11-digit mobile, or a landline as 0, area code and number"
    elif region:
        what += f", or its national form as written in {region}"
    else:
        what += ", or its national form together with its region (e.g. CN)"
    return f"send {what}"


def check_region(region: object, *, field: str = "region") -> str:
    """``region`` as an upper-case region code phonenumbers knows, or an error naming ``field``."""
    if not isinstance(region, str) or region.strip().upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidPhoneNumber(field, "must be a two-letter region code such as CN or US")
    return region.strip().upper()


def _hint(text: str, region: str | None) -> str:
    """' (it would be a valid CN number)' when a national form fails only in its region."""
    if text[:1] in "+\uff0b" or text.startswith("00"):
        return ""
    for other in _HINT_REGIONS:
        if other == region:
            continue
        try:
            parsed = phonenumbers.parse(text, other)
        except NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return (
                f"; read as a {other} number it would be valid:"
                f" give region {other} or send it as +{parsed.country_code}..."
            )
    return ""


def _fail(field: str, reason: str, text: str, region: str | None) -> InvalidPhoneNumber:
    return InvalidPhoneNumber(
        field,
        f"{reason} (seen: {describe_form(text, region)}){_hint(text, region)}; {_send_instead(region)}",
    )


def _parse(raw: object, *, field: str, region: str | None, party: bool) -> phonenumbers.PhoneNumber:
    """Parsed and valid, or :class:`InvalidPhoneNumber`."""
    if not isinstance(raw, str):
        raise InvalidPhoneNumber(field, "must be a string")
    text = raw.strip()
    if not text:
        raise InvalidPhoneNumber(field, "is empty")
    if len(text) > MAX_INPUT_LENGTH:
        raise InvalidPhoneNumber(field, f"is longer than {MAX_INPUT_LENGTH} characters")
    # A region phonenumbers does not know would make every national form
    # "have no country code": name the real culprit instead.
    region = check_region(region) if region else None
    try:
        # "ZZ" reads only international forms: without a region, a national
        # form is an error, never a guess.
        parsed = phonenumbers.parse(text, region or "ZZ")
    except NumberParseException as exc:
        reason = _PARSE_REASONS.get(exc.error_type, "could not be parsed as a phone number")
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE and not region:
            reason = "has no country code, and there is no region to read a national form in"
        raise _fail(field, reason, text, region) from None
    if party and parsed.country_code == 86:
        _refuse_mainland_service(parsed, field=field, text=text, region=region)
    if not phonenumbers.is_possible_number(parsed):
        raise _fail(field, "has an impossible length for its country", text, region)
    if not phonenumbers.is_valid_number(parsed):
        where = phonenumbers.region_code_for_country_code(parsed.country_code or 0)
        reason = f"is not a valid number in the numbering plan of {where}"
        raise _fail(field, reason, text, region)
    if parsed.extension:
        # E.164 has no extension: dropping it would be a guess, and would
        # give everyone behind one switchboard the same token.
        raise InvalidPhoneNumber(
            field, "has an extension, which a party number cannot have; send the number without it"
        )
    return parsed


def _refuse_mainland_service(
    parsed: phonenumbers.PhoneNumber, *, field: str, text: str, region: str | None
) -> None:
    """Mainland service numbers are nobody's own phone (checked before validity,
    so that 95588 is named for what it is, not "invalid")."""
    nsn = phonenumbers.national_significant_number(parsed)
    kind = None
    if nsn.startswith(("95", "96")) and len(nsn) <= 8:
        kind = "a 95xxx/96xxx service number"
    elif len(nsn) < 10:  # every mainland landline and mobile has 10 or 11 digits
        kind = "a short service number (a carrier's or a hotline's)"
    elif nsn.startswith("400"):
        kind = "a 400 service number"
    elif nsn.startswith("800"):
        kind = "an 800 freephone service number"
    if kind:
        raise InvalidPhoneNumber(
            field,
            f"is {kind}, which cannot be a party (seen: {describe_form(text, region)}); "
            "send the person's own mobile or landline number",
        )


def parse_party(
    raw: object,
    *,
    field: str,
    region: str | None,
    allowed_countries: frozenset[str] = frozenset(),
    refused_types: frozenset[int] | None = None,
) -> str:
    """The E.164 form of a party's number (buyer, merchant, courier, allowed caller).

    ``region`` reads national forms (the request's region, else the
    deployment's); ``None`` accepts E.164 only. ``refused_types`` are
    phonenumbers type values (premium-rate and shared-cost by default).
    """
    parsed = _parse(raw, field=field, region=region, party=True)
    country = phonenumbers.region_code_for_number(parsed)
    if allowed_countries and country not in allowed_countries:
        allowed = ", ".join(sorted(allowed_countries))
        raise InvalidPhoneNumber(field, f"belongs to {country}, which is not allowed (allowed: {allowed})")
    refused = _DEFAULT_REFUSED if refused_types is None else refused_types
    number_type = phonenumbers.number_type(parsed)
    if number_type in refused:
        raise InvalidPhoneNumber(field, f"is a {_type_label(number_type)} number, which is refused")
    return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)


def parse_relay(raw: object, *, field: str, region: str | None) -> str:
    """The E.164 form of a relay number (a number of the pool).

    Same reading as :func:`parse_party`, but service numbers are not refused:
    what a carrier sells as a relay number is the operator's choice.
    """
    parsed = _parse(raw, field=field, region=region, party=False)
    return phonenumbers.format_number(parsed, PhoneNumberFormat.E164)


_DEFAULT_REFUSED = _type_names(DEFAULT_REFUSED_TYPES)


@dataclass(frozen=True, kw_only=True)
class NumberPolicy:
    """Which numbers may be party numbers, and the region national forms are read in.

    ``allowed_countries`` empty means any country; ``refused_types`` are
    phonenumbers type names (premium-rate and shared-cost by default).
    """

    default_region: str = "US"
    allowed_countries: frozenset[str] = frozenset()
    refused_types: frozenset[str] = DEFAULT_REFUSED_TYPES
    _refused: frozenset[int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_refused", _type_names(self.refused_types))

    def normalize(self, raw: object, *, field: str = "number", region: str | None = None) -> str:
        """:func:`parse_party` under this policy; ``region`` overrides the default region."""
        return parse_party(
            raw,
            field=field,
            region=region or self.default_region,
            allowed_countries=self.allowed_countries,
            refused_types=self._refused,
        )

    def relay(self, raw: object, *, field: str = "number", region: str | None = None) -> str:
        """:func:`parse_relay` in ``region``, else this policy's default region."""
        return parse_relay(raw, field=field, region=region or self.default_region)


def region_of(e164: str) -> str:
    """The ISO region of an E.164 number (e.g. ``CN``), or ``ZZ`` if unknown."""
    return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None)) or "ZZ"
