"""The key ring: versioned key-encryption keys (KEKs) and blind-index keys.

Keys live in a JSON file (mode 0600) or in the ``MASKLINE_KEYS`` environment
variable, never in the database or Redis, and are never logged. The file::

    {"format": 1, "development": false,
     "kek":   {"primary": 2, "versions": {"1": "<base64>", "2": "<base64>"}},
     "index": {"primary": 1, "versions": {"1": "<base64>"}}}

Rotation without downtime: ``add`` a version (every process loads it, the
file is re-read when it changes), then ``promote`` it, then ``rewrap``, then
``retire`` the old one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from maskline.vault.interfaces import KeyRingError

KeyKind = Literal["kek", "index"]
KEY_KINDS: tuple[KeyKind, ...] = ("kek", "index")
KEY_BYTES = 32
FORMAT = 1


@dataclass(frozen=True, slots=True)
class KeySet:
    """The versions of one kind of key, and which one new work uses."""

    primary: int
    versions: Mapping[int, bytes]

    def primary_key(self) -> bytes:
        return self.versions[self.primary]


@dataclass(frozen=True, slots=True)
class KeyRing:
    """An immutable snapshot of the key ring."""

    kek: KeySet
    index: KeySet
    development: bool = False

    def keys(self, kind: KeyKind) -> KeySet:
        return self.kek if kind == "kek" else self.index

    def fingerprint(self, kind: KeyKind, version: int) -> str:
        """A short, non-secret identifier of one key (recorded in the database)."""
        return key_fingerprint(kind, version, self.keys(kind).versions[version])


def key_fingerprint(kind: str, version: int, key: bytes) -> str:
    # An HMAC under the key itself: it identifies the key, reveals nothing
    # about it, and cannot be computed without it.
    label = f"maskline key fingerprint|{kind}|{version}".encode()
    return hmac.new(key, label, hashlib.sha256).hexdigest()[:16]


def _decode_key(kind: str, version: str, value: Any) -> tuple[int, bytes]:
    # The version name is never quoted: in a hand-edited file it may be the
    # key itself (keys and versions swapped).
    if not version.isascii() or not version.isdigit() or int(version) < 1:
        raise KeyRingError(f"key ring: a {kind} version name is not a positive whole number")
    number = int(version)
    try:
        key = base64.b64decode(str(value), validate=True)
    except (ValueError, binascii.Error):
        raise KeyRingError(f"key ring: {kind} version {number} is not base64") from None
    if len(key) != KEY_BYTES:
        raise KeyRingError(f"key ring: {kind} version {number} must be a {KEY_BYTES}-byte key")
    return number, key


def _parse_keyset(kind: str, data: Any) -> KeySet:
    if not isinstance(data, dict) or not isinstance(data.get("versions"), dict):
        raise KeyRingError(f"key ring: section {kind!r} is missing or malformed")
    pairs = [_decode_key(kind, v, k) for v, k in data["versions"].items()]
    versions = dict(pairs)
    if len(versions) != len(pairs):
        raise KeyRingError(f"key ring: {kind} names one version twice (e.g. 1 and 01)")
    primary = data.get("primary")
    # bool is an int in Python: `"primary": true` must not mean version 1.
    if not isinstance(primary, int) or isinstance(primary, bool) or primary not in versions:
        raise KeyRingError(f"key ring: {kind} primary version is not one of its versions")
    return KeySet(primary=primary, versions=versions)


def parse_keyring(text: str) -> KeyRing:
    """Parse the JSON form; errors never quote key material."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise KeyRingError("key ring: not valid JSON") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise KeyRingError(f"key ring: unsupported format (expected format {FORMAT})")
    return KeyRing(
        kek=_parse_keyset("kek", data.get("kek")),
        index=_parse_keyset("index", data.get("index")),
        development=bool(data.get("development", False)),
    )


def dump_keyring(ring: KeyRing) -> str:
    def keyset(ks: KeySet) -> dict[str, Any]:
        return {
            "primary": ks.primary,
            "versions": {str(v): base64.b64encode(k).decode() for v, k in sorted(ks.versions.items())},
        }

    data = {
        "format": FORMAT,
        "development": ring.development,
        "kek": keyset(ring.kek),
        "index": keyset(ring.index),
    }
    return json.dumps(data, indent=2) + "\n"


def new_keyring(*, development: bool) -> KeyRing:
    return KeyRing(
        kek=KeySet(primary=1, versions={1: secrets.token_bytes(KEY_BYTES)}),
        index=KeySet(primary=1, versions={1: secrets.token_bytes(KEY_BYTES)}),
        development=development,
    )


