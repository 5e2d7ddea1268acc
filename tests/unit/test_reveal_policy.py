"""The reveal's policy and ids, without a database."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from config import load_settings
from maskline.admin.interfaces import ROLES, may
from maskline.admin.reveal import RevealPolicy, new_request_id


def test_the_policy_comes_from_settings() -> None:
    settings = load_settings(
        {"reveal_request_ttl": dt.timedelta(hours=2), "reveal_view_window": dt.timedelta(minutes=5)},
        environ={"MASKLINE_REVEAL_DAILY_LIMIT": "7"},
    )

    policy = RevealPolicy.from_settings(settings)

    assert policy == RevealPolicy(
        request_ttl=dt.timedelta(hours=2), view_window=dt.timedelta(minutes=5), daily_limit=7
    )


def test_request_ids_are_unguessable_and_fit_their_column() -> None:
    ids = {new_request_id() for _ in range(1000)}

    assert len(ids) == 1000
    assert all(re.fullmatch(r"rv_[a-z2-7]{16}", i) and len(i) <= 24 for i in ids)


@pytest.mark.parametrize("role", ROLES)
def test_only_security_may_take_part_in_a_reveal(role: str) -> None:
    assert may(role, "reveal") is (role == "security")
