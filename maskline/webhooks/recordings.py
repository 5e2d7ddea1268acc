"""Call recordings: stored and listed by Twilio's RecordingSid and URL only.

The audio stays with Twilio. A recording belongs to the binding of the call
it recorded, found through the call's stored webhook decision.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from maskline.db import Database
from maskline.numbers.models import Binding
from maskline.webhooks.models import Recording


@dataclass(frozen=True, kw_only=True)
class RecordingView:
    """A recording as listed: Twilio's references and status, no number."""

    sid: str
    call_sid: str
    binding_id: str
    url: str
    status: str
    duration: int | None
    channels: int | None
    created_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "call_sid": self.call_sid,
            "binding_id": self.binding_id,
            "url": self.url,
            "status": self.status,
            "duration": self.duration,
            "channels": self.channels,
            "created_at": self.created_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


def _view(row: Recording) -> RecordingView:
    return RecordingView(
        sid=row.sid,
        call_sid=row.call_sid,
        binding_id=row.binding_id,
        url=row.url,
        status=row.status,
        duration=row.duration,
        channels=row.channels,
        created_at=row.created_at,
    )


def recordings_of(session: Session, binding_id: str) -> list[RecordingView]:
    """A binding's recordings, oldest first."""
    rows = session.scalars(
        select(Recording)
        .where(Recording.binding_id == binding_id)
        .order_by(Recording.created_at, Recording.sid)
    )
    return [_view(row) for row in rows]


@dataclass(frozen=True, kw_only=True)
class RecordingEvent:
    """One recording status callback, as Twilio sent it."""

    sid: str
    call_sid: str
    url: str
    status: str
    duration: int | None
    channels: int | None


def store_recording(db: Database, event: RecordingEvent, *, binding_id: str, now: dt.datetime) -> None:
    """Insert or update the recording; a later callback updates status and duration."""
    for _ in range(2):  # a concurrent first insert of the same sid: update instead
        try:
            with db.session() as session:
                row = session.get(Recording, event.sid)
                if row is None:
                    owner = session.execute(
                        select(Binding.owner).where(Binding.id == binding_id)
                    ).scalar_one_or_none()
                    row = Recording(
                        sid=event.sid,
                        call_sid=event.call_sid,
                        binding_id=binding_id,
                        owner=owner or "",
                        created_at=now,
                    )
                    session.add(row)
                row.url = event.url
                row.status = event.status
                if event.duration is not None:
                    row.duration = event.duration
                if event.channels is not None:
                    row.channels = event.channels
                row.updated_at = now
            return
        except IntegrityError:
            continue
