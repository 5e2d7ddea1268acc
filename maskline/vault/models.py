"""Vault tables: sealed entries (with tombstones) and the key-ring registry."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from maskline.db import Base, UTCDateTime


class VaultEntry(Base):
    """One party number, sealed. After erase only the tombstone columns remain.

    No column holds a number in clear: ``blind_index`` is an HMAC and
    ``ciphertext`` is AES-GCM under a data key that only the KEK unwraps.
    """

    __tablename__ = "vault_entries"

    token: Mapped[str] = mapped_column(String(40), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32))
    blind_index: Mapped[bytes | None] = mapped_column(LargeBinary(32), unique=True)
    index_version: Mapped[int | None] = mapped_column(Integer)
    kek_version: Mapped[int | None] = mapped_column(Integer)
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    erased_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    erased_by: Mapped[str | None] = mapped_column(String(120))
    erase_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_vault_entries_kek_version", "kek_version"),
        Index("ix_vault_entries_index_version", "index_version"),
    )

    @property
    def erased(self) -> bool:
        return self.erased_at is not None


class KeyVersion(Base):
    """A key version the data relies on, by fingerprint (never the key itself).

    Start-up compares the loaded key ring with these rows and refuses to run
    with a ring that lacks or contradicts one of them.
    """

    __tablename__ = "key_versions"

    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(32))
    registered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
