"""Blind index: a keyed hash of the E.164 form, to find and recognise numbers.

HMAC-SHA256 under the ring's index key, which is never the KEK: someone who
can compute indexes cannot decrypt, and a KEK rotation leaves indexes alone.
Without the key the index cannot be brute-forced over the (small) space of
phone numbers.
"""

from __future__ import annotations

import hashlib
import hmac

from maskline.vault.keyring import KeyRing


def blind_index(key: bytes, e164: str) -> bytes:
    return hmac.new(key, e164.encode(), hashlib.sha256).digest()


def primary_index(ring: KeyRing, e164: str) -> tuple[int, bytes]:
    """(version, index) under the primary index key: what new entries store."""
    version = ring.index.primary
    return version, blind_index(ring.index.versions[version], e164)


def all_indexes(ring: KeyRing, e164: str) -> dict[int, bytes]:
    """The index under every loaded version, so lookups work mid re-index."""
    return {version: blind_index(key, e164) for version, key in ring.index.versions.items()}
