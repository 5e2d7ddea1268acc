"""Turning input into acceptable E.164 party numbers, or errors naming the field."""

from __future__ import annotations

import pytest

from maskline.vault.interfaces import InvalidPhoneNumber
from maskline.vault.normalize import NumberPolicy

POLICY = NumberPolicy(default_region="US")


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("+1 415 555 0132", None, "+14155550132"),
        ("(415) 555-0132", None, "+14155550132"),
        ("415.555.0132", "US", "+14155550132"),
        ("13800138000", "CN", "+8613800138000"),
        ("+86 138 0013 8000", None, "+8613800138000"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("  +44 20 7946 0958  ", None, "+442079460958"),
    ],
)
def test_valid_numbers_become_e164(raw: str, region: str | None, e164: str) -> None:
    assert POLICY.normalize(raw, field="parties.buyer", region=region) == e164


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("hello", "not a phone number"),
        ("12", "impossible length"),
        ("+1 415 555 01329999", "impossible length"),
        ("+1 415 555 0132 9999 9999 9999", "too long"),
        ("+1 415 555 013", "impossible length"),
        ("+1 099 555 0132", "not a valid number"),
        ("9" * 70, "longer than 64"),
        (4155550132, "must be a string"),
        (None, "must be a string"),
        ("+1 415 555 0132 ext. 12", "has an extension"),
        ("(415) 555-0132 x9", "has an extension"),
    ],
)
def test_bad_input_names_field_and_reason_without_echoing(raw: object, reason: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as err:
        POLICY.normalize(raw, field="parties.buyer")
    assert str(err.value).startswith("parties.buyer: ") and reason in err.value.reason
    assert "4155550132" not in str(err.value) and "555" not in str(err.value)


@pytest.mark.parametrize(
    ("raw", "kind"), [("+1 900 555 0100", "premium-rate"), ("+33 8 84 01 23 45", "shared-cost")]
)
def test_premium_rate_and_shared_cost_are_refused_by_default(raw: str, kind: str) -> None:
    with pytest.raises(InvalidPhoneNumber, match=kind):
        POLICY.normalize(raw, field="n")


def test_refused_types_are_configurable() -> None:
    assert NumberPolicy(refused_types=frozenset()).normalize("+1 900 555 0100") == "+19005550100"
    with pytest.raises(InvalidPhoneNumber, match="mobile"):
        NumberPolicy(refused_types=frozenset({"MOBILE"})).normalize("+86 138 0013 8000")


def test_allowed_countries_policy() -> None:
    policy = NumberPolicy(allowed_countries=frozenset({"CN"}))
    assert policy.normalize("+86 138 0013 8000") == "+8613800138000"
    with pytest.raises(InvalidPhoneNumber, match="belongs to US, which is not allowed"):
        policy.normalize("+1 415 555 0132")
