"""Tables of the Twilio Proxy v1 face. Never a party number: participants are
vault tokens plus a masked form of the identifier; relay numbers are public.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from maskline.db import Base, UTCDateTime


class TwilioCredential(Base):
    """An account sid and auth token mapped onto an API key of an owner.

    Requests are checked against SHA-256 of the auth token (a random
    128-bit secret: a fast hash is enough). Callbacks are signed with the
    token itself, as Twilio signs them, so it is also kept sealed under the
    vault's key ring (AES-GCM, the key outside the database), never in clear.
    Revoking the API key revokes the credentials.
    """

    __tablename__ = "twilio_credentials"

    account_sid: Mapped[str] = mapped_column(String(34), primary_key=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    token_wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    token_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    # The KEK version wrapping it: `vault rewrap` moves it, `keys retire` checks it.
    token_kek_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ProxyService(Base):
    """A Proxy Service (KS...) of an owner: defaults and callback URLs."""

    __tablename__ = "twilio_services"

    sid: Mapped[str] = mapped_column(String(34), primary_key=True)
    owner: Mapped[str] = mapped_column(String(120), index=True)
    # The credentials that made it: their auth token signs its callbacks.
    account_sid: Mapped[str] = mapped_column(String(34))
    unique_name: Mapped[str] = mapped_column(String(191))
    default_ttl: Mapped[int] = mapped_column(Integer, default=0)
    geo_match_level: Mapped[str] = mapped_column(String(24))
    number_selection_behavior: Mapped[str] = mapped_column(String(16))
    callback_url: Mapped[str | None] = mapped_column(String(500))
    intercept_callback_url: Mapped[str | None] = mapped_column(String(500))
    out_of_session_callback_url: Mapped[str | None] = mapped_column(String(500))
    # maskline's option: an intercept callback that fails or times out blocks
    # the interaction (Twilio lets it through).
    intercept_fail_closed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("owner", "unique_name"),)


class ProxyPhoneNumber(Base):
    """A pool number added to a Service. ``sid`` is the number's PN sid,
    derived from its E.164 form (the same for every Service)."""

    __tablename__ = "twilio_phone_numbers"

    service_sid: Mapped[str] = mapped_column(
        ForeignKey("twilio_services.sid", ondelete="CASCADE"), primary_key=True
    )
    e164: Mapped[str] = mapped_column(ForeignKey("relay_numbers.e164"), primary_key=True)
    sid: Mapped[str] = mapped_column(String(34), index=True)
    is_reserved: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ProxySession(Base):
    """A Session (KC...): an axb binding of the owner once two participants joined."""

    __tablename__ = "twilio_sessions"

    sid: Mapped[str] = mapped_column(String(34), primary_key=True)
    service_sid: Mapped[str] = mapped_column(ForeignKey("twilio_services.sid", ondelete="CASCADE"))
    owner: Mapped[str] = mapped_column(String(120), index=True)
    unique_name: Mapped[str | None] = mapped_column(String(191))
    ttl: Mapped[int] = mapped_column(Integer, default=0)
    date_expiry: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Indexed: the webhook path asks whether any session restricts its mode.
    mode: Mapped[str] = mapped_column(String(20), index=True)
    # open until closed by an update (or its binding ended); shown as
    # in-progress once the binding has had an interaction.
    status: Mapped[str] = mapped_column(String(12))
    closed_reason: Mapped[str | None] = mapped_column(String(120))
    # A plain column, as interactions have: the session outlives retention.
    binding_id: Mapped[str | None] = mapped_column(String(24), index=True)
    # The expiry is a DateExpiry: interactions do not move it (a ttl counts
    # from the last interaction, as in Twilio).
    expiry_fixed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    date_ended: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("service_sid", "unique_name"),)


class ProxyParticipant(Base):
    """A Participant (KP...): a vault token and the masked identifier.

    ``token`` is set to NULL if the vault collects the entry before the
    session's second participant binds it (then the participant is re-added).
    """

    __tablename__ = "twilio_participants"

    sid: Mapped[str] = mapped_column(String(34), primary_key=True)
    session_sid: Mapped[str] = mapped_column(
        ForeignKey("twilio_sessions.sid", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(32))
    # Indexed: sticky number selection finds a pair's earlier sessions by token.
    token: Mapped[str | None] = mapped_column(
        ForeignKey("vault_entries.token", ondelete="SET NULL"), index=True
    )
    identifier_masked: Mapped[str] = mapped_column(String(24))
    friendly_name: Mapped[str | None] = mapped_column(String(255))
    # The relay number (public) asked for with ProxyIdentifier(Sid), kept
    # until the session binds on it.
    proxy_e164: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class ProxyCallback(Base):
    """A Proxy callback to send: a form, its URL, and the credentials that sign it.

    ``key`` is what the callback is about (``<interaction sid>:<status>``,
    ``<session sid>:closed``, or ``oos:<CallSid|MessageSid>:<service sid>``
    for an out-of-session callback), unique, so the worker that finds it twice
    queues it once. The form carries sids, roles, statuses and the (public)
    relay number only; never a party number.
    """

    __tablename__ = "twilio_callbacks"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    key: Mapped[str] = mapped_column(String(120), unique=True)
    service_sid: Mapped[str] = mapped_column(String(34), index=True)
    account_sid: Mapped[str] = mapped_column(String(34))
    url: Mapped[str] = mapped_column(String(500))
    form: Mapped[str] = mapped_column(Text)  # JSON object of the form fields
    status: Mapped[str] = mapped_column(String(10), default="pending")  # pending, delivered, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_twilio_callbacks_status_next", "status", "next_attempt_at"),)
