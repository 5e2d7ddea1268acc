"""Every Redis script and transaction touches the keys of one hash slot.

On Redis Cluster a Lua script or MULTI whose keys span slots fails
(CROSSSLOT), so each key builder is checked with redis-py's own
``key_slot``, and an inventory of the code's script calls, transaction
pipelines and Lua ``KEYS[n]`` makes a new one fail here until it is
checked too.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from redis.cluster import key_slot

from maskline.numbers.owner_limits import owner_key
from maskline.numbers.regions import place
from maskline.numbers.route_copies import copies_key
from maskline.numbers.routes import route_key
from maskline.numbers.selection import GLOBAL, country_key, marker_key, tiers
from maskline.webhooks.bridge import BridgeStore
from maskline.webhooks.services import DecisionStore, Quotas
from maskline.webhooks.steps import (
    caller_failures_key,
    live_key,
    lockdown_key,
    number_failures_key,
    record_key,
)

PACKAGE = Path(__file__).resolve().parents[2] / "maskline"
RELAYS = ["+14155550100", "+8613800138000", "+442071838750", "+14155550199"]


def slot(key: str) -> int:
    return key_slot(key.encode())


@pytest.mark.parametrize("relay", RELAYS)
def test_every_key_about_a_relay_number_is_on_its_slot(relay: str) -> None:
    keys = [
        route_key(relay),  # the one key every routing script gets
        copies_key(relay),  # derived from it by the scripts that keep the route copies
        *Quotas.keys(relay, "bd_aaaaaaaaaaaaaaaa", "call", now=1_800_000_000),  # quota.lua's two keys
        *Quotas.keys(relay, "bd_bbbbbbbbbbbbbbbb", "sms", now=1_800_086_399),
        caller_failures_key(relay, "00ff" * 6),  # step.lua's keys, derived from route_key
        number_failures_key(relay),
        lockdown_key(relay),
        live_key(relay, "bd_aaaaaaaaaaaaaaaa"),
        record_key(relay, "CA" + "0" * 32),
        DecisionStore.key("SM" + "0" * 32, relay),
    ]
    assert {slot(k) for k in keys} == {slot("{" + relay + "}")}


@pytest.mark.parametrize("anchor", RELAYS)
def test_a_picks_keys_are_on_its_countrys_slot(anchor: str) -> None:
    where = place(anchor)
    keys = [marker_key(where.country), *(key for tier in tiers(where) for key in tier)]
    assert {slot(k) for k in keys} == {slot(country_key(where.country))}


def test_the_every_country_set_and_its_marker_share_a_slot() -> None:
    assert slot(GLOBAL) == slot(marker_key("global"))


def test_an_owner_s_count_has_a_slot_of_its_own() -> None:
    # One key per owner script call; on a cluster it is never given to a
    # relay number's script (maskline.numbers.routes adds it on one node only).
    assert slot(owner_key("shop-a")) == slot("{owner:shop-a}")


def test_relay_numbers_do_not_all_share_one_slot() -> None:
    # The tag is the number itself, so bindings spread over the cluster.
    assert len({slot(route_key(relay)) for relay in RELAYS}) > 1


def test_a_click_to_call_reference_has_a_slot_of_its_own() -> None:
    ref = "Zm9vYmFyYmF6cXV4cXV1eA"
    assert slot(BridgeStore.key(ref)) == slot("{" + ref + "}")


# -- inventory: a new script call or transaction fails here until reviewed ----

# (module, enclosing function) of every script call (``keys=``, ``args=``), with the
# test above that proves its keys share a slot.
SCRIPT_CALLS = {
    # route_key(relay); on one Redis node (never a cluster) also the relay
    # number's selection sets, whose scores follow its claims and releases,
    # and the owner's count (owner_key), checked in the claim.
    ("numbers/routes.py", "_run"),
    ("numbers/owner_limits.py", "take"),  # owner_key(owner) only (a cluster's bind)
    ("numbers/owner_limits.py", "reconcile"),  # owner_key(owner) only
    ("numbers/selection.py", "_read"),  # marker_key(country) + tiers(place): the country's slot
    ("numbers/replace.py", "_move"),  # route_key(relay) only
    ("numbers/route_copies.py", "put"),  # route_key(relay) only
    ("numbers/route_copies.py", "_swap"),  # route_key(relay) only
    ("webhooks/services.py", "settle"),  # DecisionStore.key(sid, relay), route_key(relay)
    ("webhooks/services.py", "record"),  # DecisionStore.key(sid, relay) only
    ("webhooks/services.py", "finish"),  # DecisionStore.key(sid, relay) only
    ("webhooks/services.py", "take"),  # Quotas.keys(...)
    ("webhooks/steps.py", "run"),  # route_key(relay), record_key(relay, sid)
    ("redis_script.py", "call_script"),  # the keys of its callers (each listed here)
}
# Transaction pipelines (MULTI/EXEC): each touches one key, built by one builder.
TRANSACTIONS = {
    ("numbers/selection.py", "build"),  # a country's sets, registry and marker; or GLOBAL and its marker
    ("webhooks/services.py", "finish"),  # DecisionStore.key(sid, relay)
    ("webhooks/steps.py", "overrule"),  # record_key(relay, sid)
    ("webhooks/bridge.py", "put"),  # BridgeStore.key(ref)
    ("webhooks/bridge.py", "claim"),  # BridgeStore.key(ref)
}
# Lua scripts with more than one key (the others use KEYS[1] alone).
MULTI_KEY_SCRIPTS = {"webhooks/lua/quota.lua": 2, "webhooks/lua/step.lua": 2, "webhooks/lua/settle.lua": 2}
# Scripts that derive further keys from KEYS[1] (``key .. ":suffix"``): the
# derived keys keep its {X} tag, so they are on its slot (the builders in
# maskline.webhooks.steps name them, and the first test checks their slots).
DERIVING_SCRIPTS = {
    "webhooks/lua/step.lua",
    # ml:{X}:cp, the route copies (maskline.numbers.route_copies.copies_key)
    "numbers/lua/claim.lua",
    "numbers/lua/end.lua",
    "numbers/lua/release.lua",
    "numbers/lua/replace.lua",
    "numbers/lua/copies.lua",
}


def _calls(predicate: Callable[[ast.Call], bool]) -> set[tuple[str, str]]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Call) and predicate(node):
                    found.add((path.relative_to(PACKAGE).as_posix(), func.name))
    return found


def _is_script_call(node: ast.Call) -> bool:
    return {"keys", "args"} <= {kw.arg for kw in node.keywords}  # script(keys=..., args=...)


def _is_transaction(node: ast.Call) -> bool:
    if not (isinstance(node.func, ast.Attribute) and node.func.attr == "pipeline"):
        return False
    return not any(
        kw.arg == "transaction" and isinstance(kw.value, ast.Constant) and kw.value.value is False
        for kw in node.keywords
    )


def test_every_script_call_site_is_one_whose_keys_are_checked() -> None:
    assert _calls(_is_script_call) == SCRIPT_CALLS


def test_every_transaction_pipeline_is_one_whose_key_is_checked() -> None:
    # redis-py's cluster pipeline runs transaction=True on one slot only
    # (CrossSlotTransactionError otherwise); transaction=False may span slots.
    assert _calls(_is_transaction) == TRANSACTIONS


def test_lua_scripts_use_only_the_keys_they_are_given() -> None:
    for path in PACKAGE.rglob("*.lua"):
        code = "\n".join(line.split("--", 1)[0] for line in path.read_text().splitlines())
        name = path.relative_to(PACKAGE).as_posix()
        used = {int(n) for n in re.findall(r"KEYS\[(\d+)\]", code)}
        assert max(used, default=1) == MULTI_KEY_SCRIPTS.get(name, 1), name
        # A key built inside a script is invisible to the cluster client's routing.
        assert not re.search(r"""["']ml:""", code), f"{name} builds a key name"
        if name not in DERIVING_SCRIPTS:
            assert not re.search(r"""\.\.\s*["']:""", code), f"{name} derives a key name"
