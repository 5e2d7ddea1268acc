"""Envelope encryption of one value: AES-256-GCM under a per-entry data key.

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
from maskline.vault.keyring import KeyRing

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
