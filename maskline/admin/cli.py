"""``maskline admin``: console accounts (create-user, disable, enable, reset-totp, list).

Passwords are prompted for (twice, not echoed) or read from stdin with
``--password-stdin``; never taken as an argument, where ``ps`` and shell
history would keep them. Every change is audited as ``cli:<login>``.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from maskline.admin.interfaces import ROLES, AdminError

if TYPE_CHECKING:  # argon2 and pyotp load only when an admin command runs
    from maskline.admin.accounts import AdminAccounts


@contextlib.contextmanager
def _accounts() -> Iterator[AdminAccounts]:
    from maskline.cli import _services

    with _services() as services:
        try:
            yield services.admin.accounts
        except AdminError as exc:
            raise click.ClickException(str(exc)) from None


def _actor() -> str:
    from maskline.cli import _default_actor

    return _default_actor()


@click.group("admin")
def admin() -> None:
    """Admin console accounts."""


@admin.command("create-user")
@click.option("--name", required=True, help="lowercase letters, digits, . _ -")
@click.option("--role", required=True, type=click.Choice(ROLES), help="what the account may do")
@click.option("--password-stdin", is_flag=True, help="read the password from stdin (first line)")
def create_user(name: str, role: str, password_stdin: bool) -> None:
    """Create a console account (security accounts enroll TOTP at first login)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with _accounts() as accounts:
        accounts.create_user(name=name, role=role, password=password, actor=_actor())
    click.echo(f"created {role} {name}")


@admin.command("disable")
@click.argument("name")
def disable(name: str) -> None:
    """Disable an account: it cannot log in, and its sessions end at once."""
    with _accounts() as accounts:
        accounts.set_disabled(name, True, actor=_actor())
    click.echo(f"disabled {name}")


@admin.command("enable")
@click.argument("name")
def enable(name: str) -> None:
    """Enable an account again (and lift a lockout)."""
    with _accounts() as accounts:
        accounts.set_disabled(name, False, actor=_actor())
    click.echo(f"enabled {name}")


@admin.command("unlock")
@click.argument("name")
def unlock(name: str) -> None:
    """Lift an account's login lockouts, for every client address, at once (audited)."""
    with _accounts() as accounts:
        accounts.unlock(name, actor=_actor())
    click.echo(f"unlocked {name}")


@admin.command("reset-totp")
@click.argument("name")
@click.option("--reason", required=True, help="why (goes in the audit log)")
def reset_totp(name: str, reason: str) -> None:
    """Forget an account's second factor (a lost phone): it enrolls again at next login."""
    with _accounts() as accounts:
        accounts.reset_second_factor(name, actor=_actor(), reason=reason)
    click.echo(f"second factor of {name} reset")


@admin.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON lines (times in ISO 8601 UTC)")
def list_users(as_json: bool) -> None:
    """Accounts with their role, state and last login (in MASKLINE_DISPLAY_TIMEZONE)."""
    from maskline.cli import _services
    from maskline.clock import format_local

    with _services() as services:
        users = services.admin.accounts.users()
        zone = services.settings.display_timezone
    for u in users:
        state = "disabled" if u.disabled else "enabled"
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "name": u.name,
                        "role": u.role,
                        "state": state,
                        "totp": u.totp_enrolled,
                        "last_login_at": u.last_login_at.isoformat() if u.last_login_at else None,
                    }
                )
            )
        else:
            totp = "totp" if u.totp_enrolled else "-"
            last = format_local(u.last_login_at, zone) if u.last_login_at else "-"
            click.echo(f"{u.name}\t{u.role}\t{state}\t{totp}\t{last}")
