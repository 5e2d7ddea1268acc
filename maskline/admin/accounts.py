"""Console accounts: creation, login with lockout, TOTP, and server-side sessions.

Every change and every login outcome is an audit record, in the same
transaction as the change it describes. Failed logins are also told to the
alerts hook, which never raises and never blocks.

Sessions: the browser holds a random 256-bit id; the database holds its
SHA-256. A session ends at ``admin_session_ttl`` after login, after
``admin_idle_timeout`` without a request, at logout, or when its account is
disabled: each is checked on every request, so ending one takes effect at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import pyotp
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from config import CONSOLE_LANGUAGES, Settings, SettingsError, parse_timezone
from maskline.admin import passwords, recovery
from maskline.admin.interfaces import (
    ROLES,
    TRUSTED_ROLES,
    AdminError,
    AdminExists,
    AdminIdentity,
    AdminNotFound,
    InvalidAdminInput,
    LoginRefused,
    Role,
    SecondFactorRefused,
)
from maskline.admin.lockout import LoginLockouts
from maskline.admin.models import AdminSession, AdminUser
from maskline.audit.interfaces import AuditEntry
from maskline.audit.services import AuditLog
from maskline.clock import Clock, system_clock
from maskline.db import Database
from maskline.vault.keyring import KeyRingSource
from maskline.vault.sealing import open_sealed, rewrap, seal

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z][a-z0-9._-]{1,63}\Z")
TOTP_ISSUER = "maskline"
_TOTP_PURPOSE = "admin-totp"

FailedLoginHook = Callable[..., None]


@dataclass(frozen=True, kw_only=True)
class AdminUserView:
    """An account as the CLI lists it."""

    name: str
    role: Role
    disabled: bool
    totp_enrolled: bool
    locked_until: dt.datetime | None
    created_at: dt.datetime
    last_login_at: dt.datetime | None


@dataclass(frozen=True, kw_only=True)
class SessionState:
    """A live session: who, and whether the second factor (if needed) was given."""

    identity: AdminIdentity
    second_factor_done: bool
    needs_second_factor: bool
    totp_enrolled: bool
    # The admin's own console preferences (None: follow browser / deployment).
    language: str | None = None
    timezone: str | None = None

    @property
    def complete(self) -> bool:
        """Signed in all the way: the console's pages are open to it."""
        return self.second_factor_done or not self.needs_second_factor


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidAdminInput(
            "name", "must be 2-64 characters: lowercase letters, digits, . _ -, starting with a letter"
        )
    return name


def check_role(role: str) -> Role:
    for known in ROLES:
        if role == known:
            return known
    raise InvalidAdminInput("role", f"must be one of {', '.join(ROLES)}")


def _session_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _identity(user: AdminUser) -> AdminIdentity:
    return AdminIdentity(id=user.id, name=user.name, role=check_role(user.role))


