"""The vault over a real database: put, dedupe, open, erase."""

from __future__ import annotations

import pytest

from maskline.vault.interfaces import InvalidPhoneNumber, VaultEntryErased, VaultEntryNotFound
from maskline.vault.models import VaultEntry
from maskline.wiring import Services


def test_put_then_open_round_trips(services: Services) -> None:
    with services.db.session() as s:
        token = services.vault.put(s, "+1 415 555 0132").token
    with services.db.session() as s:
        assert services.vault.open(s, token) == "+14155550132"


def test_same_person_in_any_format_gets_one_token(services: Services) -> None:
    with services.db.session() as s:
        first = services.vault.put(s, "+1 415 555 0132")
        second = services.vault.put(s, "(415) 555-0132")
    assert first.created and not second.created
    assert first.token == second.token


def test_invalid_number_stores_nothing(services: Services) -> None:
    with pytest.raises(InvalidPhoneNumber, match=r"^parties\.buyer: "), services.db.session() as s:
        services.vault.put(s, "12", field="parties.buyer")
    with services.db.session() as s:
        assert s.query(VaultEntry).count() == 0


def test_erased_entry_says_so_and_keeps_a_tombstone(services: Services) -> None:
    with services.db.session() as s:
        token = services.vault.put(s, "+14155550132").token
        services.vault.erase(s, token, actor="dpo", reason="erasure request #7")
    with services.db.session() as s:
        with pytest.raises(VaultEntryErased):
            services.vault.open(s, token)
        tomb = s.get(VaultEntry, token)
        assert tomb is not None
        assert (tomb.wrapped_key, tomb.ciphertext, tomb.blind_index) == (None, None, None)


def test_unknown_token_is_not_found(services: Services) -> None:
    with pytest.raises(VaultEntryNotFound), services.db.session() as s:
        services.vault.open(s, "pn_doesnotexist")
