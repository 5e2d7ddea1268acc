"""API keys, idempotency records, owners, the event outbox, waybills: never a key in clear or a number."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from maskline.db import Base, UTCDateTime


class ApiKey(Base):
    """An API key of an owner. The secret part is stored as its SHA-256 only.

    A key is ``ml_<id>_<secret>``: ``id`` finds the row, the secret (32
    random bytes) is checked against ``secret_hash``. A fast hash is enough
    for a random 256-bit secret: there is nothing to guess.
    """

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    owner: Mapped[str] = mapped_column(String(120), index=True)
    name: Mapped[str] = mapped_column(String(120))
    scopes: Mapped[str] = mapped_column(String(200))  # space-separated
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class IdempotencyRecord(Base):
    """The first answer to an (owner, Idempotency-Key), replayed to retries.

    ``request_hash`` is an HMAC of the method, path and body under a server
    secret: the body holds party numbers, and a plain hash of a phone number
    is guessed in seconds. The stored response is the API's own answer,
    which never carries a party number.
    """

    __tablename__ = "idempotency_records"

    owner: Mapped[str] = mapped_column(String(120), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    response: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class Owner(Base):
    """An account that API keys belong to, with where its events go.

    ``events_secret`` signs the events (HMAC-SHA256); the owner holds it
    too. It protects the owner from forged events, not party data: an event
    never carries a number.
    """

    __tablename__ = "owners"

    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    events_url: Mapped[str | None] = mapped_column(String(500))
    events_secret: Mapped[str | None] = mapped_column(String(64))
    # Its own cap on live bindings (0: none); NULL: MASKLINE_OWNER_MAX_LIVE_BINDINGS.
    max_live_bindings: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class OutboxEvent(Base):
    """An event for an owner, written in the same transaction as its change and
    delivered by ``maskline worker`` with retries and backoff."""

    __tablename__ = "outbox_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(String(32), unique=True)  # what the receiver de-duplicates on
    owner: Mapped[str] = mapped_column(String(120), index=True)
    type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[str] = mapped_column(Text)  # JSON; never a party number
    status: Mapped[str] = mapped_column(String(10), default="pending")  # pending, delivered, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (Index("ix_outbox_events_status_next", "status", "next_attempt_at"),)


class Waybill(Base):
    """A carrier's tracking number linked to an axe binding.

    Only keys of ``carrier`` may look it up, and the lookup gives the relay
    number and extension, never a party's number.
    """

    __tablename__ = "waybills"

    carrier: Mapped[str] = mapped_column(String(120), primary_key=True)
    tracking_no: Mapped[str] = mapped_column(String(64), primary_key=True)
    binding_id: Mapped[str] = mapped_column(ForeignKey("bindings.id", ondelete="CASCADE"), index=True)
    owner: Mapped[str] = mapped_column(String(120), index=True)  # who linked it
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
