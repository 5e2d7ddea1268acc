"""``maskline owner create`` and ``maskline owner list`` (issue 20), as an
operator runs them."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import Cli


def _lines(cli: Cli, *args: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in cli.out(*args).splitlines()]


def test_create_then_list_shows_the_owner_and_audits_it(initialised: Cli) -> None:
    made = json.loads(initialised.out("owner", "create", "shop-a"))
    assert made["name"] == "shop-a" and made["events_url"] is None and made["events_secret"] is None
    initialised.run("owner", "create", "fastship")
    assert [o["name"] for o in _lines(initialised, "owner", "list")] == ["fastship", "shop-a"]
    exported = [json.loads(line) for line in initialised.out("audit", "export", "--since", "1h").splitlines()]
    created = [(r["action"], r["subject"]) for r in exported if r["action"] == "owner.create"]
    assert created == [("owner.create", "shop-a"), ("owner.create", "fastship")]
    assert all(str(r["actor"]).startswith("cli:") for r in exported if r["action"] == "owner.create")


def test_list_includes_owners_known_by_their_keys_only(initialised: Cli) -> None:
    initialised.run("apikey", "create", "--name", "orders", "--owner", "legacy", "--scope", "pool:read")
    assert [o["name"] for o in _lines(initialised, "owner", "list")] == ["legacy"]


def test_an_existing_owner_is_refused_and_nothing_changes(initialised: Cli) -> None:
    initialised.run("owner", "create", "shop-a")
    again = initialised.run("owner", "create", "shop-a", ok=False)
    assert "exists" in again.stderr and "Traceback" not in again.stderr
    assert len(_lines(initialised, "owner", "list")) == 1


@pytest.mark.parametrize("name", ["has space", ".dot-first", "x" * 121])
def test_a_bad_name_is_refused_naming_the_rule(initialised: Cli, name: str) -> None:
    refused = initialised.run("owner", "create", name, ok=False)
    assert "owner: letters, digits" in refused.stderr and "Traceback" not in refused.stderr
    assert initialised.out("owner", "list") == ""


def test_an_empty_list_prints_nothing(initialised: Cli) -> None:
    assert initialised.out("owner", "list") == ""
