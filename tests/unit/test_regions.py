"""Where a number is: country, and the area code or else the geocoded place."""

from __future__ import annotations

import pytest

from maskline.numbers.regions import area_of_party, describe


@pytest.mark.parametrize(
    ("e164", "expected"),
    [
        ("+14155550100", ("US", "415")),  # NANP: three-digit area code
        ("+12125550143", ("US", "212")),
        ("+861065529988", ("CN", "10")),  # Beijing landline: two-digit area code
        ("+862161234567", ("CN", "21")),  # Shanghai landline
        ("+442071838750", ("GB", "20")),  # London
        ("+4930123456", ("DE", "30")),  # Berlin
        ("+8613800138000", ("CN", "Beijing")),  # CN mobile: no area code, geocoded place
        ("+85291234567", ("HK", "Hong Kong")),  # no area codes at all: geocoded place
        ("+18005550100", ("US", "")),  # toll free: no area, no place
    ],
)
def test_describe(e164: str, expected: tuple[str, str]) -> None:
    assert describe(e164) == expected


def test_area_of_party_matches_the_pool_description() -> None:
    # The allocator compares a party's area with relay numbers' stored areas,
    # so both must come from the same rule.
    assert area_of_party("+14155550132") == describe("+14155550100")
