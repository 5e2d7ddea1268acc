"""The audit table. Rows are only ever inserted; ``seq`` is dense from 1."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from maskline.db import Base, UTCDateTime


class AuditRecord(Base):
    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # Indexed for `audit export --since` and the console's time-ordered reads.
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(200), index=True)
    reason: Mapped[str] = mapped_column(Text)
    data: Mapped[str] = mapped_column(Text)  # canonical JSON of extra details
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """The chain's end, one row (``id`` 1): the last ``seq`` and its hash.

    Every append updates this row in its own transaction, which gives it the
    next ``seq`` (gapless: a rolled-back append rolls its number back too) and
    the hash to chain onto, and holds the row's lock until that transaction
    ends, so appends commit in ``seq`` order. The bind path does it as the
    last step of its one statement (see docs/audit.md), so the lock is held
    for that statement's commit, not for a transaction's round trips.
    """

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class Alert(Base):
    """An insider-threat or abuse signal: a threshold crossed in a window.

    One row per (kind, subject, window): the detector that crosses a
    threshold again in the same window finds the row and adds to it rather
    than raising a second alert. ``subject`` names an API key, an admin, a
    relay number or a caller's fingerprint (a short blind-index prefix),
    never a party number; ``detail`` is JSON of counts and ids.
    """

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    alert_id: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(200))
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(Integer)
    threshold: Mapped[int] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(120))
    acknowledged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("kind", "subject", "window_start", name="uq_alerts_kind_subject_window"),
    )
