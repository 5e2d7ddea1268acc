"""API keys and idempotency records. Neither holds a key in clear or a request body."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, String, Text
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
