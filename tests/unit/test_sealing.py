"""Envelope encryption, pure: round trips and tamper detection (hypothesis)."""

from __future__ import annotations

import phonenumbers
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st

from maskline.vault import sealing
from maskline.vault.interfaces import VaultIntegrityError
from maskline.vault.keyring import new_keyring, with_added_version, with_primary, without_version

RING = new_keyring(development=True)
REGIONS = sorted(r for r in phonenumbers.SUPPORTED_REGIONS if phonenumbers.example_number(r))
TYPES = [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]


@st.composite
def valid_numbers(draw: st.DrawFn) -> str:
    """Valid E.164 numbers from every region: an example number with its tail redrawn."""
    region = draw(st.sampled_from(REGIONS))
    example = phonenumbers.example_number_for_type(region, draw(st.sampled_from(TYPES)))
    example = example or phonenumbers.example_number(region)
    nsn = phonenumbers.national_significant_number(example)
    keep = max(1, len(nsn) - 4)
    tail = draw(st.text(alphabet="0123456789", min_size=len(nsn) - keep, max_size=len(nsn) - keep))
    candidate = phonenumbers.parse(f"+{example.country_code}{nsn[:keep]}{tail}", None)
    if not phonenumbers.is_valid_number(candidate):
        candidate = example
    return phonenumbers.format_number(candidate, phonenumbers.PhoneNumberFormat.E164)


@given(valid_numbers(), st.text(min_size=1, max_size=40))
def test_every_valid_number_round_trips(number: str, entry_id: str) -> None:
    sealed = sealing.seal(RING, number, entry_id=entry_id, purpose="party-number")
    assert (
        sealing.open_sealed(
            RING, sealed.wrapped_key, sealed.ciphertext, entry_id=entry_id, purpose="party-number"
        )
        == number
    )


SEALED = sealing.seal(RING, "+14155550132", entry_id="pn_x", purpose="party-number")


@given(st.sampled_from(["wrapped_key", "ciphertext"]), st.data())
def test_any_single_byte_change_is_rejected(which: str, data: st.DataObject) -> None:
    blob = bytearray(getattr(SEALED, which))
    position = data.draw(st.integers(0, len(blob) - 1))
    blob[position] = data.draw(st.integers(0, 255).filter(lambda b: b != blob[position]))
    wrapped = bytes(blob) if which == "wrapped_key" else SEALED.wrapped_key
    ciphertext = bytes(blob) if which == "ciphertext" else SEALED.ciphertext
    with pytest.raises(VaultIntegrityError):
        sealing.open_sealed(RING, wrapped, ciphertext, entry_id="pn_x", purpose="party-number")


@pytest.mark.parametrize(("entry_id", "purpose"), [("pn_other", "party-number"), ("pn_x", "other-purpose")])
def test_wrong_aad_is_rejected(entry_id: str, purpose: str) -> None:
    with pytest.raises(VaultIntegrityError):
        sealing.open_sealed(RING, SEALED.wrapped_key, SEALED.ciphertext, entry_id=entry_id, purpose=purpose)


@pytest.mark.parametrize("cut", [0, 1, 5, 20])
def test_truncated_blobs_are_rejected(cut: int) -> None:
    with pytest.raises(VaultIntegrityError):
        sealing.open_sealed(
            RING, SEALED.wrapped_key[:cut], SEALED.ciphertext, entry_id="pn_x", purpose="party-number"
        )
    with pytest.raises(VaultIntegrityError):
        sealing.open_sealed(
            RING, SEALED.wrapped_key, SEALED.ciphertext[:cut], entry_id="pn_x", purpose="party-number"
        )


def test_unknown_key_version_is_an_integrity_error() -> None:
    grown, version = with_added_version(RING, "kek")
    sealed = sealing.seal(with_primary(grown, "kek", version), "+14155550132", entry_id="e", purpose="p")
    with pytest.raises(VaultIntegrityError, match="unknown KEK version"):
        sealing.open_sealed(RING, sealed.wrapped_key, sealed.ciphertext, entry_id="e", purpose="p")


