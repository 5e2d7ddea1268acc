"""Envelope encryption of one value: AES-256-GCM under a per-entry data key
(and the route copies of a binding's numbers kept in Redis, at the end).

Pure functions over a :class:`KeyRing`; no I/O. Two blobs per entry:

* wrapped data key: ``0x01 | kek_version (u32) | nonce (12) | GCM(kek)``,
  AAD = ``maskline/wrap/v1 | header | entry id | purpose``;
* sealed value:     ``0x01 | nonce (12) | GCM(data key)``,
  AAD = ``maskline/seal/v1 | entry id | purpose``
  (``\\`` and ``|`` inside the entry id and purpose are backslash-escaped).

The AADs bind each blob to its entry and purpose, so a ciphertext moved to
another row, or read for another purpose, fails to open. The KEK version in
the header is authenticated as part of the AAD. Every failure is a
:class:`VaultIntegrityError`, never a wrong value.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from maskline.vault.interfaces import VaultIntegrityError
from maskline.vault.keyring import KeyRing, route_key

FORMAT_V1 = b"\x01"
NONCE_BYTES = 12  # 96-bit random nonces: each data key encrypts one value
DATA_KEY_BYTES = 32
_WRAP_HEADER = struct.Struct(">cI")
_TAG_BYTES = 16
_WRAP_AAD_PREFIX = b"maskline/wrap/v1|"
_SEAL_AAD_PREFIX = b"maskline/seal/v1|"
# Offsets in the two blobs (see the module docstring for their layout).
_WRAPPED_NONCE_END = _WRAP_HEADER.size + NONCE_BYTES
_WRAPPED_BYTES = _WRAPPED_NONCE_END + DATA_KEY_BYTES + _TAG_BYTES
_SEALED_NONCE_END = 1 + NONCE_BYTES
_SEALED_MIN_BYTES = _SEALED_NONCE_END + _TAG_BYTES


@dataclass(frozen=True, slots=True)
class Sealed:
    """What the vault stores for one entry."""

    wrapped_key: bytes
    ciphertext: bytes
    kek_version: int


def _field(value: str) -> bytes:
    # Escape the separator so that distinct (entry id, purpose) pairs never
    # give the same AAD: unescaped, ("a|b", "c") and ("a", "b|c") would
    # collide. Tokens and purposes hold neither character, so their AAD is
    # byte for byte what it was before escaping existed (and they skip the
    # replacing, which seal and open pay for on every call).
    if "\\" in value or "|" in value:
        value = value.replace("\\", "\\\\").replace("|", "\\|")
    return value.encode()


def _subject(entry_id: str, purpose: str) -> bytes:
    """``entry id | purpose``, escaped: the tail both AADs of an entry share."""
    return _field(entry_id) + b"|" + _field(purpose)


def _wrap_aad(header: bytes, subject: bytes) -> bytes:
    return _WRAP_AAD_PREFIX + header + b"|" + subject


def _seal_aad(subject: bytes) -> bytes:
    return _SEAL_AAD_PREFIX + subject


def _wrap(ring: KeyRing, data_key: bytes, subject: bytes) -> tuple[int, bytes]:
    version = ring.kek.primary
    header = _WRAP_HEADER.pack(FORMAT_V1, version)
    nonce = os.urandom(NONCE_BYTES)
    body = AESGCM(ring.kek.versions[version]).encrypt(nonce, data_key, _wrap_aad(header, subject))
    return version, header + nonce + body


def _unwrap(ring: KeyRing, wrapped: bytes, subject: bytes) -> bytes:
    version = wrapped_key_version(wrapped)
    kek = ring.kek.versions.get(version)
    if kek is None:
        raise VaultIntegrityError(f"data key is wrapped under unknown KEK version {version}")
    if len(wrapped) != _WRAPPED_BYTES:
        raise VaultIntegrityError("wrapped data key is truncated")
    try:
        return AESGCM(kek).decrypt(
            wrapped[_WRAP_HEADER.size : _WRAPPED_NONCE_END],
            wrapped[_WRAPPED_NONCE_END:],
            _wrap_aad(wrapped[: _WRAP_HEADER.size], subject),
        )
    except InvalidTag:
        raise VaultIntegrityError("wrapped data key failed verification") from None


def wrap_key(ring: KeyRing, data_key: bytes, *, entry_id: str, purpose: str) -> bytes:
    """Wrap ``data_key`` under the ring's primary KEK."""
    return _wrap(ring, data_key, _subject(entry_id, purpose))[1]


