"""``maskline bindings extend`` never shortens silently (issue 20)."""

from __future__ import annotations

import json

from tests.e2e.conftest import Cli

BUYER, MERCHANT = "+14155550132", "+12125550143"


def _bind(cli: Cli, ttl: str) -> dict[str, str]:
    parties = ("--party", f"buyer={BUYER}", "--party", f"merchant={MERCHANT}")
    cli.run("pool", "add", "+14155550100")
    return dict(json.loads(cli.out("bind", "--order", "o-1", "--mode", "axb", *parties, "--ttl", ttl)))


def test_a_shorter_ttl_is_refused_and_changes_nothing(initialised: Cli) -> None:
    binding = _bind(initialised, "72h")
    refused = initialised.run("bindings", "extend", binding["id"], "--ttl", "1h", ok=False)
    assert "nothing changed" in refused.stderr and "--allow-shorten" in refused.stderr
    shown = json.loads(initialised.out("bindings", "show", binding["id"]))
    assert shown["expires_at"] == binding["expires_at"]


def test_allow_shorten_shortens_and_a_longer_ttl_needs_nothing(initialised: Cli) -> None:
    binding = _bind(initialised, "72h")
    longer = json.loads(initialised.out("bindings", "extend", binding["id"], "--ttl", "96h"))
    assert (
        longer["previous_expires_at"] == binding["expires_at"]
        and longer["expires_at"] > binding["expires_at"]
    )
    shorter = json.loads(
        initialised.out("bindings", "extend", binding["id"], "--ttl", "1h", "--allow-shorten")
    )
    assert (
        shorter["previous_expires_at"] == longer["expires_at"]
        and shorter["expires_at"] < binding["expires_at"]
    )
