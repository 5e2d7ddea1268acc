"""Start-up refuses a key ring or schema the data cannot be trusted with."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from config import Settings, with_overrides
from maskline.vault import keyring as kr
from maskline.vault.models import VaultEntry
from maskline.wiring import Services, StartupError, build_services


def test_a_different_key_ring_is_refused_naming_the_key(
    services: Services, settings: Settings, tmp_path: Path
) -> None:
    other = tmp_path / "other-keys.json"
    kr.write_keyring_file(other, kr.new_keyring(development=True))
    with pytest.raises(StartupError, match=r"(kek|index) version 1 in the key ring is not the key"):
        build_services(with_overrides(settings, keys_file=other))


def test_a_ring_lacking_a_recorded_version_is_refused(
    services: Services, settings: Settings, keys_file: Path
) -> None:
    ring, version = kr.with_added_version(kr.read_keyring_file(keys_file), "kek")
    kr.write_keyring_file(keys_file, ring)
    build_services(settings).close()  # registers version 2
    kr.write_keyring_file(keys_file, kr.without_version(ring, "kek", version))
    with pytest.raises(StartupError, match=f"lacks kek version {version}"):
        build_services(settings)


def test_production_refuses_a_development_ring(settings: Settings) -> None:
    production = with_overrides(
        settings,
        env="production",
        secret_key="s" * 40,
        redis_url="redis://127.0.0.1:6379/0",
        database_url="postgresql://x/y",
    )
    with pytest.raises(StartupError, match="development key ring"):
        build_services(production, check_schema=False)


def test_production_refuses_a_readable_key_file(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "prod-keys.json"
    kr.write_keyring_file(path, kr.new_keyring(development=False))
    path.chmod(0o644)
    production = with_overrides(
        settings,
        env="production",
        secret_key="s" * 40,
        redis_url="redis://127.0.0.1:6379/0",
        database_url="postgresql://x/y",
        keys_file=path,
    )
    with pytest.raises(StartupError, match="group or others"):
        build_services(production, check_schema=False)


def test_an_unmigrated_database_is_refused(settings: Settings, tmp_path: Path) -> None:
    fresh = with_overrides(settings, database_url=f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    with pytest.raises(StartupError, match="not up to date"):
        build_services(fresh)


def test_concurrent_puts_of_one_number_make_one_entry(services: Services) -> None:
    tokens: list[str] = []
    barrier = threading.Barrier(8)

    def put() -> None:
        barrier.wait()
        with services.db.session() as session:
            tokens.append(services.vault.put(session, "+14155550132").token)

    threads = [threading.Thread(target=put) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(tokens) == 8 and len(set(tokens)) == 1
    with services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(VaultEntry)) == 1