def wrapped_key_version(wrapped: bytes) -> int:
    """The KEK version a wrapped key claims (verified only when unwrapped)."""
    if len(wrapped) < _WRAP_HEADER.size or wrapped[:1] != FORMAT_V1:
        raise VaultIntegrityError("wrapped data key has an unknown format")
    return int(_WRAP_HEADER.unpack_from(wrapped)[1])


def unwrap_key(ring: KeyRing, wrapped: bytes, *, entry_id: str, purpose: str) -> bytes:
    """The data key inside ``wrapped``; VaultIntegrityError if it does not verify."""
    return _unwrap(ring, wrapped, _subject(entry_id, purpose))


def seal(ring: KeyRing, plaintext: str, *, entry_id: str, purpose: str) -> Sealed:
    """Encrypt ``plaintext`` under a fresh data key wrapped by the primary KEK."""
    subject = _subject(entry_id, purpose)
    # A fresh data key and fresh nonces for every entry: no key or nonce is
    # ever shared between two values.
    data_key = AESGCM.generate_key(bit_length=DATA_KEY_BYTES * 8)
    nonce = os.urandom(NONCE_BYTES)
    body = AESGCM(data_key).encrypt(nonce, plaintext.encode(), _seal_aad(subject))
    version, wrapped = _wrap(ring, data_key, subject)
    return Sealed(wrapped_key=wrapped, ciphertext=FORMAT_V1 + nonce + body, kek_version=version)


def open_sealed(ring: KeyRing, wrapped_key: bytes, ciphertext: bytes, *, entry_id: str, purpose: str) -> str:
    """Decrypt a sealed value; VaultIntegrityError on any mismatch."""
    subject = _subject(entry_id, purpose)
    data_key = _unwrap(ring, wrapped_key, subject)
    if ciphertext[:1] != FORMAT_V1 or len(ciphertext) < _SEALED_MIN_BYTES:
        raise VaultIntegrityError("sealed value has an unknown format")
    try:
        plain = AESGCM(data_key).decrypt(
            ciphertext[1:_SEALED_NONCE_END], ciphertext[_SEALED_NONCE_END:], _seal_aad(subject)
        )
    except InvalidTag:
        raise VaultIntegrityError("sealed value failed verification") from None
    try:
        return plain.decode()
    except UnicodeDecodeError:  # pragma: no cover - GCM verified it, so we wrote it
        raise VaultIntegrityError("sealed value is not text") from None


def rewrap(ring: KeyRing, wrapped: bytes, *, entry_id: str, purpose: str) -> bytes:
    """Re-wrap a data key under the primary KEK; the sealed value is untouched."""
    data_key = unwrap_key(ring, wrapped, entry_id=entry_id, purpose=purpose)
    return wrap_key(ring, data_key, entry_id=entry_id, purpose=purpose)


# -- route copies ----------------------------------------------------------------
# A binding's party numbers, sealed for Redis so that a webhook connect needs
# no SQL: AES-256-GCM under the route key of a KEK version (derived by HKDF,
# see keyring.route_key), with no per-entry wrapped data key. Layout:
#   kek_version (u16) | nonce (12) | GCM(route key, BCD numbers | extra)
# AAD = maskline/route/v1 | version | relay number | binding id | roles, so a
# copy moved to another relay number, binding or role fails to open. Each
# number is 8 bytes of BCD (E.164's 15 digits at most, padded with 0xF).
_ROUTE_HEADER = struct.Struct(">H")
_ROUTE_AAD_PREFIX = b"maskline/route/v1|"
BCD_BYTES = 8
ROUTE_COPY_MAX = 64  # a route hash field's value stays in Redis's listpack
_route_ciphers: dict[bytes, AESGCM] = {}


