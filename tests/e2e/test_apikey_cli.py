"""``maskline apikey``: a key is printed once, stored as a hash, listed without it, revoked."""

from __future__ import annotations

import json

from sqlalchemy import create_engine, text

from tests.e2e.conftest import Cli


def test_create_prints_the_key_once_and_stores_only_its_hash(initialised: Cli) -> None:
    created = json.loads(
        initialised.out(
            "apikey", "create", "--name", "orders", "--owner", "shop-a", "--scope", "bindings:write"
        )
    )
    key = created["key"]
    assert key.startswith(f"ml_{created['id']}_") and created["scopes"] == ["bindings:write"]
    listed = initialised.out("apikey", "list")
    assert created["id"] in listed and key.split("_", 2)[2] not in listed
    engine = create_engine(initialised.database_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT * FROM api_keys")).all()
    finally:
        engine.dispose()
    assert len(rows) == 1 and key.split("_", 2)[2] not in repr(rows)


def test_revoke_marks_the_key_and_an_unknown_id_fails(initialised: Cli) -> None:
    created = json.loads(
        initialised.out("apikey", "create", "--name", "c", "--owner", "fastship", "--scope", "waybills:read")
    )
    revoked = json.loads(initialised.out("apikey", "revoke", created["id"]))
    assert revoked["revoked_at"] is not None
    failed = initialised.run("apikey", "revoke", "nosuchkey000", ok=False)
    assert "no API key" in failed.stderr


def test_a_bad_scope_or_owner_is_refused(initialised: Cli) -> None:
    bad_scope = initialised.run(
        "apikey", "create", "--name", "n", "--owner", "o", "--scope", "vault:reveal", ok=False
    )
    assert "vault:reveal" in bad_scope.stderr
    bad_owner = initialised.run(
        "apikey", "create", "--name", "n", "--owner", "has space", "--scope", "pool:read", ok=False
    )
    assert "owner" in bad_owner.stderr
    assert initialised.out("apikey", "list") == ""
