"""Where a number is: country and area, for geo-matched relay numbers."""

from __future__ import annotations

import phonenumbers


def describe(e164: str) -> tuple[str, str]:
    """(country, area) of an E.164 number.

    area is the geographic area code where the numbering plan has one
    ("415", "10"), else phonenumbers' geocoded place in English, else "".
    """
    parsed = phonenumbers.parse(e164, None)
    country = phonenumbers.region_code_for_number(parsed) or "ZZ"
    nsn = phonenumbers.national_significant_number(parsed)
    length = phonenumbers.length_of_geographical_area_code(parsed)
    if length > 0:
        return country, nsn[:length]
    # Imported here: the geocoding data takes half a second to load, and
    # most numbers (and every CLI command that never adds one) do not need it.
    from phonenumbers import geocoder

    return country, geocoder.description_for_number(parsed, "en") or ""


area_of_party = describe