def _route_cipher(ring: KeyRing, version: int) -> AESGCM:
    try:
        key = route_key(ring, version)
    except KeyError:
        raise VaultIntegrityError(f"route copy is sealed under unknown KEK version {version}") from None
    cipher = _route_ciphers.get(key)
    if cipher is None:
        if len(_route_ciphers) > 64:
            _route_ciphers.clear()
        cipher = _route_ciphers[key] = AESGCM(key)
    return cipher


def pack_bcd(e164: str) -> bytes:
    """``+`` and up to 15 digits -> 8 bytes of BCD (padded with 0xF)."""
    digits = e164[1:]
    if e164[:1] != "+" or not digits.isascii() or not digits.isdigit() or len(digits) > 2 * BCD_BYTES - 1:
        raise ValueError("not an E.164 number")
    return bytes.fromhex(digits.ljust(2 * BCD_BYTES, "f"))


def unpack_bcd(raw: bytes) -> str:
    digits = raw.hex().rstrip("f")
    if not digits.isdigit():
        raise VaultIntegrityError("route copy holds no number")
    return "+" + digits


def _route_aad(header: bytes, relay: str, binding_id: str, roles: list[str]) -> bytes:
    return b"|".join([_ROUTE_AAD_PREFIX + header, _field(relay), _field(binding_id), *map(_field, roles)])


def seal_route(
    ring: KeyRing, *, relay: str, binding_id: str, numbers: dict[str, str], extra: bytes = b""
) -> bytes:
    """Seal ``numbers`` (role -> E.164) of a binding on ``relay``, with
    ``extra`` (the binding's options), under the primary KEK's route key.

    ValueError if the copy would not fit :data:`ROUTE_COPY_MAX` (the caller
    then writes none: connects read SQL)."""
    version = ring.kek.primary
    roles = sorted(numbers)
    header = _ROUTE_HEADER.pack(version)
    plain = b"".join(pack_bcd(numbers[r]) for r in roles) + extra
    nonce = os.urandom(NONCE_BYTES)
    body = _route_cipher(ring, version).encrypt(nonce, plain, _route_aad(header, relay, binding_id, roles))
    sealed = header + nonce + body
    if len(sealed) > ROUTE_COPY_MAX:
        raise ValueError("route copy too long")
    return sealed


def route_copy_version(sealed: bytes) -> int:
    """The KEK version a route copy claims (verified only when opened)."""
    if len(sealed) < _ROUTE_HEADER.size:
        raise VaultIntegrityError("route copy is truncated")
    return int(_ROUTE_HEADER.unpack_from(sealed)[0])


def open_route(
    ring: KeyRing, sealed: bytes, *, relay: str, binding_id: str, roles: list[str]
) -> tuple[dict[str, str], bytes]:
    """(role -> E.164, extra) of a route copy; VaultIntegrityError on any
    mismatch (another relay number, binding or roles, a retired version)."""
    version = route_copy_version(sealed)
    roles = sorted(roles)
    start = _ROUTE_HEADER.size
    if len(sealed) < start + NONCE_BYTES + _TAG_BYTES + BCD_BYTES * len(roles):
        raise VaultIntegrityError("route copy is truncated")
    try:
        plain = _route_cipher(ring, version).decrypt(
            sealed[start : start + NONCE_BYTES],
            sealed[start + NONCE_BYTES :],
            _route_aad(sealed[:start], relay, binding_id, roles),
        )
    except InvalidTag:
        raise VaultIntegrityError("route copy failed verification") from None
    numbers = {r: unpack_bcd(plain[i * BCD_BYTES : (i + 1) * BCD_BYTES]) for i, r in enumerate(roles)}
    return numbers, plain[len(roles) * BCD_BYTES :]


def reseal_route(ring: KeyRing, sealed: bytes, *, relay: str, binding_id: str, roles: list[str]) -> bytes:
    """A route copy sealed again under the primary KEK's route key (rotation)."""
    numbers, extra = open_route(ring, sealed, relay=relay, binding_id=binding_id, roles=roles)
    return seal_route(ring, relay=relay, binding_id=binding_id, numbers=numbers, extra=extra)
