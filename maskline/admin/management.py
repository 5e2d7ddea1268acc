"""Account management by the ``admin`` role (issue 20): console users, owners
and API keys, every action audited, dual control kept.

An admin holds no reveal rights (``PERMISSIONS``). A change that would let
one person reach a number alone, or take over another account, waits for a
second admin: creating an account of a role in ``TRUSTED_ROLES`` (security
may request and approve reveals; admin may manage accounts, so a lone admin
could otherwise make a puppet to approve their own changes), giving an
account such a role, and resetting another account's password or second
factor. Nobody approves a change they asked for, or one made to their own
account. Everything else (lesser accounts, disabling, owners, keys) takes
effect at once.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from maskline.admin import passwords, recovery
from maskline.admin.accounts import AdminAccounts, check_name, check_role
from maskline.admin.interfaces import (
    TRUSTED_ROLES,
    AdminError,
    AdminExists,
    AdminIdentity,
    AdminNotFound,
    InvalidAdminInput,
    NotPermitted,
    may,
)
from maskline.admin.models import AccountChange, AdminSession, AdminUser
from maskline.audit.interfaces import AuditEntry
from maskline.audit.services import AuditLog
from maskline.clock import Clock, system_clock
from maskline.db import Database
from maskline.events.services import OwnerInfo, OwnerService

ChangeKind = Literal["create_user", "set_role", "reset_totp", "reset_password"]
MIN_REASON, MAX_REASON = 5, 500


class ChangeRefused(AdminError):
    """An account change was refused: self-approval, not pending, and so on."""


class KeyDescription(Protocol):
    """An API key as listed: never the key nor its hash."""

    @property
    def id(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def scopes(self) -> list[str]: ...
    @property
    def created_at(self) -> dt.datetime: ...
    @property
    def revoked_at(self) -> dt.datetime | None: ...


class KeyStore(Protocol):
    """API keys of owners (maskline.api.keys.ApiKeyService, built in wiring:
    the console does not import the API face)."""

    def create(
        self, *, name: str, owner: str, scopes: list[str], actor: str | None = None, reason: str = ""
    ) -> tuple[str, KeyDescription]: ...

    def list(self, *, owner: str | None = None) -> Sequence[KeyDescription]: ...

    def revoke(self, key_id: str, *, actor: str | None = None, reason: str = "") -> KeyDescription | None: ...


@dataclass(frozen=True, kw_only=True)
class ChangeView:
    """A change waiting for (or decided by) a second admin, as the console lists it."""

    id: str
    kind: str
    target: str
    role: str | None
    reason: str
    status: str
    requested_by: str
    requested_at: dt.datetime
    decided_by: str | None
    decided_at: dt.datetime | None


def new_change_id() -> str:
    return "ac_" + base64.b32encode(secrets.token_bytes(10)).decode().lower()


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not MIN_REASON <= len(reason) <= MAX_REASON:
        raise InvalidAdminInput("reason", f"say why, in {MIN_REASON} to {MAX_REASON} characters")
    return reason


class AccountManagement:
    """What the console's ``admin`` role does, checked against the stored account."""

    def __init__(
        self,
        *,
        db: Database,
        audit: AuditLog,
        accounts: AdminAccounts,
        keys: KeyStore,
        owners: OwnerService,
        clock: Clock = system_clock,
    ) -> None:
        self.db = db
        self._audit = audit
        self._accounts = accounts
        self.keys = keys
        self.owners = owners
        self._clock = clock

    # -- console users ---------------------------------------------------------------

    def create_user(
        self, who: AdminIdentity, *, name: str, role: str, password: str, reason: str
    ) -> ChangeView | None:
        """A new account now (None), or, for a trusted role, a pending change."""
        self._check_admin(who)
        name, checked = check_name(name), check_role(role)
        passwords.check_new_password(password, name=name)
        reason = _reason(reason)
        if checked not in TRUSTED_ROLES:
            self._accounts.create_user(name=name, role=checked, password=password, actor=who.actor)
            return None
        with self.db.session() as session:
            if session.scalar(select(AdminUser.id).where(AdminUser.name == name)) is not None:
                raise AdminExists(f"an admin named {name} exists")
            return self._request(
                session,
                who,
                "create_user",
                name,
                reason,
                role=checked,
                password_hash=passwords.hash_password(password),
            )

    def set_role(self, who: AdminIdentity, name: str, role: str, *, reason: str) -> ChangeView | None:
        """Give an account another role: at once (None), or pending for a trusted role."""
        self._check_admin(who)
        checked, reason = check_role(role), _reason(reason)
        if name == who.name:
            raise ChangeRefused("an admin does not change their own role")
        with self.db.session() as session:
            user = self._user(session, name)
            if checked in TRUSTED_ROLES:
                return self._request(session, who, "set_role", name, reason, role=checked)
            self._apply_role(session, user, checked, actor=who.actor, reason=reason, approved_by=None)
            return None

    def disable_user(self, who: AdminIdentity, name: str, *, reason: str) -> None:
        """Disable an account at once (its sessions end); never one's own."""
        self._check_admin(who)
        reason = _reason(reason)
        if name == who.name:
            raise ChangeRefused("an admin does not disable their own account")
        with self.db.session() as session:
            user = self._user(session, name)
            user.disabled_at = self._clock()
            session.execute(update(AdminSession).where(AdminSession.user_id == user.id).values(active=False))
            self._audit.append(
                session,
                AuditEntry(
                    actor=who.actor, action="admin.user.disable", subject=f"admin:{name}", reason=reason
                ),
            )

    def request_reset(
        self, who: AdminIdentity, name: str, *, what: str, reason: str, password: str = ""
    ) -> ChangeView:
        """Ask to reset another account's second factor (``totp``) or password."""
        self._check_admin(who)
        reason = _reason(reason)
        if name == who.name:
            raise ChangeRefused("reset your own account from the command line, or ask another admin")
        if what not in ("totp", "password"):
            raise InvalidAdminInput("what", "must be totp or password")
        with self.db.session() as session:
            self._user(session, name)
            if what == "totp":
                return self._request(session, who, "reset_totp", name, reason)
            passwords.check_new_password(password, name=name)
            return self._request(
                session, who, "reset_password", name, reason, password_hash=passwords.hash_password(password)
            )

    # -- the second admin ------------------------------------------------------------

    def approve(self, who: AdminIdentity, change_id: str) -> ChangeView:
        """Approve and apply another admin's pending change, in one transaction."""
        self._check_admin(who)
        now = self._clock()
        with self.db.session() as session:
            change = self._change(session, change_id)
            if change.requested_by == who.id:
                raise ChangeRefused("nobody approves their own change: another admin must")
            if change.target == who.name:
                raise ChangeRefused("nobody approves a change to their own account")
            decided = session.execute(
                update(AccountChange)
                .where(AccountChange.id == change.id, AccountChange.status == "pending")
                .values(status="approved", decided_by=who.id, decided_at=now)
                .execution_options(synchronize_session=False)
            )
            if int(getattr(decided, "rowcount", 0) or 0) != 1:
                raise ChangeRefused(f"change {change.id} is no longer pending")
            session.refresh(change)
            self._audit.append(session, self._entry(who.actor, "admin.change.approve", change))
            self._apply(session, change, actor=who.actor)
            return self._view(session, change)

    def decline(self, who: AdminIdentity, change_id: str) -> ChangeView:
        """Deny another admin's pending change, or withdraw one's own."""
        self._check_admin(who)
        with self.db.session() as session:
            change = self._change(session, change_id)
            if change.status != "pending":
                raise ChangeRefused(f"change {change.id} is no longer pending")
            own = change.requested_by == who.id
            change.status = "cancelled" if own else "denied"
            change.decided_by, change.decided_at = who.id, self._clock()
            action = "admin.change.cancel" if own else "admin.change.deny"
            self._audit.append(session, self._entry(who.actor, action, change))
            return self._view(session, change)

    def changes(self, *, limit: int = 100) -> list[ChangeView]:
        """Pending changes first, then the latest decided ones."""
        with self.db.session() as session:
            rows = session.scalars(
                select(AccountChange)
                .order_by((AccountChange.status == "pending").desc(), AccountChange.requested_at.desc())
                .limit(limit)
            ).all()
            return [self._view(session, row) for row in rows]

    # -- owners and API keys ---------------------------------------------------------

    def create_owner(self, who: AdminIdentity, name: str) -> OwnerInfo:
        self._check_admin(who)
        return self.owners.create(name, actor=who.actor)

    def create_key(
        self, who: AdminIdentity, *, owner: str, name: str, scopes: list[str]
    ) -> tuple[str, KeyDescription]:
        """A key for an existing owner: (the key, shown once; its description)."""
        self._check_admin(who)
        if owner not in self.owners.names():
            raise InvalidAdminInput("owner", "create the owner first")
        try:
            return self.keys.create(name=name, owner=owner, scopes=scopes, actor=who.actor)
        except ValueError as exc:  # the key store's "field: why" (KeyRequestInvalid)
            field, _, why = str(exc).partition(": ")
            raise InvalidAdminInput(field if why else "key", why or str(exc)) from None

    def revoke_key(self, who: AdminIdentity, key_id: str, *, reason: str) -> KeyDescription:
        self._check_admin(who)
        info = self.keys.revoke(key_id, actor=who.actor, reason=_reason(reason))
        if info is None:
            raise InvalidAdminInput("key", "no such API key")
        return info

    # -- inside ----------------------------------------------------------------------

    def _check_admin(self, who: AdminIdentity) -> None:
        """The account as stored now must be enabled and an admin (a session
        opened before a demotion or a disable does not carry the right)."""
        with self.db.session() as session:
            user = session.get(AdminUser, who.id)
            if user is None or user.disabled_at is not None or not may(user.role, "manage"):
                raise NotPermitted("only an admin manages accounts, owners and keys")

    @staticmethod
    def _user(session: Session, name: str) -> AdminUser:
        user = session.scalar(select(AdminUser).where(AdminUser.name == name))
        if user is None:
            raise AdminNotFound(f"no admin named {name}")
        return user

    @staticmethod
    def _change(session: Session, change_id: str) -> AccountChange:
        change = session.get(AccountChange, change_id) if isinstance(change_id, str) else None
        if change is None:
            raise ChangeRefused("no such account change")
        return change

    def _request(
        self,
        session: Session,
        who: AdminIdentity,
        kind: ChangeKind,
        target: str,
        reason: str,
        *,
        role: str | None = None,
        password_hash: str | None = None,
    ) -> ChangeView:
        change = AccountChange(
            id=new_change_id(),
            kind=kind,
            target=target,
            role=role,
            password_hash=password_hash,
            reason=reason,
            status="pending",
            requested_by=who.id,
            requested_at=self._clock(),
        )
        session.add(change)
        session.flush()
        self._audit.append(session, self._entry(who.actor, "admin.change.request", change))
        return self._view(session, change)

    def _apply(self, session: Session, change: AccountChange, *, actor: str) -> None:
        approved_by = actor
        if change.kind == "create_user":
            if session.scalar(select(AdminUser.id).where(AdminUser.name == change.target)) is not None:
                raise AdminExists(f"an admin named {change.target} exists")
            assert change.role is not None and change.password_hash is not None
            session.add(
                AdminUser(
                    name=change.target,
                    role=change.role,
                    password_hash=change.password_hash,
                    failed_logins=0,
                    created_at=self._clock(),
                )
            )
            self._audit.append(
                session,
                AuditEntry(
                    actor=approved_by,
                    action="admin.user.create",
                    subject=f"admin:{change.target}",
                    reason=change.reason,
                    data={"role": change.role, "change": change.id},
                ),
            )
            return
        user = self._user(session, change.target)
        if change.kind == "set_role":
            assert change.role is not None
            self._apply_role(
                session, user, change.role, actor=actor, reason=change.reason, approved_by=change.id
            )
            return
        if change.kind == "reset_totp":
            user.totp_wrapped_key = user.totp_ciphertext = None
            user.totp_kek_version = user.totp_enrolled_at = user.totp_last_step = None
            recovery.forget(session, user.id)
            action = "admin.user.totp_reset"
        else:
            assert change.password_hash is not None
            user.password_hash = change.password_hash
            user.failed_logins, user.locked_until = 0, None
            action = "admin.user.password_reset"
        session.execute(update(AdminSession).where(AdminSession.user_id == user.id).values(active=False))
        self._audit.append(
            session,
            AuditEntry(
                actor=actor,
                action=action,
                subject=f"admin:{user.name}",
                reason=change.reason,
                data={"change": change.id},
            ),
        )

    def _apply_role(
        self,
        session: Session,
        user: AdminUser,
        role: str,
        *,
        actor: str,
        reason: str,
        approved_by: str | None,
    ) -> None:
        before = user.role
        user.role = role
        # Rights are read from the account on each step, but the sessions end
        # too: a changed role starts with a fresh login.
        session.execute(update(AdminSession).where(AdminSession.user_id == user.id).values(active=False))
        data: dict[str, object] = {"from": before, "to": role}
        if approved_by is not None:
            data["change"] = approved_by
        self._audit.append(
            session,
            AuditEntry(
                actor=actor, action="admin.user.role", subject=f"admin:{user.name}", reason=reason, data=data
            ),
        )

    @staticmethod
    def _entry(actor: str, action: str, change: AccountChange) -> AuditEntry:
        data: dict[str, object] = {"change": change.id, "kind": change.kind}
        if change.role is not None:
            data["role"] = change.role
        return AuditEntry(
            actor=actor, action=action, subject=f"admin:{change.target}", reason=change.reason, data=data
        )

    @staticmethod
    def _view(session: Session, change: AccountChange) -> ChangeView:
        requester = session.get(AdminUser, change.requested_by)
        decider = session.get(AdminUser, change.decided_by) if change.decided_by is not None else None
        return ChangeView(
            id=change.id,
            kind=change.kind,
            target=change.target,
            role=change.role,
            reason=change.reason,
            status=change.status,
            requested_by=requester.name if requester else "?",
            requested_at=change.requested_at,
            decided_by=decider.name if decider else None,
            decided_at=change.decided_at,
        )