class AdminAccounts:
    """Accounts, logins and sessions of the admin console."""

    def __init__(
        self,
        *,
        db: Database,
        keys: KeyRingSource,
        audit: AuditLog,
        settings: Settings,
        clock: Clock = system_clock,
        on_failed_login: FailedLoginHook | None = None,
        lockouts: LoginLockouts | None = None,
    ) -> None:
        """``lockouts``: wrong passwords counted per (account, client address) in
        Redis; without it (or without a client address) per account in SQL."""
        self.db = db
        self._keys = keys
        self._audit = audit
        self._settings = settings
        self._clock = clock
        self._on_failed_login = on_failed_login
        self.lockouts = lockouts

    # -- accounts --------------------------------------------------------------

    def create_user(self, *, name: str, role: str, password: str, actor: str) -> AdminIdentity:
        """A new enabled account; AdminExists, or InvalidAdminInput naming the field."""
        name = check_name(name)
        checked_role = check_role(role)
        passwords.check_new_password(password, name=name)
        now = self._clock()
        with self.db.session() as session:
            if session.scalar(select(AdminUser.id).where(AdminUser.name == name)) is not None:
                raise AdminExists(f"an admin named {name} exists")
            user = AdminUser(
                name=name,
                role=checked_role,
                password_hash=passwords.hash_password(password),
                failed_logins=0,
                created_at=now,
            )
            session.add(user)
            session.flush()
            self._audit.append(
                session,
                AuditEntry(
                    actor=actor, action="admin.user.create", subject=f"admin:{name}", data={"role": role}
                ),
            )
            return _identity(user)

    def set_disabled(self, name: str, disabled: bool, *, actor: str) -> None:
        """Disable (ending its sessions at once) or enable an account."""
        now = self._clock()
        with self.db.session() as session:
            user = self._user(session, name)
            user.disabled_at = now if disabled else None
            if not disabled:
                user.failed_logins = 0
                user.locked_until = None
                self._unlock_everywhere(name)
            session.execute(update(AdminSession).where(AdminSession.user_id == user.id).values(active=False))
            action = "admin.user.disable" if disabled else "admin.user.enable"
            self._audit.append(session, AuditEntry(actor=actor, action=action, subject=f"admin:{name}"))

    def unlock(self, name: str, *, actor: str) -> None:
        """Lift the account's lockouts (SQL and every client address's), audited."""
        with self.db.session() as session:
            user = self._user(session, name)
            user.failed_logins = 0
            user.locked_until = None
            self._unlock_everywhere(name)
            self._audit.append(
                session, AuditEntry(actor=actor, action="admin.user.unlock", subject=f"admin:{name}")
            )

    def _unlock_everywhere(self, name: str) -> None:
        if self.lockouts is not None:
            try:
                self.lockouts.unlock(name)
            except Exception as exc:
                raise AdminError(
                    f"the per-address lockouts cannot be cleared: {type(exc).__name__}"
                ) from None

    def reset_second_factor(self, name: str, *, actor: str, reason: str) -> None:
        """Forget an account's TOTP secret (a lost phone): it enrolls again at next login."""
        with self.db.session() as session:
            user = self._user(session, name)
            user.totp_wrapped_key = user.totp_ciphertext = None
            user.totp_kek_version = user.totp_enrolled_at = user.totp_last_step = None
            recovery.forget(session, user.id)
            session.execute(update(AdminSession).where(AdminSession.user_id == user.id).values(active=False))
            self._audit.append(
                session,
                AuditEntry(
                    actor=actor, action="admin.user.totp_reset", subject=f"admin:{name}", reason=reason
                ),
            )

    def users(self) -> list[AdminUserView]:
        with self.db.session() as session:
            return [
                AdminUserView(
                    name=u.name,
                    role=check_role(u.role),
                    disabled=u.disabled_at is not None,
                    totp_enrolled=u.totp_enrolled_at is not None,
                    locked_until=u.locked_until,
                    created_at=u.created_at,
                    last_login_at=u.last_login_at,
                )
                for u in session.scalars(select(AdminUser).order_by(AdminUser.name))
            ]

    @staticmethod
    def _user(session: Session, name: str) -> AdminUser:
        user = session.scalar(select(AdminUser).where(AdminUser.name == name))
        if user is None:
            raise AdminNotFound(f"no admin named {name}")
        return user

    # -- login -----------------------------------------------------------------

    def login(self, name: str, password: str, *, client: str | None = None) -> tuple[str, SessionState]:
        """Check the password and open a session: (raw session id, its state).

        LoginRefused for every failure alike. ``admin_max_failed_logins``
        failures in a row lock the account for ``admin_lockout``; while it is
        locked even the right password is refused. With a ``client`` address
        and :class:`LoginLockouts`, the lock is of that address only (see
        maskline.admin.lockout: nobody can keep an admin out by name); when
        Redis cannot say, the account-wide lock in SQL applies.
        """
        now = self._clock()
        by_address = self.lockouts is not None and client is not None
        failure: str | None = None
        known_name: str | None = None
        with self.db.session() as session:
            user = (
                session.scalar(select(AdminUser).where(AdminUser.name == name)) if _NAME.match(name) else None
            )
            # Verified even for an unknown name or a locked account: the same
            # cost whatever the reason, so timing tells an attacker nothing.
            password_ok = passwords.verify_password(user.password_hash if user else None, password)
            if user is None:
                failure = "unknown account"
            else:
                known_name = user.name
                address_locked = False
                if by_address:
                    try:
                        address_locked = self._address_locked(user.name, client, now)
                    except Exception as exc:
                        # Redis cannot say: the account-wide lock in SQL applies.
                        log.warning("login lockout: cannot be read (%s)", type(exc).__name__)
                        by_address = False
                if user.disabled_at is not None:
                    failure = "account disabled"
                elif user.locked_until is not None and user.locked_until > now:
                    failure = "account locked"
                elif address_locked:
                    failure = "locked for this client address"
                elif not password_ok:
                    failure = "wrong password"
                    if by_address and self._address_failed(user.name, client, now):
                        failure = "wrong password; locked for this client address"
                    elif not by_address:
                        user.failed_logins += 1
                        if user.failed_logins >= self._settings.admin_max_failed_logins:
                            user.locked_until = now + self._settings.admin_lockout
                            user.failed_logins = 0
                            failure = "wrong password; account locked"
            if failure is not None:
                # An unknown name is not written down as typed: it is user
                # input, and someone may have typed a phone number into it.
                subject = f"admin:{known_name}" if known_name else "admin:unknown"
                self._audit.append(
                    session,
                    AuditEntry(actor="anonymous", action="admin.login.fail", subject=subject, reason=failure),
                )
            else:
                assert user is not None
                user.failed_logins = 0
                user.locked_until = None
                user.last_login_at = now
                if by_address and client is not None and self.lockouts is not None:
                    try:
                        self.lockouts.succeeded(user.name, client)
                    except Exception as exc:  # the count lapses with its key anyway
                        log.warning("login lockout: cannot reset the count (%s)", type(exc).__name__)
                if passwords.needs_rehash(user.password_hash):
                    user.password_hash = passwords.hash_password(password)
                raw = secrets.token_urlsafe(32)
                session.add(
                    AdminSession(
                        id_hash=_session_hash(raw),
                        user_id=user.id,
                        created_at=now,
                        last_seen_at=now,
                        expires_at=now + self._settings.admin_session_ttl,
                        second_factor_at=None,
                        active=True,
                    )
                )
                identity = _identity(user)
                self._audit.append(
                    session, AuditEntry(actor=identity.actor, action="admin.login", subject=identity.actor)
                )
                state = self._state(user, second_factor_done=False)
        if failure is not None:
            if known_name is not None and self._on_failed_login is not None:
                self._on_failed_login(account=f"admin:{known_name}", at=now)
            raise LoginRefused("wrong name or password, or the account is locked or disabled")
        return raw, state

    def _address_locked(self, name: str, client: str | None, now: dt.datetime) -> bool:
        assert self.lockouts is not None and client is not None
        return self.lockouts.locked(name, client, now)

    def _address_failed(self, name: str, client: str | None, now: dt.datetime) -> bool:
        assert self.lockouts is not None and client is not None
        try:
            return self.lockouts.failed(name, client, now)
        except Exception as exc:
            log.warning("login lockout: cannot count a failure (%s)", type(exc).__name__)
            return False

    def _state(self, user: AdminUser, *, second_factor_done: bool) -> SessionState:
        identity = _identity(user)
        return SessionState(
            identity=identity,
            second_factor_done=second_factor_done,
            needs_second_factor=identity.role in TRUSTED_ROLES,
            totp_enrolled=user.totp_enrolled_at is not None,
            language=user.language,
            timezone=user.timezone,
        )

    def set_preferences(self, raw: str, *, language: str | None, timezone: str | None) -> None:
        """Store the signed-in admin's console language and time zone (None: the default).

        InvalidAdminInput names the field for a language the console lacks or
        a zone that is not an IANA name.
        """
        if language is not None and language not in CONSOLE_LANGUAGES:
            raise InvalidAdminInput("language", f"must be one of {', '.join(CONSOLE_LANGUAGES)}")
        if timezone is not None:
            try:
                timezone = parse_timezone("timezone", timezone)
            except SettingsError:
                raise InvalidAdminInput(
                    "timezone", "must be an IANA time zone such as Asia/Shanghai or Europe/London"
                ) from None
        with self.db.session() as session:
            row = session.get(AdminSession, _session_hash(raw))
            user = session.get(AdminUser, row.user_id) if row is not None and row.active else None
            if user is None:
                raise SecondFactorRefused("the session has ended; log in again")
            user.language = language
            user.timezone = timezone
            self._audit.append(
                session,
                AuditEntry(
                    actor=f"admin:{user.name}",
                    action="admin.preferences",
                    subject=f"admin:{user.name}",
                    reason=f"language={language or 'auto'} timezone={timezone or 'default'}",
                ),
            )

    def session_state(self, raw: str | None) -> SessionState | None:
        """The live session ``raw`` names, touched; None if it has ended for any reason."""
        if not raw:
            return None
        now = self._clock()
        with self.db.session() as session:
            row = session.get(AdminSession, _session_hash(raw))
            if row is None or not row.active:
                return None
            user = session.get(AdminUser, row.user_id)
            idle_ended = row.last_seen_at + self._settings.admin_idle_timeout <= now
            if user is None or user.disabled_at is not None or row.expires_at <= now or idle_ended:
                row.active = False
                return None
            row.last_seen_at = now
            return self._state(user, second_factor_done=row.second_factor_at is not None)

    def logout(self, raw: str | None) -> None:
        """End the session everywhere (its cookie is worthless from now on)."""
        if not raw:
            return
        with self.db.session() as session:
            row = session.get(AdminSession, _session_hash(raw))
            if row is None or not row.active:
                return
            row.active = False
            user = session.get(AdminUser, row.user_id)
            actor = f"admin:{user.name}" if user else "admin:unknown"
            self._audit.append(session, AuditEntry(actor=actor, action="admin.logout", subject=actor))

    # -- second factor -----------------------------------------------------------

    def totp_setup(self, raw: str) -> tuple[str, str]:
        """(secret, otpauth URI) for a signed-in account that has not enrolled.

        The pending secret is sealed into the account at once, so reloading
        the page shows the same one; it counts only once confirmed.
        """
        with self.db.session() as session:
            _row, user = self._session_user(session, raw)
            if user.totp_enrolled_at is not None:
                raise SecondFactorRefused("a second factor is already enrolled")
            if user.totp_ciphertext is None:
                self._store_secret(user, pyotp.random_base32())
            secret = self._secret(user)
            uri = pyotp.TOTP(secret).provisioning_uri(name=user.name, issuer_name=TOTP_ISSUER)
            return secret, uri

    def totp_confirm(self, raw: str, code: str) -> SessionState:
        """Enroll with the first good code, and count it as this session's second factor."""
        return self._second_factor(raw, code, enrolling=True)

    def totp_verify(self, raw: str, code: str) -> SessionState:
        """The second factor of a session whose account has enrolled."""
        return self._second_factor(raw, code, enrolling=False)

    def _second_factor(self, raw: str, code: str, *, enrolling: bool) -> SessionState:
        now = self._clock()
        failed_account: str | None = None
        reused_refusal = False
        with self.db.session() as session:
            row, user = self._session_user(session, raw)
            if enrolling != (user.totp_enrolled_at is None) or user.totp_ciphertext is None:
                raise SecondFactorRefused(
                    "enroll a second factor first" if not enrolling else "already enrolled"
                )
            recovered: SessionState | None = None
            step = None
            if not enrolling and recovery.looks_like_recovery_code(code):
                recovered = self._recovery_login(session, row, user, code, now)
                if recovered is None:
                    failed_account = f"admin:{user.name}"
            else:
                step = self._matching_step(self._secret(user), code, now)
            reused = step is not None and user.totp_last_step is not None and step <= user.totp_last_step
            if recovered is not None:
                state = recovered
            elif failed_account is not None:
                pass  # a wrong recovery code, counted by _recovery_login
            elif step is None:
                # A wrong code counts as a failed login: a stolen password
                # must not be a free TOTP oracle.
                failed_account = self._second_factor_failed(session, row, user, now, reason="wrong code")
            elif reused:
                # The replay rule, and only it: a code is good once. Whoever
                # sends a spent code knew it, so it is no guess to count
                # towards a lockout (it used to lock out an admin who logged
                # in again within the enrollment code's 30 s).
                self._audit.append(
                    session,
                    AuditEntry(
                        actor=f"admin:{user.name}",
                        action="admin.totp.fail",
                        subject=f"admin:{user.name}",
                        reason="reused code",
                    ),
                )
                reused_refusal = True
            else:
                user.totp_last_step = step
                user.failed_logins = 0
                row.second_factor_at = now
                action = "admin.totp.enroll" if enrolling else "admin.totp.ok"
                if enrolling:
                    user.totp_enrolled_at = now
                self._audit.append(
                    session,
                    AuditEntry(actor=f"admin:{user.name}", action=action, subject=f"admin:{user.name}"),
                )
                state = self._state(user, second_factor_done=True)
        if reused_refusal:
            wait = 30 - int(now.timestamp()) % 30
            raise SecondFactorRefused(
                f"that code was already used: wait for the next one (about {wait} s) and enter it"
            )
        if failed_account is not None:
            if self._on_failed_login is not None:
                self._on_failed_login(account=failed_account, at=now)
            raise SecondFactorRefused("that code is not right (or was already used); try the next one")
        return state

    def _second_factor_failed(
        self, session: Session, row: AdminSession, user: AdminUser, now: dt.datetime, *, reason: str
    ) -> str:
        """Count a wrong code (or recovery code) as a failed login; the account's actor."""
        user.failed_logins += 1
        if user.failed_logins >= self._settings.admin_max_failed_logins:
            user.locked_until = now + self._settings.admin_lockout
            user.failed_logins = 0
            row.active = False
        self._audit.append(
            session,
            AuditEntry(
                actor=f"admin:{user.name}",
                action="admin.totp.fail",
                subject=f"admin:{user.name}",
                reason=reason,
            ),
        )
        return f"admin:{user.name}"

    def _recovery_login(
        self, session: Session, row: AdminSession, user: AdminUser, code: str, now: dt.datetime
    ) -> SessionState | None:
        """A recovery code as the second factor: good once, audited with how
        many are left. None (counted as a failed login) if it is not an
        unspent code of the account."""
        if not recovery.spend(session, user.id, code, now):
            self._second_factor_failed(session, row, user, now, reason="wrong recovery code")
            return None
        user.failed_logins = 0
        row.second_factor_at = now
        left = recovery.remaining(session, user.id)
        self._audit.append(
            session,
            AuditEntry(
                actor=f"admin:{user.name}",
                action="admin.totp.recovery_code",
                subject=f"admin:{user.name}",
                data={"codes_left": left},
            ),
        )
        return self._state(user, second_factor_done=True)

    def issue_recovery_codes(self, raw: str) -> list[str]:
        """A new set of recovery codes for the signed-in, enrolled account,
        to be shown once; the old set is spent. Audited (never the codes)."""
        now = self._clock()
        with self.db.session() as session:
            row, user = self._session_user(session, raw)
            if user.totp_enrolled_at is None or row.second_factor_at is None:
                raise SecondFactorRefused("enroll and give the second factor first")
            codes = recovery.issue(session, user.id, now)
            self._audit.append(
                session,
                AuditEntry(
                    actor=f"admin:{user.name}",
                    action="admin.totp.recovery_issue",
                    subject=f"admin:{user.name}",
                    data={"codes": len(codes)},
                ),
            )
            return codes

    def recovery_codes_left(self, raw: str) -> int:
        with self.db.session() as session:
            _row, user = self._session_user(session, raw)
            return recovery.remaining(session, user.id)

    @staticmethod
    def _matching_step(secret: str, code: str, now: dt.datetime) -> int | None:
        """The 30-second step ``code`` belongs to, allowing one step of clock drift."""
        code = (code or "").strip().replace(" ", "")
        if not re.fullmatch(r"\d{6}", code):
            return None
        totp = pyotp.TOTP(secret)
        for drift in (0, -1, 1):
            moment = now + dt.timedelta(seconds=drift * totp.interval)
            if hmac.compare_digest(totp.at(moment), code):
                return int(totp.timecode(moment))
        return None

    @staticmethod
    def _session_user(session: Session, raw: str) -> tuple[AdminSession, AdminUser]:
        row = session.get(AdminSession, _session_hash(raw)) if raw else None
        user = session.get(AdminUser, row.user_id) if row is not None else None
        if row is None or user is None or not row.active or user.disabled_at is not None:
            raise SecondFactorRefused("the session has ended; log in again")
        return row, user

    # -- key rotation ---------------------------------------------------------------

    def rewrap_second_factors(self) -> int:
        """Re-wrap every TOTP secret's data key under the primary KEK (``vault rewrap``).

        Without this, retiring an old KEK would lock every security admin out.
        """
        ring = self._keys.current()
        primary = ring.kek.primary
        done = 0
        with self.db.session() as session:
            users = session.scalars(
                select(AdminUser).where(
                    AdminUser.totp_kek_version.is_not(None), AdminUser.totp_kek_version != primary
                )
            )
            for user in users:
                assert user.totp_wrapped_key is not None
                user.totp_wrapped_key = rewrap(
                    ring, user.totp_wrapped_key, entry_id=f"admin:{user.id}", purpose=_TOTP_PURPOSE
                )
                user.totp_kek_version = primary
                done += 1
        return done

    def second_factors_using(self, kek_version: int) -> int:
        """How many TOTP secrets a KEK version still protects (``keys retire`` refuses if any)."""
        with self.db.session() as session:
            count = session.scalar(
                select(func.count()).select_from(AdminUser).where(AdminUser.totp_kek_version == kek_version)
            )
        return int(count or 0)

    def _store_secret(self, user: AdminUser, secret: str) -> None:
        sealed = seal(self._keys.current(), secret, entry_id=f"admin:{user.id}", purpose=_TOTP_PURPOSE)
        user.totp_wrapped_key = sealed.wrapped_key
        user.totp_ciphertext = sealed.ciphertext
        user.totp_kek_version = sealed.kek_version

    def _secret(self, user: AdminUser) -> str:
        assert user.totp_wrapped_key is not None and user.totp_ciphertext is not None
        return open_sealed(
            self._keys.current(),
            user.totp_wrapped_key,
            user.totp_ciphertext,
            entry_id=f"admin:{user.id}",
            purpose=_TOTP_PURPOSE,
        )
