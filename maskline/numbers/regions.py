"""Where a number is: country, area, city and province, for geo-matched relay numbers."""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers

# phonenumbers' English geocoder names some NANP numbers by state ("California")
# and others by city and state code ("San Francisco, CA"): one spelling per state.
_US_STATES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA",
    "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA",
    "Hawaii": "HI", "Idaho": "ID", "Illinois": "IL", "Indiana": "IN", "Iowa": "IA", "Kansas": "KS",
    "Kentucky": "KY", "Louisiana": "LA", "Maine": "ME", "Maryland": "MD", "Massachusetts": "MA",
    "Michigan": "MI", "Minnesota": "MN", "Mississippi": "MS", "Missouri": "MO", "Montana": "MT",
    "Nebraska": "NE", "Nevada": "NV", "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM",
    "New York": "NY", "North Carolina": "NC", "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK",
    "Oregon": "OR", "Pennsylvania": "PA", "Rhode Island": "RI", "South Carolina": "SC",
    "South Dakota": "SD", "Tennessee": "TN", "Texas": "TX", "Utah": "UT", "Vermont": "VT",
    "Virginia": "VA", "Washington": "WA", "West Virginia": "WV", "Wisconsin": "WI", "Wyoming": "WY",
    "Washington D.C.": "DC",
}  # fmt: skip


@dataclass(frozen=True)
class Place:
    """A number's place at the three levels the ``nearest`` policy walks.

    ``area`` is the geographic area code where the plan has one ("415",
    "10"); ``city`` the geocoded place ("Nanjing, Jiangsu"), which is what
    lets a mainland mobile (no area code) meet a landline relay number of its
    city; ``province`` its state or province ("Jiangsu", "CA"). Any may be "".
    """

    country: str
    area: str
    city: str
    province: str


def _geocode(parsed: phonenumbers.PhoneNumber) -> str:
    # Imported here: the geocoding data takes half a second to load, and
    # most CLI commands never need it.
    from phonenumbers import geocoder

    return str(geocoder.description_for_number(parsed, "en") or "")


def place(e164: str) -> Place:
    """The :class:`Place` of an E.164 number."""
    parsed = phonenumbers.parse(e164, None)
    country = phonenumbers.region_code_for_number(parsed) or "ZZ"
    nsn = phonenumbers.national_significant_number(parsed)
    length = phonenumbers.length_of_geographical_area_code(parsed)
    area = nsn[:length] if length > 0 else ""
    city = _geocode(parsed)
    raw = city.rsplit(",", 1)[-1].strip() if city else ""
    province = _US_STATES.get(raw, raw) if country == "US" else raw
    if city == raw and country != "CN":
        city = ""  # named by its province alone; mainland city-provinces ("Beijing") are cities too
    return Place(country=country, area=area, city=city, province=province)


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
    return country, _geocode(parsed)


area_of_party = describe
