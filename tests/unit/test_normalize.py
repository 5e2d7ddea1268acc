"""Turning input into acceptable E.164 party numbers, or errors naming the field."""

from __future__ import annotations

import pytest

from maskline.vault.interfaces import InvalidPhoneNumber
from maskline.vault.normalize import (
    NumberPolicy,
    check_region,
    describe_form,
    masked_form,
    parse_party,
    parse_relay,
)

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


# -- the one parser: every form, in the region it is read in ---------------------------


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        # E.164 is accepted whatever the region, and without one.
        ("+8613912345678", None, "+8613912345678"),
        ("+86 139 1234 5678", "US", "+8613912345678"),
        ("+1 415 555 0132", "CN", "+14155550132"),
        # Mainland mobiles: 11 digits, with or without 86 / 0086, any separators.
        ("13912345678", "CN", "+8613912345678"),
        ("139-1234-5678", "CN", "+8613912345678"),
        ("139 1234 5678", "cn", "+8613912345678"),
        ("0086 139 1234 5678", "CN", "+8613912345678"),
        ("8613912345678", "CN", "+8613912345678"),
        ("１３９１２３４５６７８", "CN", "+8613912345678"),  # full-width digits  # noqa: RUF001
        # Mainland landlines: trunk 0, area code, number.
        ("010-65520100", "CN", "+861065520100"),
        ("(010) 6552 0100", "CN", "+861065520100"),
        ("021 6552 0101", "CN", "+862165520101"),
        ("0755-8765 4321", "CN", "+8675587654321"),
        ("+86 010 6552 0100", None, "+861065520100"),  # the trunk 0 kept after +86
        # National forms elsewhere.
        ("(415) 555-0132", "US", "+14155550132"),
        ("020 7946 0958", "GB", "+442079460958"),
    ],
)
def test_party_forms(raw: str, region: str | None, e164: str) -> None:
    assert parse_party(raw, field="parties.buyer", region=region) == e164


@pytest.mark.parametrize(
    ("raw", "region", "reason"),
    [
        ("95588", "CN", "95xxx"),
        ("+86 95555", None, "95xxx"),
        ("10086", "CN", "short service number"),
        ("12345", "CN", "short service number"),
        ("400-123-4567", "CN", "400 service number"),
        ("+86 400 123 4567", "US", "400 service number"),
        ("800-123-4567", "CN", "800 freephone"),
        ("13912345678", "US", "not a valid number in the numbering plan of US"),
        ("13912345678", None, "no region to read a national form in"),
        ("1391234567", "CN", "not a valid number in the numbering plan of CN"),
    ],
)
def test_party_refusals_name_the_field_and_the_reason(raw: str, region: str | None, reason: str) -> None:
    with pytest.raises(InvalidPhoneNumber) as err:
        parse_party(raw, field="parties.buyer", region=region)
    assert err.value.field == "parties.buyer" and reason in err.value.reason
    digits = "".join(c for c in raw if c.isdigit())
    assert digits not in str(err.value).replace(" ", "")


def test_a_national_form_in_the_wrong_region_says_what_to_send() -> None:
    with pytest.raises(InvalidPhoneNumber) as err:
        parse_party("13912340003", field="parties.buyer", region="US")
    message = str(err.value)
    assert "read as a US number" in message and "•••••••••03" in message
    assert "read as a CN number it would be valid: give region CN" in message
    assert "E.164" in message
    assert "13912340003" not in message and "139" not in message


def test_the_cn_hint_describes_mainland_forms() -> None:
    with pytest.raises(InvalidPhoneNumber, match="11-digit mobile"):
        parse_party("hello", field="n", region="CN")


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("010 6552 0100", "CN", "+861065520100"),
        ("+86 21 6552 0101", None, "+862165520101"),
        ("13800138099", "CN", "+8613800138099"),
        ("4001234567", "CN", "+864001234567"),  # a relay may be a service line
        ("415 555 0100", "US", "+14155550100"),
    ],
)
def test_relay_forms(raw: str, region: str | None, e164: str) -> None:
    assert parse_relay(raw, field="number", region=region) == e164


@pytest.mark.parametrize("raw", ["95588", "hello", "+1 099 555 0100", "02165520101"])
def test_relay_refusals(raw: str) -> None:
    region = None if raw == "02165520101" else "CN"
    with pytest.raises(InvalidPhoneNumber) as err:
        parse_relay(raw, field="numbers[0]", region=region)
    assert str(err.value).startswith("numbers[0]: ")


def test_policy_reads_national_forms_in_its_default_region() -> None:
    assert NumberPolicy(default_region="CN").normalize("13912345678") == "+8613912345678"
    assert NumberPolicy(default_region="CN").relay("010 6552 0100") == "+861065520100"
    with pytest.raises(InvalidPhoneNumber, match="400 service number"):
        NumberPolicy(default_region="CN", refused_types=frozenset()).normalize("4001234567")


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("13912345678", "•••••••••78"),
        ("+86 139-1234-5678", "+•• •••-••••-••78"),
        ("call 139", "???? •••"),
        ("12", "••"),
    ],
)
def test_masked_form_keeps_the_shape_and_at_most_two_digits(text: str, masked: str) -> None:
    assert masked_form(text) == masked


def test_describe_form() -> None:
    assert describe_form("0086 13912345678", "CN").startswith("an international form with the 00 prefix")
    assert describe_form("+8613912345678", None).startswith("an international form, + and 13 digits")
    assert describe_form("abc", "CN") == "no digits"


def test_an_unknown_region_is_named_as_the_problem() -> None:
    with pytest.raises(InvalidPhoneNumber, match=r"^region: must be a two-letter region code"):
        parse_party("13912345678", field="parties.buyer", region="XX")


def test_check_region() -> None:
    assert check_region(" cn ") == "CN"
    with pytest.raises(InvalidPhoneNumber, match="region: must be a two-letter region code"):
        check_region("China")
