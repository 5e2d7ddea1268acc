"""A binding being made, before it is stored: plain data, not ORM objects.

Building a :class:`~maskline.numbers.models.Binding` with its members cost
a bind about 270 µs of CPU (SQLAlchemy's instrumented attributes and the
members collection's backref events), and the one-statement bind
(:mod:`maskline.numbers.bind_sql`) never hands them to a session. The claim
describes the binding with this; only the ORM path turns it into rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from maskline.numbers.models import Binding, BindingMember


@dataclass(frozen=True)
class NewMember:
    """A member as the binding_members row has it (never a party number: a vault token)."""

    position: int
    kind: str  # "party" or "caller"
    role: str
    token: str


@dataclass(frozen=True)
class NewBinding:
    """The columns a new binding is stored with, and its members in order."""

    id: str
    owner: str
    order_id: str
    mode: str
    relay_number: str
    extension: str | None
    allow_any: bool
    record: bool
    sms_redact: str | None
    sms_media: str | None
    language: str | None
    expires_at: dt.datetime
    created_at: dt.datetime
    members: tuple[NewMember, ...]
    status: str = "active"
    version: int = 1
    delivered_at: dt.datetime | None = None

    @property
    def parties(self) -> list[NewMember]:
        return [m for m in self.members if m.kind == "party"]

    @property
    def callers(self) -> list[NewMember]:
        return [m for m in self.members if m.kind == "caller"]

    def to_orm(self) -> Binding:
        """The ORM binding with its members, for a session to add."""
        binding = Binding(
            id=self.id,
            owner=self.owner,
            order_id=self.order_id,
            mode=self.mode,
            relay_number=self.relay_number,
            extension=self.extension,
            allow_any=self.allow_any,
            record=self.record,
            sms_redact=self.sms_redact,
            sms_media=self.sms_media,
            language=self.language,
            status=self.status,
            expires_at=self.expires_at,
            created_at=self.created_at,
            version=self.version,
        )
        binding.members = [
            BindingMember(position=m.position, kind=m.kind, role=m.role, token=m.token) for m in self.members
        ]
        return binding
