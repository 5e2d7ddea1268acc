"""The dual-control reveal (break-glass): one party's number, for one admin, once.

1. A security admin requests the number of one party of one binding, with a
   reason (:meth:`RevealService.request`); a pending request lapses after
   ``request_ttl``.
2. A *different* security admin approves it (:meth:`~RevealService.approve`),
   or denies it; the requester may cancel it.
3. The requester may then view the number once, within ``view_window``
   (:meth:`~RevealService.view`). Nobody else, never twice.
4. Requests nobody finished expire (:meth:`~RevealService.expire_due`, run by
   the worker).

Each step is an audit record in the same transaction as its state change
(``reveal.request``, ``reveal.approve``, ``reveal.deny``, ``reveal.cancel``,
``reveal.view`` followed by the vault's own ``vault.reveal``,
``reveal.expire``). A refused step is recorded too (``reveal.refuse``), in a
transaction of its own, since the refused one rolls back: attempts at
self-approval, a second view or going past the daily limit are exactly what
an investigator wants to find.

The number exists only in :meth:`~RevealService.view`'s return value: no row,
audit record, error message or log line here ever holds it. Requests name
the party's vault token.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import datetime as dt
import logging
import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session, aliased

from config import Settings
from maskline.admin.interfaces import (
    ROLES,
    AdminIdentity,
    AdminNotFound,
    InvalidAdminInput,
    NotPermitted,
    RevealNotFound,
    RevealRefused,
    RevealStatus,
    RevealView,
    Role,
    may,
)
from maskline.admin.models import AdminUser, RevealRequest
from maskline.audit.interfaces import AuditEntry
from maskline.audit.services import AuditLog
from maskline.clock import Clock, system_clock
from maskline.db import Database
from maskline.numbers.models import Binding, BindingMember
from maskline.numbers.services import is_binding_id
from maskline.vault.interfaces import VaultError
from maskline.vault.models import VaultEntry
from maskline.vault.services import VaultService

log = logging.getLogger(__name__)

REQUEST_ID_PREFIX = "rv_"
_REQUEST_ID = re.compile(r"^rv_[a-z2-7]{16}\Z")
MIN_REASON = 10
MAX_REASON = 500
# Requests the worker expires per transaction.
EXPIRE_BATCH = 500
WORKER_ACTOR = "worker"
STATUSES: tuple[RevealStatus, ...] = ("pending", "approved", "viewed", "denied", "cancelled", "expired")


def new_request_id() -> str:
    """An unguessable request id (80 random bits), e.g. ``rv_k5q...``."""
    return REQUEST_ID_PREFIX + base64.b32encode(secrets.token_bytes(10)).decode().lower()


class RevealViewedHook(Protocol):
    """Told after a number was shown (the alerts service flags off-hours
    reveals). Called after the view committed; it should never raise, and
    if it does the error is logged and the number is still returned."""

    def __call__(self, *, admin: str, request_id: str, at: dt.datetime) -> None: ...


@dataclass(frozen=True, kw_only=True)
class RevealPolicy:
    """How long requests and approvals live, and how many requests a day."""

    request_ttl: dt.timedelta = dt.timedelta(hours=24)
    view_window: dt.timedelta = dt.timedelta(minutes=15)
    daily_limit: int = 3

    @classmethod
    def from_settings(cls, settings: Settings) -> RevealPolicy:
        return cls(
            request_ttl=settings.reveal_request_ttl,
            view_window=settings.reveal_view_window,
            daily_limit=settings.reveal_daily_limit,
        )


def _role(value: str) -> Role:
    for role in ROLES:
        if value == role:
            return role
    raise NotPermitted("this account has no known role")


def _status(value: str) -> RevealStatus:
    for status in STATUSES:
        if value == status:
            return status
    raise ValueError(f"unknown reveal status {value!r}")


def _utc(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


class RevealService:
    """Dual-control reveals over SQL, the vault and the audit log (no Flask).

    Every step takes the signed-in :class:`AdminIdentity` and checks, against
    the account as stored now, that it is enabled and its role may
    ``reveal``: a session opened before the account was disabled or demoted
    gets :class:`NotPermitted`. Reads (:meth:`list`, :meth:`get`) leave the
    role check to the caller (the console's ``requires("reveal")``).
    """

    def __init__(
        self,
        *,
        db: Database,
        vault: VaultService,
        audit: AuditLog,
        policy: RevealPolicy,
        clock: Clock = system_clock,
        on_view: RevealViewedHook | None = None,
        on_request: RevealViewedHook | None = None,
    ) -> None:
        """``on_request``: told after a request committed (the optional
        notice to approvers through the alerts channel); its errors are logged."""
        self.db = db
        self._vault = vault
        self._audit = audit
        self.policy = policy
        self._clock = clock
        self._on_view = on_view
        self._on_request = on_request

    # -- the steps -------------------------------------------------------------

    def request(self, who: AdminIdentity, *, binding_id: str, role: str, reason: str) -> RevealView:
        """Ask for the number of the party ``role`` of ``binding_id``.

        InvalidAdminInput names ``binding_id``, ``role`` or ``reason``;
        RevealRefused past the daily limit. Returns the pending request.
        """
        reason = self._reason(reason)
        now = self._clock()
        with (
            self._refusals_recorded(who, step="request", subject=str(binding_id)[:40]),
            self.db.session() as session,
        ):
            # The account's row lock makes this admin's requests count
            # one at a time: two at once cannot both slip under the limit.
            self._account(session, who, lock=True)
            token = self._party_token(session, binding_id, role)
            self._check_daily_limit(session, who, now)
            row = RevealRequest(
                id=new_request_id(),
                binding_id=binding_id,
                role=role,
                token=token,
                requested_by=who.id,
                reason=reason,
                status="pending",
                requested_at=now,
                expires_at=now + self.policy.request_ttl,
            )
            session.add(row)
            session.flush()
            self._append(
                session,
                who.actor,
                "reveal.request",
                row.id,
                reason=reason,
                data={"binding_id": binding_id, "role": role, "token": token},
            )
            view = self._view(row, requested_by=who.name, decided_by=None)
        if self._on_request is not None:
            try:
                self._on_request(admin=who.actor, request_id=view.id, at=now)
            except Exception:
                log.exception("the reveal-requested hook failed for reveal request %s", view.id)
        return view

    def approve(self, who: AdminIdentity, request_id: str) -> RevealView:
        """Approve another admin's pending request; its view window opens now."""
        now = self._clock()
        with self._refusals_recorded(who, step="approve", subject=request_id), self.db.session() as session:
            self._account(session, who)
            row = self._row(session, request_id)
            if row.requested_by == who.id:
                raise RevealRefused("you cannot approve your own request: another security admin must")
            changed = self._transition(
                session,
                request_id,
                RevealRequest.status == "pending",
                RevealRequest.expires_at > now,
                RevealRequest.requested_by != who.id,
                status="approved",
                decided_by=who.id,
                decided_at=now,
                expires_at=now + self.policy.view_window,
            )
            session.refresh(row)
            if not changed:
                raise self._why_not(row, now, wanted="pending")
            requester = self._name(session, row.requested_by)
            self._append(
                session,
                who.actor,
                "reveal.approve",
                row.id,
                data={
                    "binding_id": row.binding_id,
                    "role": row.role,
                    "requested_by": f"admin:{requester}",
                    "view_until": row.expires_at.isoformat(),
                },
            )
            return self._view(row, requested_by=requester, decided_by=who.name)

    def deny(self, who: AdminIdentity, request_id: str, *, reason: str) -> RevealView:
        """Refuse another admin's pending request, saying why."""
        reason = self._reason(reason)
        now = self._clock()
        with self._refusals_recorded(who, step="deny", subject=request_id), self.db.session() as session:
            self._account(session, who)
            row = self._row(session, request_id)
            if row.requested_by == who.id:
                raise RevealRefused("you cannot deny your own request: cancel it instead")
            changed = self._transition(
                session,
                request_id,
                RevealRequest.status == "pending",
                RevealRequest.expires_at > now,
                status="denied",
                decided_by=who.id,
                decided_at=now,
            )
            session.refresh(row)
            if not changed:
                raise self._why_not(row, now, wanted="pending")
            requester = self._name(session, row.requested_by)
            self._append(
                session,
                who.actor,
                "reveal.deny",
                row.id,
                reason=reason,
                data={"binding_id": row.binding_id, "role": row.role, "requested_by": f"admin:{requester}"},
            )
            return self._view(row, requested_by=requester, decided_by=who.name)

    def cancel(self, who: AdminIdentity, request_id: str) -> RevealView:
        """Withdraw one's own request, pending or approved and not yet viewed."""
        now = self._clock()
        with self._refusals_recorded(who, step="cancel", subject=request_id), self.db.session() as session:
            self._account(session, who)
            row = self._row(session, request_id)
            if row.requested_by != who.id:
                raise RevealRefused("only the admin who made a request may cancel it")
            changed = self._transition(
                session,
                request_id,
                RevealRequest.status.in_(("pending", "approved")),
                RevealRequest.expires_at > now,
                status="cancelled",
            )
            session.refresh(row)
            if not changed:
                raise self._why_not(row, now, wanted="pending or approved")
            self._append(
                session,
                who.actor,
                "reveal.cancel",
                row.id,
                data={"binding_id": row.binding_id, "role": row.role},
            )
            decided_by = self._name(session, row.decided_by) if row.decided_by is not None else None
            return self._view(row, requested_by=who.name, decided_by=decided_by)

    def view(
        self, who: AdminIdentity, request_id: str, *, token: str | None = None, via: str = "console"
    ) -> str:
        """The number, once: only to the requester, only approved, only within
        the view window. ``token`` (the CLI's) must be the request's party.

        The request becomes ``viewed`` by a conditional UPDATE: of two views
        at once, the second finds no approved row and is refused.
        """
        now = self._clock()
        with self._refusals_recorded(who, step="view", subject=request_id), self.db.session() as session:
            self._account(session, who)
            row = self._row(session, request_id)
            conditions = [
                RevealRequest.status == "approved",
                RevealRequest.requested_by == who.id,
                RevealRequest.expires_at > now,
            ]
            if token is not None:
                conditions.append(RevealRequest.token == token)
            if not self._transition(session, request_id, *conditions, status="viewed", viewed_at=now):
                session.refresh(row)  # as the transaction that got there first left it
                if row.requested_by != who.id:
                    raise RevealRefused("only the admin who made a request may view its number")
                if token is not None and row.token != token:
                    raise RevealRefused(f"request {row.id} is for another party's token")
                raise self._why_not(row, now, wanted="approved")
            self._append(
                session,
                who.actor,
                "reveal.view",
                row.id,
                data={"binding_id": row.binding_id, "role": row.role, "token": row.token, "via": via},
            )
            try:
                number = self._vault.reveal(
                    session, row.token, actor=who.actor, reason=f"reveal request {row.id}: {row.reason}"
                )
            except VaultError as exc:
                # Rolls back: the request stays approved. Vault messages never hold a number.
                raise RevealRefused(f"the number cannot be opened: {exc}") from None
        if self._on_view is not None:
            # After the commit, and never allowed to lose the number: the
            # request is spent, so an error here must not swallow the view.
            try:
                self._on_view(admin=who.actor, request_id=request_id, at=now)
            except Exception:
                log.exception("the reveal-viewed hook failed for reveal request %s", request_id)
        return number

    def expire_due(self, now: dt.datetime | None = None) -> int:
        """Lapsed pending requests and unviewed approvals become ``expired``,
        each with a ``reveal.expire`` record; returns how many."""
        now = now or self._clock()
        total = 0
        while True:
            with self.db.session() as session:
                rows = session.execute(
                    select(RevealRequest.id, RevealRequest.status)
                    .where(RevealRequest.status.in_(("pending", "approved")), RevealRequest.expires_at <= now)
                    .order_by(RevealRequest.expires_at)
                    .limit(EXPIRE_BATCH)
                ).all()
                expired = 0
                for request_id, was in rows:
                    # Conditional, like every transition: a view or a decision
                    # that got there first wins, and this row is skipped.
                    if not self._transition(
                        session,
                        request_id,
                        RevealRequest.status == was,
                        RevealRequest.expires_at <= now,
                        status="expired",
                    ):
                        continue
                    row = self._row(session, request_id)
                    self._append(
                        session,
                        WORKER_ACTOR,
                        "reveal.expire",
                        request_id,
                        data={
                            "was": was,
                            "binding_id": row.binding_id,
                            "role": row.role,
                            "requested_by": f"admin:{self._name(session, row.requested_by)}",
                        },
                    )
                    expired += 1
            total += expired
            if len(rows) < EXPIRE_BATCH:
                return total

    # -- reading ---------------------------------------------------------------

    def get(self, request_id: str) -> RevealView:
        """One request, as the console shows it; RevealNotFound if none."""
        views = self._views(RevealRequest.id == request_id) if _REQUEST_ID.match(str(request_id)) else []
        if not views:
            raise RevealNotFound(f"no reveal request {_shown_id(request_id)}")
        return views[0]

    def list(
        self, *, binding_id: str | None = None, status: RevealStatus | None = None, limit: int = 200
    ) -> list[RevealView]:
        """Requests, newest first; of one binding and/or in one status."""
        conditions: list[ColumnElement[bool]] = []
        if binding_id is not None:
            conditions.append(RevealRequest.binding_id == binding_id)
        if status is not None:
            conditions.append(RevealRequest.status == status)
        return self._views(*conditions, limit=limit)

    def waiting_for(self, who: AdminIdentity) -> int:
        """Pending, unlapsed requests that ``who`` could approve: anyone's but their own."""
        now = self._clock()
        with self.db.session() as session:
            count = session.scalar(
                select(func.count())
                .select_from(RevealRequest)
                .where(
                    RevealRequest.status == "pending",
                    RevealRequest.requested_by != who.id,
                    RevealRequest.expires_at > now,
                )
            )
        return int(count or 0)

    def requests_left_today(self, who: AdminIdentity) -> int:
        """How many more requests ``who`` may make this UTC day."""
        with self.db.session() as session:
            used = self._requests_today(session, who, self._clock())
        return max(0, self.policy.daily_limit - used)

    def identity(self, name: str) -> AdminIdentity:
        """The identity of the enabled account ``name`` (for the CLI, which has no login)."""
        name = name.removeprefix("admin:")
        with self.db.session() as session:
            user = session.scalar(select(AdminUser).where(AdminUser.name == name))
            if user is None:
                raise AdminNotFound(f"no admin named {name}")
            return AdminIdentity(id=user.id, name=user.name, role=_role(user.role))

    # -- helpers ---------------------------------------------------------------

    def _reason(self, reason: object) -> str:
        text = reason.strip() if isinstance(reason, str) else ""
        if len(text) < MIN_REASON:
            raise InvalidAdminInput("reason", f"say why, in at least {MIN_REASON} characters")
        if len(text) > MAX_REASON:
            raise InvalidAdminInput("reason", f"must be at most {MAX_REASON} characters")
        if any(ch < " " and ch not in "\t\n\r" for ch in text):
            raise InvalidAdminInput("reason", "must not contain control characters")
        # Stored and shown to other admins: a number pasted into a reason
        # would otherwise be a reveal without the reveal.
        return self._vault.audit_reason(text)

    def _account(self, session: Session, who: AdminIdentity, *, lock: bool = False) -> AdminUser:
        """The stored account behind ``who``, enabled and allowed to reveal."""
        if not may(who.role, "reveal"):
            raise NotPermitted("only security admins take part in a reveal")
        user = session.get(AdminUser, who.id, with_for_update=lock)
        if user is None or user.name != who.name:
            raise NotPermitted("this account no longer exists")
        if user.disabled_at is not None:
            raise NotPermitted("this account is disabled")
        if not may(user.role, "reveal"):
            raise NotPermitted("only security admins take part in a reveal")
        return user

    @staticmethod
    def _party_token(session: Session, binding_id: str, role: str) -> str:
        if not is_binding_id(binding_id) or session.get(Binding, binding_id) is None:
            raise InvalidAdminInput("binding_id", "no binding has this id")
        parties = session.execute(
            select(BindingMember.role, BindingMember.token)
            .where(BindingMember.binding_id == binding_id, BindingMember.kind == "party")
            .order_by(BindingMember.position)
        ).all()
        token = next((t for r, t in parties if r == role), None)
        if token is None:
            roles = ", ".join(r for r, _ in parties) or "none"
            raise InvalidAdminInput("role", f"this binding has no such party (its parties: {roles})")
        erased_at = session.scalar(select(VaultEntry.erased_at).where(VaultEntry.token == token))
        if erased_at is not None:
            raise InvalidAdminInput("role", "this party's number was erased: there is nothing to reveal")
        return token

    def _requests_today(self, session: Session, who: AdminIdentity, now: dt.datetime) -> int:
        start = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        count = session.scalar(
            select(func.count())
            .select_from(RevealRequest)
            .where(
                RevealRequest.requested_by == who.id,
                RevealRequest.requested_at >= start,
                RevealRequest.requested_at < start + dt.timedelta(days=1),
            )
        )
        return int(count or 0)

    def _check_daily_limit(self, session: Session, who: AdminIdentity, now: dt.datetime) -> None:
        # Every request counts, whatever became of it: cancelling and asking
        # again must not reset the limit.
        limit = self.policy.daily_limit
        if self._requests_today(session, who, now) >= limit:
            raise RevealRefused(
                f"daily reveal limit reached: {limit} requests per admin per UTC day; "
                "the count starts again at 00:00 UTC"
            )

    @staticmethod
    def _row(session: Session, request_id: str) -> RevealRequest:
        row = session.get(RevealRequest, request_id) if _REQUEST_ID.match(str(request_id)) else None
        if row is None:
            raise RevealNotFound(f"no reveal request {_shown_id(request_id)}")
        return row

    @staticmethod
    def _transition(
        session: Session, request_id: str, *conditions: ColumnElement[bool], **values: Any
    ) -> bool:
        """UPDATE the request if ``conditions`` still hold; whether it did.

        The conditions are re-checked by the database under the row's lock
        (PostgreSQL re-evaluates them after a concurrent writer commits), so
        a check and its change can never be split by another transaction.
        """
        result = session.execute(
            update(RevealRequest)
            .where(RevealRequest.id == request_id, *conditions)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    @staticmethod
    def _why_not(row: RevealRequest, now: dt.datetime, *, wanted: str) -> RevealRefused:
        status = row.status
        if status == "viewed":
            return RevealRefused(f"request {row.id} was already viewed: a number is shown once")
        if status in ("pending", "approved") and row.expires_at <= now:
            if status == "pending":
                return RevealRefused(f"request {row.id} lapsed at {_utc(row.expires_at)} without approval")
            return RevealRefused(f"the view window of request {row.id} closed at {_utc(row.expires_at)}")
        if status == "pending":
            return RevealRefused(f"request {row.id} is not approved yet")
        return RevealRefused(f"request {row.id} is {status}, not {wanted}")

    @staticmethod
    def _name(session: Session, user_id: int) -> str:
        return session.scalar(select(AdminUser.name).where(AdminUser.id == user_id)) or f"#{user_id}"

    def _append(
        self,
        session: Session,
        actor: str,
        action: str,
        subject: str,
        *,
        reason: str = "",
        data: dict[str, object] | None = None,
    ) -> None:
        entry = AuditEntry(actor=actor, action=action, subject=subject, reason=reason, data=data or {})
        self._audit.append(session, entry)

    @contextlib.contextmanager
    def _refusals_recorded(self, who: AdminIdentity, *, step: str, subject: str) -> Iterator[None]:
        """Record a refused step (``reveal.refuse``) after its transaction rolled back."""
        try:
            yield
        except (RevealRefused, NotPermitted) as refusal:
            try:
                with self.db.session() as session:
                    self._append(
                        session,
                        who.actor,
                        "reveal.refuse",
                        _shown_id(subject),
                        reason=str(refusal),
                        data={"step": step, "refusal": type(refusal).__name__},
                    )
            except Exception:
                # The refusal stands whether or not it could be recorded.
                log.exception("could not record a refused reveal step (%s)", step)
            raise

    def _views(self, *conditions: ColumnElement[bool], limit: int = 200) -> builtins.list[RevealView]:
        requester, decider = aliased(AdminUser), aliased(AdminUser)
        with self.db.session() as session:
            rows: Sequence[Any] = session.execute(
                select(RevealRequest, requester.name, decider.name)
                .join(requester, requester.id == RevealRequest.requested_by)
                .outerjoin(decider, decider.id == RevealRequest.decided_by)
                .where(*conditions)
                .order_by(RevealRequest.requested_at.desc(), RevealRequest.id)
                .limit(limit)
            ).all()
            return [self._view(row, requested_by=by, decided_by=dec) for row, by, dec in rows]

    @staticmethod
    def _view(row: RevealRequest, *, requested_by: str, decided_by: str | None) -> RevealView:
        return RevealView(
            id=row.id,
            binding_id=row.binding_id,
            role=row.role,
            requested_by=requested_by,
            reason=row.reason,
            status=_status(row.status),
            requested_at=row.requested_at,
            decided_by=decided_by,
            decided_at=row.decided_at,
            viewed_at=row.viewed_at,
            expires_at=row.expires_at,
        )


def _shown_id(value: object) -> str:
    """An id safe to echo: ours, or a short printable stand-in for anything else."""
    text = str(value)
    if _REQUEST_ID.match(text) or is_binding_id(text):
        return text
    return "(invalid id)"


__all__ = [
    "MAX_REASON",
    "MIN_REASON",
    "RevealPolicy",
    "RevealService",
    "RevealViewedHook",
    "new_request_id",
]
