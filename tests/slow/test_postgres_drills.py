"""Drills on a throwaway PostgreSQL: a brand-new cluster, and a restart mid-traffic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError

from config import load_settings
from maskline import migrate
from maskline.db import make_engine
from maskline.vault import keyring as kr
from maskline.wiring import Services, build_services
from tests.slow.conftest import ThrowawayPostgres

pytestmark = pytest.mark.slow


@pytest.fixture
def services_on(throwaway_postgres: ThrowawayPostgres, tmp_path: Path) -> Iterator[Services]:
    engine = make_engine(throwaway_postgres.url)
    migrate.upgrade(engine)  # from zero, as `maskline init` does on a new cluster
    engine.dispose()
    keys = tmp_path / "keys.json"
    kr.write_keyring_file(keys, kr.new_keyring(development=True))
    settings = load_settings(
        {
            "env": "testing",
            "instance_path": tmp_path,
            "database_url": throwaway_postgres.url,
            "keys_file": keys,
            "redis_url": "redis://127.0.0.1:1/0",
        },
        environ={},
    )
    services = build_services(settings)
    yield services
    services.close()


def test_a_new_cluster_migrates_from_zero_and_seals(services_on: Services) -> None:
    with services_on.db.session() as session:
        token = services_on.vault.put(session, "+14155550132").token
    with services_on.db.session() as session:
        assert services_on.vault.open(session, token) == "+14155550132"
        assert services_on.audit.verify(session).ok


def test_restart_mid_traffic_fails_cleanly_then_the_pool_reconnects(
    services_on: Services, throwaway_postgres: ThrowawayPostgres
) -> None:
    numbers = [f"+1415555{1000 + i:04d}" for i in range(20)]
    tokens: dict[str, str] = {}
    for i, number in enumerate(numbers):
        if i == 10:
            throwaway_postgres.pg_ctl("restart", "-m", "fast")
        try:
            with services_on.db.session() as session:
                tokens[number] = services_on.vault.put(session, number).token
        except DBAPIError:
            pass  # a request in flight may fail, cleanly; it must never half-succeed
    assert len(tokens) >= 19  # at most the one request that met the restart failed
    with services_on.db.session() as session:
        for number, token in tokens.items():
            assert services_on.vault.open(session, token) == number
        # The same person still has the same token after the restart.
        assert services_on.vault.put(session, numbers[0]).token == tokens[numbers[0]]
