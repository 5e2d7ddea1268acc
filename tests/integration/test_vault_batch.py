"""The vault's batch put: the tokens of one put at a time, in fewer statements."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from maskline.vault import keyring as kr
from maskline.vault import rotation
from maskline.vault.models import VaultEntry
from maskline.vault.services import VaultService
from maskline.wiring import Services

NUMBERS = ["+14155550132", "+12125550143", "+13125550154"]


@pytest.fixture
def statements(services: Services) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(statement)

    event.listen(services.db.engine, "before_cursor_execute", count)
    yield seen
    event.remove(services.db.engine, "before_cursor_execute", count)


def test_batch_gives_the_tokens_single_puts_give(services: Services) -> None:
    with services.db.session() as s:
        known = services.vault.put(s, NUMBERS[1]).token
    with services.db.session() as s:
        results = services.vault.put_many_normalized(s, NUMBERS)
    assert [r.created for r in results] == [True, False, True]
    assert results[1].token == known
    with services.db.session() as s:
        assert [services.vault.put(s, n).token for n in NUMBERS] == [r.token for r in results]
        assert [services.vault.open(s, r.token) for r in results] == NUMBERS
        assert s.scalar(select(func.count()).select_from(VaultEntry)) == 3


def test_new_numbers_take_two_statements_known_ones_one(services: Services, statements: list[str]) -> None:
    with services.db.session() as s:
        services.vault.put_many_normalized(s, NUMBERS)
        new = [x.split()[0] for x in statements if not x.startswith(("BEGIN", "COMMIT"))]
        statements.clear()
        services.vault.put_many_normalized(s, NUMBERS)
        known = [x.split()[0] for x in statements]
    assert new == ["SELECT", "INSERT"]
    assert known == ["SELECT"]


def test_repeated_numbers_get_one_entry(services: Services) -> None:
    with services.db.session() as s:
        results = services.vault.put_many_normalized(s, [NUMBERS[0], NUMBERS[0]])
        assert results[0] == results[1]
        assert s.scalar(select(func.count()).select_from(VaultEntry)) == 1


def test_erased_number_gets_a_new_token(services: Services) -> None:
    with services.db.session() as s:
        old = services.vault.put(s, NUMBERS[0]).token
        services.vault.erase(s, old, actor="dpo", reason="erasure request #7")
    with services.db.session() as s:
        (again,) = services.vault.put_many_normalized(s, [NUMBERS[0]])
    assert again.created and again.token != old


def test_an_entry_not_yet_reindexed_is_reused(services: Services, keys_file: Path) -> None:
    with services.db.session() as s:
        tokens = [services.vault.put(s, n).token for n in NUMBERS]
    ring, version = kr.with_added_version(kr.read_keyring_file(keys_file), "index")
    kr.write_keyring_file(keys_file, kr.with_primary(ring, "index", version))
    with services.db.session() as s:
        rotation.reindex_batch(s, services.keys.current(), batch=1)  # one of three moved
    with services.db.session() as s:
        results = services.vault.put_many_normalized(s, NUMBERS)
        assert s.scalar(select(func.count()).select_from(VaultEntry)) == 3
    assert [r.token for r in results] == tokens and not any(r.created for r in results)


def test_a_concurrent_put_that_wins_the_index_gives_its_token(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    with services.db.session() as s:
        winner = services.vault.put(s, NUMBERS[0]).token
    # As if the other put committed between this batch's SELECT and INSERT.
    real = VaultService._find_many
    calls: list[int] = []

    def first_sees_nothing(self: VaultService, session: Any, indexes: dict[bytes, str]) -> dict[str, str]:
        calls.append(1)
        return {} if len(calls) == 1 else real(self, session, indexes)

    monkeypatch.setattr(VaultService, "_find_many", first_sees_nothing)
    with services.db.session() as s:
        results = services.vault.put_many_normalized(s, NUMBERS[:2])
        assert s.scalar(select(func.count()).select_from(VaultEntry)) == 2
    assert results[0].token == winner and not results[0].created
    assert results[1].created and len(calls) == 2


def test_concurrent_batches_of_one_new_number_share_its_token(services: Services) -> None:
    # PostgreSQL: the second insert waits on the unique index; SQLite: the
    # second transaction waits for the write lock. Either way one token.
    started, go = threading.Event(), threading.Event()

    def first() -> str:
        with services.db.session() as s:
            token = services.vault.put_many_normalized(s, NUMBERS[:1])[0].token
            started.set()
            go.wait(10)  # commit only once the other batch waits on the index
        return token

    with ThreadPoolExecutor(max_workers=1) as pool:
        winner = pool.submit(first)
        started.wait(10)
        threading.Timer(0.3, go.set).start()
        with services.db.session() as s:
            (mine,) = services.vault.put_many_normalized(s, NUMBERS[:1])
    assert mine.token == winner.result() and not mine.created
