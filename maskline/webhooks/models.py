"""Interactions (who called or texted whom, by role) and call recordings. Never a number.

An interaction belongs to its binding's owner. ``binding_id`` is a plain
indexed column, not a foreign key: the record outlives whatever retention
later does to the binding.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from maskline.db import Base, UTCDateTime


class Interaction(Base):
    """One call or message relayed (or attempted) through a binding."""

    __tablename__ = "interactions"

    # Twilio's CallSid or MessageSid of the incoming leg.
    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    binding_id: Mapped[str] = mapped_column(String(24), index=True)
    owner: Mapped[str] = mapped_column(String(120), index=True)
    type: Mapped[str] = mapped_column(String(4))  # call or sms
    from_role: Mapped[str] = mapped_column(String(32))
    to_role: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(20))
    duration: Mapped[int | None] = mapped_column(Integer)  # seconds, calls only
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Recording(Base):
    """A recording of a relayed call, known by Twilio's sid and URL only.

    The audio stays with Twilio; maskline keeps the reference, so that a
    binding's recordings can be listed (and later fetched or deleted).
    """

    __tablename__ = "recordings"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)  # RecordingSid
    call_sid: Mapped[str] = mapped_column(String(64))  # the incoming leg, as Interaction.sid
    binding_id: Mapped[str] = mapped_column(String(24), index=True)
    owner: Mapped[str] = mapped_column(String(120), index=True)
    url: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(20))
    duration: Mapped[int | None] = mapped_column(Integer)
    channels: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
