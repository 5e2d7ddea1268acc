"""The audit chain's canonical form and hash: fixed, so every backend verifies alike."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maskline.audit.chain import (
    GENESIS_HASH,
    canonical_data,
    canonical_parts,
    canonical_record,
    canonical_time,
    chain_hash,
)
from maskline.audit.interfaces import VerifyResult

AT = dt.datetime(2026, 11, 24, 12, 0, 5, 123456, tzinfo=dt.UTC)
RECORD: dict[str, Any] = {
    "seq": 7,
    "at": AT,
    "actor": "alice",
    "action": "vault.reveal",
    "subject": "pn_abc",
    "reason": "ticket 42",
    "data": "{}",
}


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (AT, "2026-11-24T12:00:05.123456Z"),
        (dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC), "2026-11-24T12:00:00.000000Z"),
        (dt.datetime(2026, 11, 24, 12, 0, 0, 1, tzinfo=dt.UTC), "2026-11-24T12:00:00.000001Z"),
        # Other offsets are converted to UTC.
        (
            dt.datetime(2026, 11, 24, 20, 0, 5, 123456, tzinfo=dt.timezone(dt.timedelta(hours=8))),
            "2026-11-24T12:00:05.123456Z",
        ),
        (dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC), "1999-12-31T23:59:59.999999Z"),
    ],
)
def test_canonical_time_is_utc_with_fixed_microseconds(at: dt.datetime, expected: str) -> None:
    assert canonical_time(at) == expected


def test_canonical_time_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        canonical_time(dt.datetime(2026, 11, 24, 12, 0))


def test_canonical_record_is_sorted_compact_json() -> None:
    expected = (
        b'{"action":"vault.reveal","actor":"alice","at":"2026-11-24T12:00:05.123456Z",'
        b'"data":"{}","reason":"ticket 42","seq":7,"subject":"pn_abc"}'
    )

    assert canonical_record(**RECORD) == expected


def test_canonical_record_keeps_non_ascii_text_as_utf8() -> None:
    record = canonical_record(**{**RECORD, "reason": "客户投诉"})

    assert "客户投诉".encode() in record


def test_canonical_data_does_not_depend_on_key_order() -> None:
    assert (
        canonical_data({"b": 1, "a": [1, 2]}) == canonical_data({"a": [1, 2], "b": 1}) == '{"a":[1,2],"b":1}'
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seq", 8),
        ("at", AT + dt.timedelta(microseconds=1)),
        ("actor", "mallory"),
        ("action", "vault.erase"),
        ("subject", "pn_abd"),
        ("reason", "ticket 43"),
        ("data", '{"x":1}'),
    ],
)
def test_every_field_changes_the_hash(field: str, value: Any) -> None:
    original = chain_hash(GENESIS_HASH, canonical_record(**RECORD))

    changed = chain_hash(GENESIS_HASH, canonical_record(**{**RECORD, field: value}))

    assert changed != original


def test_chain_hash_is_sha256_of_prev_hash_and_record() -> None:
    record = canonical_record(**RECORD)

    assert chain_hash(GENESIS_HASH, record) == hashlib.sha256(GENESIS_HASH.encode() + record).hexdigest()


def test_chain_hash_depends_on_the_previous_hash() -> None:
    record = canonical_record(**RECORD)

    assert chain_hash(GENESIS_HASH, record) != chain_hash("1" * 64, record)


@pytest.mark.parametrize(
    ("result", "summary"),
    [
        (VerifyResult(ok=True, records=0), "OK 0 records"),
        (VerifyResult(ok=True, records=12), "OK 12 records"),
        (
            VerifyResult(ok=False, records=4, first_bad_seq=5, problem="content does not match its hash"),
            "BROKEN at record 5: content does not match its hash",
        ),
    ],
)
def test_verify_summary(result: VerifyResult, summary: str) -> None:
    assert result.summary() == summary


@given(
    seq=st.integers(min_value=1, max_value=2**62),
    actor=st.text(max_size=40),
    reason=st.text(max_size=80),
    subject=st.text(max_size=40),
    data=st.text(max_size=80),
)
@settings(deadline=None)
def test_the_parts_around_seq_make_the_canonical_record(
    seq: int, actor: str, reason: str, subject: str, data: str
) -> None:
    """The bind statement joins prefix, seq and suffix in SQL: any text, quotes
    and ',"seq":0,' inside values included, must give the same bytes."""
    fields: dict[str, Any] = {
        "at": AT,
        "actor": actor,
        "action": "binding.created",
        "subject": subject,
        "reason": reason + ',"seq":0,"subject":',
        "data": data,
    }
    prefix, suffix = canonical_parts(**fields)
    assert (prefix + str(seq) + suffix).encode() == canonical_record(seq=seq, **fields)
