"""Console logins under attack: name spraying from one address is throttled
(Flask-Limiter, per client address), and nobody can keep a named admin out:
the lockout counts per account *and* address. Addresses are resolved through
MASKLINE_TRUSTED_PROXIES only."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from config import SettingsError, load_settings
from maskline import services_of
from maskline.audit.models import AuditRecord
from tests.integration.admin_helpers import PASSWORD, Console, make_admin
from tests.integration.conftest import AppMaker

ATTACKER = "203.0.113.66"
ADMIN_HOME = "198.51.100.7"
PROXY = "10.0.0.2"


def attempt(console: Console, name: str, password: str, *, remote: str, forwarded: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    reply = console.login_from(name, password, remote=remote, headers=headers)
    return reply.status_code


def _login_from(self: Console, name: str, password: str, *, remote: str, headers: dict[str, str]) -> Any:
    return self.post(
        "/admin/login",
        {"name": name, "password": password},
        environ_base={"REMOTE_ADDR": remote},
        headers=headers,
    )


Console.login_from = _login_from  # type: ignore[attr-defined]


def test_name_spraying_from_one_address_is_throttled(make_app: AppMaker) -> None:
    app = make_app(admin_login_rate_limit="3/hour")
    console = Console(app)

    statuses = [
        attempt(console, name, "guess", remote=ATTACKER) for name in ("ann", "bob", "cyd", "dan", "eve")
    ]

    assert statuses == [401, 401, 401, 429, 429]
    assert attempt(Console(app), "ann", "guess", remote=ADMIN_HOME) == 401  # another address: not throttled


def test_an_attacker_cannot_lock_an_admin_out_by_name(make_app: AppMaker) -> None:
    app = make_app(admin_login_rate_limit="1000/hour")
    make_admin(app, "vera", "viewer")
    limit = services_of(app).settings.admin_max_failed_logins
    attacker = Console(app)

    for _ in range(limit * 3):
        assert attempt(attacker, "vera", "wrong guess", remote=ATTACKER) == 401

    assert attempt(attacker, "vera", PASSWORD, remote=ATTACKER) == 401  # that address is locked out
    assert attempt(Console(app), "vera", PASSWORD, remote=ADMIN_HOME) == 303  # vera is not


def test_an_admin_locks_out_only_their_own_address_and_an_operator_unlocks(make_app: AppMaker) -> None:
    app = make_app(admin_login_rate_limit="1000/hour")
    make_admin(app, "vera", "viewer")
    limit = services_of(app).settings.admin_max_failed_logins
    console = Console(app)
    for _ in range(limit):
        attempt(console, "vera", "typo", remote=ADMIN_HOME)
    assert attempt(console, "vera", PASSWORD, remote=ADMIN_HOME) == 401

    services_of(app).admin.accounts.unlock("vera", actor="cli:root")

    assert attempt(console, "vera", PASSWORD, remote=ADMIN_HOME) == 303
    with services_of(app).db.session() as session:
        assert (
            session.scalar(select(AuditRecord.actor).where(AuditRecord.action == "admin.user.unlock"))
            == "cli:root"
        )


def test_behind_a_trusted_proxy_users_are_told_apart(make_app: AppMaker) -> None:
    app = make_app(admin_login_rate_limit="2/hour", trusted_proxies=1)
    first, second = Console(app), Console(app)

    sprayed = [attempt(first, n, "x", remote=PROXY, forwarded=ATTACKER) for n in ("a1", "a2", "a3")]
    other = attempt(second, "a1", "x", remote=PROXY, forwarded=ADMIN_HOME)

    assert sprayed == [401, 401, 429]
    assert other == 401  # same proxy, another client: not throttled with the attacker


def test_without_trusted_proxies_a_forged_forwarded_for_changes_nothing(make_app: AppMaker) -> None:
    app = make_app(admin_login_rate_limit="2/hour")
    console = Console(app)

    statuses = [attempt(console, "ann", "x", remote=ATTACKER, forwarded=f"192.0.2.{i}") for i in range(3)]

    assert statuses == [401, 401, 429]


def test_a_proxy_chain_longer_than_trusted_only_trusts_the_last_hops(make_app: AppMaker) -> None:
    app = make_app(admin_login_rate_limit="2/hour", trusted_proxies=1)
    console = Console(app)
    # The client writes its own X-Forwarded-For; the trusted proxy appends the real peer.
    statuses = [
        attempt(console, "ann", "x", remote=PROXY, forwarded=f"192.0.2.{i}, {ATTACKER}") for i in range(3)
    ]

    assert statuses == [401, 401, 429]


@pytest.mark.parametrize(("name", "value"), [("TRUSTED_PROXIES", "-1"), ("ADMIN_LOGIN_RATE_LIMIT", "lots")])
def test_the_settings_are_checked(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"MASKLINE_{name}"):
        load_settings(environ={f"MASKLINE_{name}": value})


def test_the_throttle_only_counts_login_posts(app: Flask) -> None:
    console = Console(app)
    for _ in range(30):
        assert console.get("/admin/login").status_code == 200
