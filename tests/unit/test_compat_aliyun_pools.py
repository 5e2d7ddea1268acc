"""ExpectCity's matching and CallRestrict's roles: no I/O."""

from __future__ import annotations

import pytest

from maskline.compat.aliyun.pools import Cities, city_key
from maskline.compat.aliyun.restrict import restricted_roles

BEIJING, GUANGZHOU, CHICAGO = "+861058000001", "+862088000001", "+13125550100"


@pytest.mark.parametrize(
    ("given", "key"),
    [
        (" 北京市 ", "北京"),
        ("SHENZHEN", "shenzhen"),
        ("广州市", "广州"),
        ("市", ""),
        ("New York", "new york"),
    ],
)
def test_a_city_is_compared_without_case_spaces_or_a_trailing_shi(given: str, key: str) -> None:
    assert city_key(given) == key


@pytest.mark.parametrize(
    ("city", "found"),
    [
        ("北京", (BEIJING,)),
        ("Beijing", (BEIJING,)),
        ("广州", (GUANGZHOU,)),
        ("广东省广州市", (GUANGZHOU,)),
        ("guangzhou", (GUANGZHOU,)),
        ("chicago", (CHICAGO,)),
        ("Shanghai", ()),
        ("  ", ()),
    ],
)
def test_numbers_are_found_by_their_city_in_chinese_or_english(city: str, found: tuple[str, ...]) -> None:
    assert Cities().in_city(city, [BEIJING, GUANGZHOU, CHICAGO]) == found


def test_a_number_is_geocoded_once() -> None:
    cities = Cities()
    assert cities.names_of(BEIJING) is cities.names_of(BEIJING)  # the kept set, not a new one
    assert {"北京", "beijing"} <= cities.names_of(BEIJING)


@pytest.mark.parametrize(
    ("restriction", "mode", "group", "roles"),
    [
        ("CONTROL_AX_DISABLE", "axb", False, {"a"}),
        ("CONTROL_BX_DISABLE", "axb", False, {"b"}),
        ("CONTROL_AX_DISABLE", "axe", False, {"buyer"}),
        ("CONTROL_BX_DISABLE", "axe", False, {"caller"}),  # AXN: B is its one allowed caller
        ("CONTROL_BX_DISABLE", "axe", True, {"b"}),  # AXG: B is the party b, never G's numbers
        (None, "axb", False, set()),
    ],
)
def test_restricted_roles(restriction: str | None, mode: str, group: bool, roles: set[str]) -> None:
    assert restricted_roles(restriction, mode=mode, group=group) == roles
