"""Pool and bindings: SQL is the source of truth; Redis is rebuilt from it.

A cool-down is recorded as the binding's ``ended_at``: for the configured
cool-down after it, the relay number is not given to the binding's parties
again and its extension is not reissued, and Redis can be rebuilt with that.

No column holds a party number: parties are vault tokens. Relay numbers are
public and stored in clear.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from maskline.db import Base, UTCDateTime


class RelayNumber(Base):
    """A number of maskline's pool."""

    __tablename__ = "relay_numbers"

    e164: Mapped[str] = mapped_column(String(20), primary_key=True)
    country: Mapped[str] = mapped_column(String(2), index=True)
    # Geographic area: the area code where the numbering plan has one
    # (e.g. "415", "10"), else phonenumbers' geocoded place, else "".
    area: Mapped[str] = mapped_column(String(64), index=True)
    voice: Mapped[bool] = mapped_column(Boolean, default=True)
    sms: Mapped[bool] = mapped_column(Boolean, default=True)
    # active: takes new bindings; locked: keeps existing ones only; retired: out.
    status: Mapped[str] = mapped_column(String(10), default="active", index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Binding(Base):
    """One order's use of a relay number (plus extension in axe mode)."""

    __tablename__ = "bindings"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    owner: Mapped[str] = mapped_column(String(120))
    order_id: Mapped[str] = mapped_column(String(128))
    mode: Mapped[str] = mapped_column(String(4))
    relay_number: Mapped[str] = mapped_column(ForeignKey("relay_numbers.e164"))
    extension: Mapped[str | None] = mapped_column(String(8))
    # "any" lets any caller use the extension; only when asked for explicitly.
    allow_any: Mapped[bool] = mapped_column(Boolean, default=False)
    # active, unbound or expired; a binding past expires_at is dead whatever
    # this says until the sweeper catches up.
    status: Mapped[str] = mapped_column(String(10), default="active")
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # When the binding's Redis entries (kept as cool-down tombstones after it
    # ends) were removed for good.
    purged_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Bumped on every change; Redis route entries carry it, so a rebuild that
    # read an older state can never revive what an unbind ended.
    version: Mapped[int] = mapped_column(Integer, default=1)
    # When the order system said the order was delivered: the binding then
    # ends within the delivery grace period and cannot be extended.
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Calls are recorded (both sides told first); set when the binding is made.
    record: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The binding's own SMS policy; NULL means the deployment's. sms_redact
    # is a sorted comma list of phones/links, "" for no redaction.
    sms_redact: Mapped[str | None] = mapped_column(String(32))
    sms_media: Mapped[str | None] = mapped_column(String(8))
    # The language of its answers (en-US, zh-CN); NULL: the deployment's.
    language: Mapped[str | None] = mapped_column(String(8))

    members: Mapped[list[BindingMember]] = relationship(
        back_populates="binding", cascade="all, delete-orphan", order_by="BindingMember.position"
    )

    __table_args__ = (
        Index("ix_bindings_owner_order", "owner", "order_id"),
        Index("ix_bindings_status_expires", "status", "expires_at"),
        Index("ix_bindings_relay_status", "relay_number", "status"),
    )

    @property
    def parties(self) -> list[BindingMember]:
        return [m for m in self.members if m.kind == "party"]

    @property
    def callers(self) -> list[BindingMember]:
        return [m for m in self.members if m.kind == "caller"]

    def is_live(self, now: dt.datetime) -> bool:
        return self.status == "active" and now < self.expires_at


class BindingMember(Base):
    """A party of a binding (kind ``party``) or an allowed caller (``caller``)."""

    __tablename__ = "binding_members"

    binding_id: Mapped[str] = mapped_column(ForeignKey("bindings.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    role: Mapped[str] = mapped_column(String(32))
    # The foreign key makes vault GC and a binding that is about to use an
    # entry exclude each other: GC cannot delete an entry a binding refers to.
    token: Mapped[str] = mapped_column(ForeignKey("vault_entries.token"), index=True)

    binding: Mapped[Binding] = relationship(back_populates="members")
