"""The key ring file: format, permissions, versions, and reloading on change."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from maskline.vault import keyring as kr
from maskline.vault.interfaces import KeyRingError


def test_dump_and_parse_round_trip() -> None:
    ring = kr.new_keyring(development=False)
    again = kr.parse_keyring(kr.dump_keyring(ring))
    assert again == ring and not again.development


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        ('{"format": 9}', "unsupported format"),
        ('{"format": 1, "kek": {"primary": 1, "versions": {"1": "c2hvcnQ="}}}', "32-byte key"),
        ('{"format": 1, "kek": {"primary": 2, "versions": {"1": "' + "A" * 43 + '="}}}', "primary"),
        # keys and version names swapped by a hand edit: the key is not quoted back
        ('{"format": 1, "kek": {"primary": 1, "versions": {"' + "A" * 43 + '=": "1"}}}', "whole number"),
        ('{"format": 1, "kek": {"primary": 1, "versions": {"0": "' + "A" * 43 + '="}}}', "whole number"),
        ('{"format": 1, "kek": {"primary": 1, "versions": {"1": "A!AA"}}}', "not base64"),
        ('{"format": 1, "kek": {"primary": true, "versions": {"1": "' + "A" * 43 + '="}}}', "primary"),
        (
            '{"format": 1, "kek": {"primary": 1, "versions": {"1": "'
            + "A" * 43
            + '=", "01": "'
            + "A" * 43
            + '="}}}',
            "one version twice",
        ),
    ],
)
def test_malformed_rings_are_refused_without_quoting_keys(text: str, message: str) -> None:
    with pytest.raises(KeyRingError, match=message) as err:
        kr.parse_keyring(text)
    assert "c2hvcnQ" not in str(err.value) and "AAAA" not in str(err.value)


def test_file_is_written_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    kr.write_keyring_file(path, kr.new_keyring(development=True))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert kr.check_file_permissions(path) is None
    path.chmod(0o644)
    assert "group or others" in (kr.check_file_permissions(path) or "")


def test_add_promote_retire() -> None:
    ring = kr.new_keyring(development=True)
    grown, version = kr.with_added_version(ring, "kek")
    assert version == 2 and grown.kek.primary == 1 and grown.index == ring.index
    promoted = kr.with_primary(grown, "kek", 2)
    with pytest.raises(KeyRingError, match="is primary"):
        kr.without_version(promoted, "kek", 2)
    assert set(kr.without_version(promoted, "kek", 1).kek.versions) == {2}


def test_fingerprints_identify_keys_without_revealing_them() -> None:
    ring = kr.new_keyring(development=True)
    fingerprint = ring.fingerprint("kek", 1)
    assert len(fingerprint) == 16 and fingerprint != ring.fingerprint("index", 1)
    assert ring.kek.versions[1].hex()[:16] != fingerprint


class Ticker:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_source_reloads_a_changed_file_after_its_interval(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    kr.write_keyring_file(path, kr.new_keyring(development=True))
    ticker = Ticker()
    source = kr.KeyRingSource(path=path, reload_seconds=2.0, monotonic=ticker)
    grown, _ = kr.with_added_version(kr.read_keyring_file(path), "kek")
    kr.write_keyring_file(path, grown)
    assert set(source.current().kek.versions) == {1}  # not yet: within the interval
    ticker.now = 3.0
    assert set(source.current().kek.versions) == {1, 2}


def test_source_keeps_the_last_good_ring_when_the_file_breaks(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    kr.write_keyring_file(path, kr.new_keyring(development=True))
    ticker = Ticker()
    source = kr.KeyRingSource(path=path, reload_seconds=0.0, monotonic=ticker)
    before = source.current()
    path.write_text(json.dumps({"format": 1}))
    ticker.now = 1.0
    assert source.current() == before


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(KeyRingError, match="maskline keys init"):
        kr.KeyRingSource(path=tmp_path / "absent.json")


def test_source_sees_a_change_that_keeps_size_mtime_and_inode(tmp_path: Path) -> None:
    """A promote keeps the file's size; coarse mtimes and reused inodes can hide it."""
    path = tmp_path / "keys.json"
    ring, version = kr.with_added_version(kr.new_keyring(development=True), "kek")
    kr.write_keyring_file(path, ring)
    source = kr.KeyRingSource(path=path, reload_seconds=0.0)
    before = path.stat()
    path.write_text(kr.dump_keyring(kr.with_primary(ring, "kek", version)))  # in place: same inode
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_ino) == (before.st_size, before.st_ino)
    assert source.current().kek.primary == version


def test_source_keeps_the_last_good_ring_when_the_file_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    kr.write_keyring_file(path, kr.new_keyring(development=True))
    source = kr.KeyRingSource(path=path, reload_seconds=0.0)
    before = source.current()
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert source.refresh() == before
    with pytest.raises(KeyRingError, match="is not text"):
        kr.read_keyring_file(path)
