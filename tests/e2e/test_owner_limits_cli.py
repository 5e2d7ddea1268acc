"""``maskline owner set-limits`` and ``maskline bind`` at the cap, as an operator runs them."""

from __future__ import annotations

import json

from tests.e2e.conftest import Cli

BUYERS = ["+14155550132", "+14155550133"]
MERCHANT = "+12125550143"


def _bind(cli: Cli, buyer: str, *, ok: bool = True) -> object:
    return cli.run(
        "bind", "--owner", "shop-a", "--order", "o-" + buyer[-2:], "--mode", "axb",
        "--party", f"buyer={buyer}", "--party", f"merchant={MERCHANT}", ok=ok,
    )  # fmt: skip


def test_set_limits_caps_the_owner_s_binds_and_is_shown(initialised: Cli) -> None:
    initialised.run("pool", "add", "+14155550100", "+14155550101")

    set_to_one = json.loads(initialised.out("owner", "set-limits", "shop-a", "--max-live-bindings", "1"))
    _bind(initialised, BUYERS[0])
    refused = _bind(initialised, BUYERS[1], ok=False)
    shown = json.loads(initialised.out("owner", "show", "shop-a"))

    assert set_to_one["max_live_bindings"] == 1
    assert refused.returncode == 1 and "cap of 1 live bindings" in refused.stderr  # type: ignore[attr-defined]
    assert "4155550133" not in refused.stderr and "Traceback" not in refused.stderr  # type: ignore[attr-defined]
    assert (shown["max_live_bindings"], shown["live_bindings"]) == (1, 1)


def test_set_limits_needs_exactly_one_of_a_cap_or_default(initialised: Cli) -> None:
    neither = initialised.run("owner", "set-limits", "shop-a", ok=False)
    negative = initialised.run("owner", "set-limits", "shop-a", "--max-live-bindings", "-1", ok=False)
    back = json.loads(initialised.out("owner", "set-limits", "shop-a", "--default"))

    assert neither.returncode == 2 and "--max-live-bindings N or --default" in neither.stderr
    assert negative.returncode == 2
    assert back["max_live_bindings"] is None
