"""Route copies' sealing: AES-256-GCM under a route key derived from each KEK
version, bound to relay number, binding and roles (maskline.vault.sealing)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maskline.numbers.route_copies import CopyOptions, open_copy, pack_options, seal_copy, unpack_options
from maskline.vault import keyring as kr
from maskline.vault import sealing
from maskline.vault.interfaces import VaultIntegrityError

RELAY, BID = "+14155550100", "bd_aaaaaaaaaaaaaaaa"
NUMBERS = {"buyer": "+8613800138000", "merchant": "+14155550132"}
PLAIN = CopyOptions(record=False, sms_redact=None, sms_media=None, language=None)


@pytest.fixture
def ring() -> kr.KeyRing:
    return kr.new_keyring(development=True)


def test_a_copy_opens_only_for_its_relay_binding_and_roles(ring: kr.KeyRing) -> None:
    sealed = seal_copy(ring, relay=RELAY, binding_id=BID, numbers=NUMBERS, options=PLAIN)
    assert sealed is not None
    roles = ["merchant", "buyer"]  # any order: they are sorted
    assert open_copy(ring, sealed, relay=RELAY, binding_id=BID, roles=roles) == (NUMBERS, PLAIN)
    for relay, bid, other in (
        ("+14155550101", BID, roles),
        (RELAY, "bd_baaaaaaaaaaaaaaa", roles),
        (RELAY, BID, ["buyer", "courier"]),
    ):
        with pytest.raises(VaultIntegrityError):
            open_copy(ring, sealed, relay=relay, binding_id=bid, roles=other)


def test_a_tampered_or_truncated_copy_never_opens(ring: kr.KeyRing) -> None:
    sealed = seal_copy(ring, relay=RELAY, binding_id=BID, numbers=NUMBERS, options=PLAIN)
    assert sealed is not None
    roles = list(NUMBERS)
    for i in range(len(sealed)):
        damaged = sealed[:i] + bytes([sealed[i] ^ 0x01]) + sealed[i + 1 :]
        with pytest.raises(VaultIntegrityError):
            open_copy(ring, damaged, relay=RELAY, binding_id=BID, roles=roles)
    for cut in (0, 1, 10, len(sealed) - 1):
        with pytest.raises(VaultIntegrityError):
            open_copy(ring, sealed[:cut], relay=RELAY, binding_id=BID, roles=roles)


def test_the_route_key_follows_the_kek_version_and_dies_with_it(ring: kr.KeyRing) -> None:
    old = seal_copy(ring, relay=RELAY, binding_id=BID, numbers=NUMBERS, options=PLAIN)
    assert old is not None and sealing.route_copy_version(old) == 1
    grown, version = kr.with_added_version(ring, "kek")
    promoted = kr.with_primary(grown, "kek", version)
    assert kr.route_key(promoted, 1) != kr.route_key(promoted, version)
    assert kr.route_key(promoted, 1) != ring.kek.versions[1]  # derived, not the KEK itself
    new = sealing.reseal_route(promoted, old, relay=RELAY, binding_id=BID, roles=list(NUMBERS))
    assert sealing.route_copy_version(new) == version
    retired = kr.without_version(promoted, "kek", 1)
    with pytest.raises(VaultIntegrityError, match="unknown KEK version 1"):
        open_copy(retired, old, relay=RELAY, binding_id=BID, roles=list(NUMBERS))
    assert open_copy(retired, new, relay=RELAY, binding_id=BID, roles=list(NUMBERS))[0] == NUMBERS


def test_the_longest_copy_fits_a_listpack_value(ring: kr.KeyRing) -> None:
    longest = {"buyer": "+" + "9" * 15, "merchant": "+" + "8" * 15}
    options = CopyOptions(record=True, sms_redact="links,phones", sms_media="refuse", language="zh-CN")
    sealed = seal_copy(ring, relay=RELAY, binding_id=BID, numbers=longest, options=options)
    assert sealed is not None and len(sealed) <= sealing.ROUTE_COPY_MAX == 64
    assert open_copy(ring, sealed, relay=RELAY, binding_id=BID, roles=list(longest)) == (longest, options)


def test_bindings_a_copy_cannot_hold_get_none(ring: kr.KeyRing) -> None:
    three = {**NUMBERS, "courier": "+13125550154"}
    assert seal_copy(ring, relay=RELAY, binding_id=BID, numbers=three, options=PLAIN) is None
    odd = CopyOptions(record=False, sms_redact="emails", sms_media=None, language=None)
    assert seal_copy(ring, relay=RELAY, binding_id=BID, numbers=NUMBERS, options=odd) is None
    wordy = CopyOptions(record=False, sms_redact=None, sms_media=None, language="x" * 30)
    assert seal_copy(ring, relay=RELAY, binding_id=BID, numbers=NUMBERS, options=wordy) is None


@settings(deadline=None, max_examples=200)
@given(
    digits=st.text(alphabet="0123456789", min_size=1, max_size=15),
    record=st.booleans(),
    redact=st.sampled_from([None, "", "links", "phones", "links,phones"]),
    media=st.sampled_from([None, "forward", "refuse"]),
    language=st.sampled_from([None, "en-US", "zh-CN"]),
)
def test_numbers_and_options_come_back_as_sealed(
    digits: str, record: bool, redact: str | None, media: str | None, language: str | None
) -> None:
    number = "+" + digits
    assert sealing.unpack_bcd(sealing.pack_bcd(number)) == number
    options = CopyOptions(record=record, sms_redact=redact, sms_media=media, language=language)
    assert unpack_options(pack_options(options)) == options
