"""Start-up refuses a key ring or schema the data cannot be trusted with."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from config import Settings, with_overrides
from maskline.vault import keyring as kr
from maskline.vault import rotation
from maskline.vault.interfaces import KeyRingMismatch
from maskline.vault.models import KeyVersion, VaultEntry
from maskline.wiring import Services, StartupError, build_services
from tests.conftest import EPOCH


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
        twilio_auth_token="t" * 32,
        public_url="https://relay.example.com",
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
        twilio_auth_token="t" * 32,
        public_url="https://relay.example.com",
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


def test_processes_starting_together_all_register_a_new_version(
    services: Services, settings: Settings, keys_file: Path
) -> None:
    kr.write_keyring_file(keys_file, kr.with_added_version(kr.read_keyring_file(keys_file), "kek")[0])
    failures: list[Exception] = []
    barrier = threading.Barrier(6)

    def start() -> None:
        barrier.wait()
        try:
            build_services(settings).close()
        except Exception as exc:
            failures.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    with services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(KeyVersion)) == 3


def test_a_reused_retired_version_number_is_registered_and_checked(
    services: Services, settings: Settings, keys_file: Path
) -> None:
    ring, version = kr.with_added_version(kr.read_keyring_file(keys_file), "kek")
    kr.write_keyring_file(keys_file, ring)
    build_services(settings).close()
    with services.db.session() as session:
        rotation.mark_retired(session, "kek", version)
    # `keys retire` drops it; the next `keys add` gives its number to a new key.
    reused, again = kr.with_added_version(kr.without_version(ring, "kek", version), "kek")
    assert again == version
    kr.write_keyring_file(keys_file, kr.with_primary(reused, "kek", version))
    build_services(settings).close()
    with services.db.session() as session:
        status = {(s.kind, s.version): s for s in rotation.key_status(session, reused)}
    assert not status[("kek", version)].retired
    assert status[("kek", version)].fingerprint == reused.fingerprint("kek", version)
    impostor, _ = kr.with_added_version(kr.without_version(ring, "kek", version), "kek")
    kr.write_keyring_file(keys_file, impostor)
    with pytest.raises(StartupError, match=f"kek version {version} in the key ring is not the key"):
        build_services(settings)


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "maskline keys init"), ("{not json", "not valid JSON"), ('{"format": 1}', "section 'kek'")],
)
def test_a_missing_or_malformed_key_file_is_refused(
    settings: Settings, tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "broken-keys.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(StartupError, match=message):
        build_services(with_overrides(settings, keys_file=path), check_schema=False)


class RacingSession(Session):
    """Another process registers kek version 2 just after this session read the registry."""

    fingerprint = ""

    def scalars(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        rows = list(super().scalars(statement, *args, **kwargs))
        self.execute(
            insert(KeyVersion).values(
                kind="kek", version=2, fingerprint=self.fingerprint, registered_at=EPOCH
            )
        )
        return rows


@pytest.mark.parametrize("same_key", [True, False])
def test_a_version_registered_meanwhile_is_checked_not_crashed_on(
    services: Services, keys_file: Path, same_key: bool
) -> None:
    ring, _ = kr.with_added_version(kr.read_keyring_file(keys_file), "kek")
    session = RacingSession(services.db.engine)
    session.fingerprint = ring.fingerprint("kek", 2) if same_key else "0" * 16
    with session, session.begin():
        if same_key:
            assert rotation.check_and_register(session, ring) == []
        else:
            with pytest.raises(KeyRingMismatch, match="kek version 2 was registered at the same time"):
                rotation.check_and_register(session, ring)
