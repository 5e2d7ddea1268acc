"""Console accounts, their sessions, and dual-control reveal requests.

Nothing here holds a party number: a reveal request names a binding, a role
and the party's vault token; the number is opened only when it is viewed.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from maskline.db import Base, UTCDateTime


class AdminUser(Base):
    """A console account. ``password_hash`` is an Argon2id hash (memory-hard).

    A security admin's TOTP secret is sealed with the vault's key ring
    (purpose ``admin-totp``, entry id ``admin:<id>``), so a database dump
    holds neither it nor anything to brute-force it from.
    """

    __tablename__ = "admin_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # viewer, operator, security
    password_hash: Mapped[str] = mapped_column(String(200))
    totp_wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_kek_version: Mapped[int | None] = mapped_column(Integer)
    totp_enrolled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The last TOTP time step accepted: a code is good once.
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The console as this admin wants it; NULL follows the browser, then the
    # deployment (MASKLINE_CONSOLE_LANGUAGE, MASKLINE_DISPLAY_TIMEZONE).
    language: Mapped[str | None] = mapped_column(String(8))
    timezone: Mapped[str | None] = mapped_column(String(64))


class AdminSession(Base):
    """A logged-in console session. The cookie carries a random id; only its
    SHA-256 is stored, so a database reader cannot ride a session, and
    logging out (deleting the row) ends it everywhere."""

    __tablename__ = "admin_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("admin_users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Set once the second factor has been given (security admins need it).
    second_factor_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class RevealRequest(Base):
    """One break-glass request for the number of one party of one binding.

    pending -> approved -> viewed; or pending -> denied / cancelled /
    expired; or approved -> expired when the view window passes unseen.
    """

    __tablename__ = "reveal_requests"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    binding_id: Mapped[str] = mapped_column(String(24), index=True)
    role: Mapped[str] = mapped_column(String(32))
    token: Mapped[str] = mapped_column(String(40))  # the party's vault token
    requested_by: Mapped[int] = mapped_column(ForeignKey("admin_users.id"))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12))
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("admin_users.id"))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    viewed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Pending: when the request lapses. Approved: when the view window closes.
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_reveal_requests_requester_time", "requested_by", "requested_at"),
        Index("ix_reveal_requests_status", "status"),
    )


class RecoveryCode(Base):
    """A one-time second-factor recovery code of an account. Only its SHA-256
    is stored: a code is 80 random bits, so a hash cannot be searched back
    to it, and ``used_at`` spends it for good."""

    __tablename__ = "admin_recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("admin_users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class AccountChange(Base):
    """A change to console accounts that needs a second admin (dual control):
    creating or promoting an account that may take part in reveals or manage
    accounts, or resetting another account's password or second factor.

    pending -> approved (applied in the same transaction) / denied / cancelled.
    ``password_hash`` is the Argon2id hash of the password the change sets
    (create, password reset): never the password.
    """

    __tablename__ = "admin_account_changes"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    kind: Mapped[str] = mapped_column(String(24))  # create_user, set_role, reset_totp, reset_password
    target: Mapped[str] = mapped_column(String(64))  # the account's name
    role: Mapped[str | None] = mapped_column(String(16))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), index=True)
    requested_by: Mapped[int] = mapped_column(ForeignKey("admin_users.id"))
    requested_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("admin_users.id"))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
