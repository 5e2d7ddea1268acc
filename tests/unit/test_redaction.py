"""The phone-number redactor: numbers in any written form go, ids and dates stay."""

from __future__ import annotations

import logging

import pytest

from maskline.logging_setup import configure_logging
from maskline.redaction import PHONE_PLACEHOLDER, contains_phone_number, redact_phone_numbers

FULL_WIDTH_DIGITS = str.maketrans("0123456789", "".join(chr(0xFF10 + d) for d in range(10)))


@pytest.mark.parametrize(
    "number",
    [
        # E.164 and international forms
        "+14155550132",
        "+1 415 555 0132",
        "+1-415-555-0132",
        "+1 (415) 555-0132",
        "14155550132",
        # US national, with and without separators
        "4155550132",
        "(415) 555-0132",
        "415-555-0132",
        "415.555.0132",
        "415/555/0132",
        "415_555_0132",
        "415 - 555 - 0132",
        "4 1 5 5 5 5 0 1 3 2",
        # CN mobiles
        "+8613800138000",
        "+86 138 0013 8000",
        "(+86) 138-0013-8000",
        "008613800138000",
        "13800138000",
        "138 0013 8000",
        "138-0013-8000",
        "1 3 8 0 0 1 3 8 0 0 0",
        "13800138000".translate(FULL_WIDTH_DIGITS),
        # UK
        "+44 20 7946 0958",
        "+44 (0)20 7946 0958",
        "020 7946 0958",
        "+44 7700 900123",
        "07700 900123",
        "0044 20 7946 0958",
    ],
)
@pytest.mark.parametrize("region", ["US", "CN", "GB"])
def test_a_number_in_any_format_is_masked(number: str, region: str) -> None:
    text = f"customer asked to be called on {number} after six"

    redacted = redact_phone_numbers(text, region=region)

    assert PHONE_PLACEHOLDER in redacted
    assert not any(ch.isdigit() for ch in redacted), redacted
    assert redacted.startswith("customer asked to be called on ")
    assert redacted.endswith(" after six")


@pytest.mark.parametrize(
    "text",
    [
        "order 123456 was refunded",
        "orders 12345, 23456 and 999999",
        "ticket #42 for order 100200",
        "delivered on 2026-11-24",
        "from 2026-11-24 to 2026-12-01",
        "2026-11-24 2026-11-25",
        "seen at 2026-11-24 12:00:00 by support",
        "seen at 2026-11-24 12:00:00+00:00 by support",
        "seen at 2026-11-24T12:00:00.123456Z by support",
        "",
        "no digits at all",
    ],
)
def test_short_ids_and_iso_dates_are_left_alone(text: str) -> None:
    assert redact_phone_numbers(text) == text
    assert not contains_phone_number(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("on 2026-11-24 call 415 555 0132", f"on 2026-11-24 call {PHONE_PLACEHOLDER}"),
        ("2026-11-24 4155550132", f"2026-11-24 {PHONE_PLACEHOLDER}"),
        ("order 123456: +14155550132", f"order 123456: {PHONE_PLACEHOLDER}"),
        ("tel:+14155550132", f"tel:{PHONE_PLACEHOLDER}"),
    ],
)
def test_a_number_next_to_a_date_or_an_id_is_still_masked(text: str, expected: str) -> None:
    assert redact_phone_numbers(text) == expected


def test_every_number_in_a_text_is_masked() -> None:
    text = "A: +14155550132, B: 138 0013 8000, C: 020 7946 0958"

    redacted = redact_phone_numbers(text, region="US")

    assert redacted == f"A: {PHONE_PLACEHOLDER}, B: {PHONE_PLACEHOLDER}, C: {PHONE_PLACEHOLDER}"


def test_the_placeholder_can_be_chosen() -> None:
    assert redact_phone_numbers("call 415-555-0132", placeholder="***") == "call ***"


def test_contains_phone_number_says_whether_anything_would_be_masked() -> None:
    assert contains_phone_number("call me on 13800138000", region="CN")
    assert not contains_phone_number("order 123456")


def test_twilios_request_logging_is_kept_to_warnings() -> None:
    logging.getLogger("twilio.http_client").setLevel(logging.NOTSET)
    configure_logging(level="INFO", log_file=None, region="US")
    twilio_log = logging.getLogger("twilio.http_client")
    assert not twilio_log.isEnabledFor(logging.INFO) and twilio_log.isEnabledFor(logging.WARNING)
