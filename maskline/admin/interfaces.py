"""The admin package's contract: roles, identities, reveal requests, errors.

Roles, from least to most trusted::

    viewer     reads bindings, pool health, interactions, alerts, the audit log
    operator   a viewer who may also extend and unbind bindings (one by one or
               in bulk) and export lists as CSV
    security   a viewer who may take part in a dual-control reveal and export
               lists; never changes bindings (separation of duties)
    admin      a viewer who manages owners, console accounts and API keys;
               holds no reveal rights, and a change that gives reveal or
               admin rights, or resets another account's password or second
               factor, waits for a second admin (maskline.admin.management)

Exception tree::

    AdminError
    ├── InvalidAdminInput     bad input from a form or the CLI (names the field)
    ├── AdminNotFound         no such account
    ├── AdminExists           an account of that name exists
    ├── LoginRefused          wrong name or password, disabled or locked (one message for all)
    ├── SecondFactorRefused   a wrong, reused or missing TOTP code
    ├── NotPermitted          the role may not do this
    └── RevealRefused         a reveal step refused: self-approval, second view, limit, expiry...
        └── RevealNotFound    no such reveal request
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from maskline import errors

Role = Literal["viewer", "operator", "security", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "security", "admin")
# Roles whose accounts sign in with a second factor, and whose creation or
# granting waits for a second admin: they reveal numbers or manage accounts.
TRUSTED_ROLES: frozenset[Role] = frozenset({"security", "admin"})

RevealStatus = Literal["pending", "approved", "viewed", "denied", "cancelled", "expired"]


class AdminError(errors.MasklineError):
    """Base of the admin package's errors. Messages never hold a party number."""


class InvalidAdminInput(AdminError, errors.InputError):
    """Input a user could send that cannot be used; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class AdminNotFound(AdminError, errors.NotFound):
    """No account of that name."""


class AdminExists(AdminError, errors.Conflict):
    """An account of that name already exists."""


class LoginRefused(AdminError, errors.Forbidden):
    """The login failed. Deliberately one message for a wrong name, a wrong
    password, a disabled account and a locked one: the page must not tell an
    attacker which names exist or which one they locked."""


class SecondFactorRefused(AdminError, errors.Forbidden):
    """The TOTP code was wrong, already used, or missing."""


class NotPermitted(AdminError, errors.Forbidden):
    """The signed-in role may not do this."""


class RevealRefused(AdminError, errors.Forbidden):
    """A step of a dual-control reveal was refused; the message says why."""


class RevealNotFound(RevealRefused, errors.NotFound):
    """No reveal request of that id."""


@dataclass(frozen=True, kw_only=True)
class AdminIdentity:
    """Who is signed in: what every permission check and audit record uses."""

    id: int
    name: str
    role: Role

    @property
    def actor(self) -> str:
        """The audit chain's name for this admin."""
        return f"admin:{self.name}"


@dataclass(frozen=True, kw_only=True)
class RevealView:
    """A reveal request as the console shows it: never the number."""

    id: str
    binding_id: str
    role: str
    requested_by: str
    reason: str
    status: RevealStatus
    requested_at: dt.datetime
    decided_by: str | None
    decided_at: dt.datetime | None
    viewed_at: dt.datetime | None
    expires_at: dt.datetime


# Which role may do what; views and services both check through `may`.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "read": frozenset({"viewer", "operator", "security", "admin"}),
    "bindings.change": frozenset({"operator"}),
    "alerts.acknowledge": frozenset({"operator", "security"}),
    # CSV downloads of the lists (each one on the audit record).
    "export": frozenset({"operator", "security"}),
    "reveal": frozenset({"security"}),
    "manage": frozenset({"admin"}),
}


def may(role: str, permission: str) -> bool:
    """Whether ``role`` holds ``permission`` (unknown permissions: nobody)."""
    return role in PERMISSIONS.get(permission, frozenset())
