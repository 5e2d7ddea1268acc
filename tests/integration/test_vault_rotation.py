"""Key rotation against the data: rewrap, re-index, retire, status."""

from __future__ import annotations

from pathlib import Path

import pytest

from maskline.vault import keyring as kr
from maskline.vault import rotation, sealing
from maskline.vault.interfaces import PARTY_NUMBER, KeyRingError
from maskline.vault.models import VaultEntry
from maskline.wiring import Services

NUMBERS = [f"+1415555{1000 + i:04d}" for i in range(7)]


def put_all(services: Services) -> list[str]:
    with services.db.session() as session:
        return [services.vault.put(session, n).token for n in NUMBERS]


def rotate(keys_file: Path, kind: kr.KeyKind) -> int:
    ring, version = kr.with_added_version(kr.read_keyring_file(keys_file), kind)
    kr.write_keyring_file(keys_file, kr.with_primary(ring, kind, version))
    return version


def test_rewrap_moves_every_entry_in_resumable_batches(services: Services, keys_file: Path) -> None:
    tokens = put_all(services)
    rotate(keys_file, "kek")
    ring = services.keys.current()
    batches = []
    while True:
        with services.db.session() as session:
            done = rotation.rewrap_batch(session, ring, batch=3)
        if not done:
            break
        batches.append(done)
    assert batches == [3, 3, 1]
    with services.db.session() as session:
        assert rotation.remaining(session, ring, "kek") == 0
        assert [services.vault.open(session, t) for t in tokens] == NUMBERS
        counts = {(s.kind, s.version): s.entries for s in rotation.key_status(session, ring)}
    assert counts[("kek", 1)] == 0 and counts[("kek", 2)] == len(NUMBERS)


def test_old_kek_can_be_retired_only_after_rewrap(services: Services, keys_file: Path) -> None:
    put_all(services)
    rotate(keys_file, "kek")
    with pytest.raises(KeyRingError, match="still protects 7 entries"), services.db.session() as session:
        rotation.mark_retired(session, "kek", 1)
    with services.db.session() as session:
        rotation.rewrap_batch(session, services.keys.current(), batch=100)
        rotation.mark_retired(session, "kek", 1)


def test_kek_rotation_leaves_blind_indexes_alone(services: Services, keys_file: Path) -> None:
    put_all(services)
    rotate(keys_file, "kek")
    with services.db.session() as session:
        rotation.rewrap_batch(session, services.keys.current(), batch=100)
        counts = {
            (s.kind, s.version): s.entries for s in rotation.key_status(session, services.keys.current())
        }
        assert services.vault.lookup(session, NUMBERS[0]) is not None
    assert counts[("index", 1)] == len(NUMBERS)


def test_lookup_works_before_during_and_after_reindex(services: Services, keys_file: Path) -> None:
    tokens = put_all(services)
    rotate(keys_file, "index")
    ring = services.keys.current()
    with services.db.session() as session:
        assert services.vault.lookup(session, NUMBERS[0]) == tokens[0]
        rotation.reindex_batch(session, ring, batch=3)
    with services.db.session() as session:
        assert [services.vault.lookup(session, n) for n in NUMBERS] == tokens
        while rotation.reindex_batch(session, ring, batch=3):
            pass
        assert rotation.remaining(session, ring, "index") == 0
        assert [services.vault.lookup(session, n) for n in NUMBERS] == tokens
        assert services.vault.put(session, NUMBERS[3]).token == tokens[3]


def test_put_after_rotation_uses_the_new_primary(services: Services, keys_file: Path) -> None:
    version = rotate(keys_file, "kek")
    with services.db.session() as session:
        services.vault.put(session, NUMBERS[0])
        counts = {
            (s.kind, s.version): s.entries for s in rotation.key_status(session, services.keys.current())
        }
    assert counts[("kek", version)] == 1


def test_an_added_version_is_loaded_but_unused_until_promoted(services: Services, keys_file: Path) -> None:
    ring, version = kr.with_added_version(kr.read_keyring_file(keys_file), "kek")
    kr.write_keyring_file(keys_file, ring)
    promoted_elsewhere = kr.with_primary(ring, "kek", version)
    sealed = sealing.seal(promoted_elsewhere, NUMBERS[1], entry_id="pn_other", purpose=PARTY_NUMBER)
    with services.db.session() as session:
        token = services.vault.put(session, NUMBERS[0]).token
        entry = session.get(VaultEntry, token)
        assert entry is not None and entry.kek_version == 1
    here = services.keys.current()  # this process loaded version 2 and does not use it yet
    opened = sealing.open_sealed(
        here, sealed.wrapped_key, sealed.ciphertext, entry_id="pn_other", purpose=PARTY_NUMBER
    )
    assert opened == NUMBERS[1]


def test_rewrap_and_reindex_pass_over_erased_entries(services: Services, keys_file: Path) -> None:
    tokens = put_all(services)
    with services.db.session() as session:
        services.vault.erase(session, tokens[0], actor="dpo", reason="erasure request")
    rotate(keys_file, "kek")
    rotate(keys_file, "index")
    ring = services.keys.current()
    with services.db.session() as session:
        assert rotation.rewrap_batch(session, ring, batch=100) == len(NUMBERS) - 1
        assert rotation.reindex_batch(session, ring, batch=100) == len(NUMBERS) - 1
        assert rotation.remaining(session, ring, "kek") == rotation.remaining(session, ring, "index") == 0


def test_old_index_key_can_be_retired_only_after_reindex(services: Services, keys_file: Path) -> None:
    put_all(services)
    rotate(keys_file, "index")
    with pytest.raises(KeyRingError, match="run `maskline vault reindex`"), services.db.session() as session:
        rotation.mark_retired(session, "index", 1)
    with services.db.session() as session:
        rotation.reindex_batch(session, services.keys.current(), batch=100)
        rotation.mark_retired(session, "index", 1)
        status = {(s.kind, s.version): s for s in rotation.key_status(session, services.keys.current())}
    assert status[("index", 1)].retired and status[("index", 1)].entries == 0


def test_a_damaged_entry_is_skipped_and_reported_not_blocking_rewrap(
    services: Services, keys_file: Path
) -> None:
    from sqlalchemy import update

    from maskline.vault.models import VaultEntry

    tokens = put_all(services)
    damaged = sorted(tokens)[0]  # the first row every batch would pick
    with services.db.session() as session:
        entry = session.get(VaultEntry, damaged)
        assert entry is not None and entry.wrapped_key is not None
        broken = entry.wrapped_key[:-1] + bytes([entry.wrapped_key[-1] ^ 1])
        session.execute(update(VaultEntry).where(VaultEntry.token == damaged).values(wrapped_key=broken))
    rotate(keys_file, "kek")
    failed: list[str] = []
    while True:
        before = len(failed)
        with services.db.session() as session:
            done = rotation.rewrap_batch(session, services.keys.current(), batch=2, failed=failed)
        if done == 0 and len(failed) == before:
            break
    assert failed == [damaged]
    with services.db.session() as session:
        assert rotation.remaining(session, services.keys.current(), "kek") == 1