def write_keyring_file(path: Path, ring: KeyRing) -> None:
    """Write atomically with mode 0600: a crash never leaves half a key ring."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".keys-", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(dump_keyring(ring))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise KeyRingError(f"key ring file {path} does not exist (run `maskline keys init`)") from None
    except OSError as exc:
        raise KeyRingError(f"key ring file {path} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise KeyRingError(f"key ring file {path} is not text") from None


def read_keyring_file(path: Path) -> KeyRing:
    return parse_keyring(_read_text(path))


def with_added_version(ring: KeyRing, kind: KeyKind) -> tuple[KeyRing, int]:
    """A copy of ``ring`` with a new, not yet primary, version of ``kind``."""
    ks = ring.keys(kind)
    version = max(ks.versions) + 1
    grown = KeySet(primary=ks.primary, versions={**ks.versions, version: secrets.token_bytes(KEY_BYTES)})
    return _replace_keyset(ring, kind, grown), version


def with_primary(ring: KeyRing, kind: KeyKind, version: int) -> KeyRing:
    ks = ring.keys(kind)
    if version not in ks.versions:
        raise KeyRingError(f"key ring has no {kind} version {version}")
    return _replace_keyset(ring, kind, KeySet(primary=version, versions=ks.versions))


def without_version(ring: KeyRing, kind: KeyKind, version: int) -> KeyRing:
    ks = ring.keys(kind)
    if version not in ks.versions:
        raise KeyRingError(f"key ring has no {kind} version {version}")
    if version == ks.primary:
        raise KeyRingError(f"{kind} version {version} is primary; promote another version first")
    remaining = {v: k for v, k in ks.versions.items() if v != version}
    return _replace_keyset(ring, kind, KeySet(primary=ks.primary, versions=remaining))


def _replace_keyset(ring: KeyRing, kind: KeyKind, ks: KeySet) -> KeyRing:
    if kind == "kek":
        return KeyRing(kek=ks, index=ring.index, development=ring.development)
    return KeyRing(kek=ring.kek, index=ks, development=ring.development)


def check_file_permissions(path: Path) -> str | None:
    """A reason to refuse a key file readable by others, or None."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return f"key ring file {path} is accessible to group or others (chmod 600 it)"
    return None


class KeyRingSource:
    """Hands out the current key ring, re-reading the file when it changes.

    Processes pick up ``keys add`` / ``keys promote`` without a restart: the
    file is re-read at most every ``reload_seconds`` and parsed when its
    content changed. (Content, not mtime/size/inode: a promote keeps the
    size, inodes are reused, and coarse mtimes can hide a second write; a
    missed ``keys add`` would leave this process unable to open new entries.)
    A file that becomes unreadable or malformed keeps the last good ring in
    service rather than taking the vault down.
    """

    def __init__(
        self,
        *,
        path: Path | None = None,
        text: str | None = None,
        reload_seconds: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if path is None and text is None:
            raise KeyRingError("no key ring configured (set MASKLINE_KEYS_FILE or MASKLINE_KEYS)")
        self.path = path
        self._reload_seconds = reload_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        if text is not None:
            self._ring = parse_keyring(text)
            self._text = text
            self.path = None
        else:
            assert path is not None
            self._text = _read_text(path)
            self._ring = parse_keyring(self._text)
        self._checked_at = self._monotonic()

    def current(self) -> KeyRing:
        """The ring in force, reloaded from disk if the file changed."""
        if self.path is None or self._monotonic() - self._checked_at < self._reload_seconds:
            return self._ring
        self.refresh()
        return self._ring

    def refresh(self) -> KeyRing:
        """Re-read the file now if it changed (e.g. on an unknown key version)."""
        if self.path is None:
            return self._ring
        with self._lock:
            self._checked_at = self._monotonic()
            try:
                text = _read_text(self.path)
                if text != self._text:
                    self._ring = parse_keyring(text)
                    self._text = text
            except KeyRingError:
                pass  # keep serving with the last good ring
        return self._ring


# The route key of each KEK version: what seals the route copies in Redis
# (maskline.vault.sealing.seal_route). Derived, never stored: retiring the KEK
# version (dropping it from the ring) makes every copy sealed under it, in
# Redis's memory, RDB/AOF files and replicas alike, unreadable.
_ROUTE_KEY_INFO = b"maskline route key v1"
_route_keys: dict[bytes, bytes] = {}


def route_key(ring: KeyRing, version: int) -> bytes:
    """The route key derived by HKDF-SHA256 from KEK ``version`` (KeyError if absent)."""
    kek = ring.kek.versions[version]
    derived = _route_keys.get(kek)
    if derived is None:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        derived = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=_ROUTE_KEY_INFO).derive(
            kek
        )
        if len(_route_keys) > 64:  # a process sees a handful of versions
            _route_keys.clear()
        _route_keys[kek] = derived
    return derived
