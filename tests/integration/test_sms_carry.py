"""A number split across texts from one sender: joined for the check, the
completing text redacted, the carried digits sealed in Redis. On fakeredis
and, when configured, real Redis; the clock is passed in."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest

from maskline.redaction import PHONE_PLACEHOLDER
from maskline.redis_backend import connect
from maskline.vault import keyring as kr
from maskline.webhooks.interfaces import BackendUnavailable
from maskline.webhooks.sms_carry import SmsCarry
from tests.conftest import TEST_REDIS_URL

X = "+14155550100"
BINDING = "bd_carrytest0001"
COURIER = bytes(range(12))
BUYER = bytes(range(12, 24))
T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
RING = kr.new_keyring(development=True)


def _backends() -> list[Any]:
    params = [pytest.param("fakeredis", id="fakeredis")]
    if TEST_REDIS_URL:
        params.append(pytest.param(TEST_REDIS_URL, id="redis"))
    return params


@pytest.fixture(params=_backends())
def redis(request: pytest.FixtureRequest) -> Iterator[Any]:
    real = request.param != "fakeredis"
    client = connect(request.param, instance_path=Path.cwd()) if real else fakeredis.FakeRedis()
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def carry(redis: Any) -> SmsCarry:
    return SmsCarry(redis=redis, keyring=lambda: RING, region="CN")


def texts(
    carry: SmsCarry, *bodies: str, sender: bytes = COURIER, gap: dt.timedelta = dt.timedelta(0)
) -> list[str]:
    return [carry.check(X, BINDING, sender, body, T0 + gap * i) for i, body in enumerate(bodies)]


def test_a_number_split_across_two_texts_is_redacted_in_the_second(carry: SmsCarry) -> None:
    first, second = texts(carry, "call me on 138 00", "138000 thanks")

    assert first == "call me on 138 00"  # alone, not a number
    assert second == f"{PHONE_PLACEHOLDER} thanks"


def test_a_us_number_split_across_two_texts(redis: Any) -> None:
    carry = SmsCarry(redis=redis, keyring=lambda: RING, region="US")

    assert texts(carry, "my cell is 415 555", "and then 0132 ok") == [
        "my cell is 415 555",
        f"and then {PHONE_PLACEHOLDER} ok",
    ]


def test_a_number_sent_a_few_digits_at_a_time_is_caught(redis: Any) -> None:
    carry = SmsCarry(redis=redis, keyring=lambda: RING, region="US")

    assert texts(carry, "415", "555", "0132") == ["415", "555", PHONE_PLACEHOLDER]


def test_texts_of_another_sender_or_binding_are_not_joined(carry: SmsCarry) -> None:
    carry.check(X, BINDING, COURIER, "138 00", T0)

    assert carry.check(X, BINDING, BUYER, "138000", T0) == "138000"
    assert carry.check(X, "bd_otherbinding01", COURIER, "138000", T0) == "138000"


def test_the_carry_lasts_ten_minutes(carry: SmsCarry) -> None:
    assert texts(carry, "138 00", "138000", gap=dt.timedelta(minutes=11)) == ["138 00", "138000"]


def test_ordinary_short_numbers_in_a_row_stay_readable(carry: SmsCarry) -> None:
    assert texts(carry, "gate 3", "room 12", "code 8842") == ["gate 3", "room 12", "code 8842"]


def test_the_carried_digits_are_sealed_under_the_relay_number_s_tag(carry: SmsCarry, redis: Any) -> None:
    carry.check(X, BINDING, COURIER, "my number: 138 00", T0)

    (key,) = redis.keys("*")
    assert key.decode() == f"ml:{{{X}}}:smscarry:{BINDING}:{COURIER.hex()}"
    stored = redis.get(key)
    assert b"13800" not in stored and b"13800" not in base64.b64decode(stored)
    assert 0 < redis.pttl(key) <= 10 * 60 * 1000


def test_a_tampered_carry_fails_closed(carry: SmsCarry, redis: Any) -> None:
    carry.check(X, BINDING, COURIER, "138 00", T0)
    (key,) = redis.keys("*")
    redis.set(key, b"AAAA" + redis.get(key)[4:])

    with pytest.raises(BackendUnavailable):
        carry.check(X, BINDING, COURIER, "138000", T0)