def test_seals_of_one_number_differ_and_carry_their_version() -> None:
    a = sealing.seal(RING, "+14155550132", entry_id="e", purpose="p")
    b = sealing.seal(RING, "+14155550132", entry_id="e", purpose="p")
    assert a.ciphertext != b.ciphertext and a.wrapped_key != b.wrapped_key
    assert sealing.wrapped_key_version(a.wrapped_key) == RING.kek.primary == a.kek_version


def test_rewrap_moves_to_the_primary_kek_and_keeps_the_value() -> None:
    grown, version = with_added_version(RING, "kek")
    promoted = with_primary(grown, "kek", version)
    rewrapped = sealing.rewrap(promoted, SEALED.wrapped_key, entry_id="pn_x", purpose="party-number")
    assert sealing.wrapped_key_version(rewrapped) == version
    retired = without_version(promoted, "kek", RING.kek.primary)
    assert (
        sealing.open_sealed(retired, rewrapped, SEALED.ciphertext, entry_id="pn_x", purpose="party-number")
        == "+14155550132"
    )


# Few characters, including the AAD's separator and its escape character.
AAD_PARTS = st.text(alphabet="ab|\\", max_size=4)


@given(AAD_PARTS, AAD_PARTS, AAD_PARTS, AAD_PARTS)
def test_a_blob_opens_only_for_its_own_entry_and_purpose(e1: str, p1: str, e2: str, p2: str) -> None:
    sealed = sealing.seal(RING, "+14155550132", entry_id=e1, purpose=p1)
    if (e1, p1) == (e2, p2):
        assert sealing.open_sealed(RING, sealed.wrapped_key, sealed.ciphertext, entry_id=e2, purpose=p2)
    else:
        with pytest.raises(VaultIntegrityError):
            sealing.open_sealed(RING, sealed.wrapped_key, sealed.ciphertext, entry_id=e2, purpose=p2)


@given(AAD_PARTS, AAD_PARTS, AAD_PARTS)
def test_moving_text_across_the_separator_never_opens(head: str, middle: str, tail: str) -> None:
    """(head|middle, tail) and (head, middle|tail) join to the same text."""
    sealed = sealing.seal(RING, "+14155550132", entry_id=f"{head}|{middle}", purpose=tail)
    with pytest.raises(VaultIntegrityError):
        sealing.open_sealed(
            RING, sealed.wrapped_key, sealed.ciphertext, entry_id=head, purpose=f"{middle}|{tail}"
        )


def test_separator_in_entry_id_does_not_shift_into_purpose() -> None:
    sealed = sealing.seal(RING, "+14155550132", entry_id="pn_a|b", purpose="c")
    with pytest.raises(VaultIntegrityError):
        sealing.open_sealed(RING, sealed.wrapped_key, sealed.ciphertext, entry_id="pn_a", purpose="b|c")


def test_stored_format_is_stable_for_tokens() -> None:
    """A blob built by hand from the documented v1 layout still opens."""
    data_key, token = bytes(range(32)), "pn_abc234"
    header = b"\x01" + RING.kek.primary.to_bytes(4, "big")
    wrap_aad = b"maskline/wrap/v1|" + header + b"|pn_abc234|party-number"
    wrapped = header + b"n" * 12 + AESGCM(RING.kek.primary_key()).encrypt(b"n" * 12, data_key, wrap_aad)
    body = AESGCM(data_key).encrypt(b"m" * 12, b"+8613800138000", b"maskline/seal/v1|pn_abc234|party-number")
    opened = sealing.open_sealed(
        RING, wrapped, b"\x01" + b"m" * 12 + body, entry_id=token, purpose="party-number"
    )
    assert opened == "+8613800138000"
