"""Waybills: a carrier's tracking number linked to an axe binding.

The order system links (``PUT /v1/bindings/{id}/waybills/{tracking_no}``)
and names the carrier account that may look it up; the carrier's app asks
``GET /v1/waybills/{tracking_no}/contact`` and gets the relay number and
extension to print or dial. Anyone but the named carrier gets 404, as does
a waybill whose binding has ended.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select

from maskline.api.interfaces import BindingEnded, FieldError, NotFound, TrackingNumberTaken, Unprocessable
from maskline.api.models import Waybill
from maskline.audit.interfaces import AuditEntry
from maskline.audit.services import AuditLog
from maskline.clock import Clock
from maskline.db import Database
from maskline.numbers.interfaces import BindingView
from maskline.numbers.models import Binding

TRACKING_NO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
CARRIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,119}\Z")


@dataclass(frozen=True, kw_only=True)
class Contact:
    """What a courier may know: the relay number and extension. Never a party number."""

    tracking_no: str
    relay_number: str
    extension: str | None
    expires_at: str

    def to_json(self) -> dict[str, object]:
        dial = f"{self.relay_number},{self.extension}" if self.extension else self.relay_number
        return {
            "tracking_no": self.tracking_no,
            "relay_number": self.relay_number,
            "extension": self.extension,
            "dial": dial,
            "expires_at": self.expires_at,
        }


class WaybillService:
    def __init__(self, *, db: Database, clock: Clock, audit: AuditLog) -> None:
        self.db = db
        self.clock = clock
        self.audit = audit

    def link(
        self, view: BindingView, tracking_no: str, carrier: object, *, actor: str
    ) -> tuple[bool, dict[str, str]]:
        """Link ``tracking_no`` of ``carrier`` to the owner's binding ``view``.

        Returns (created, the waybill as JSON). Raises Unprocessable for a bad
        tracking number, carrier or a binding that is not axe, and Conflict if
        the carrier's tracking number is linked to another owner's binding.
        A link that changes something is audited (``waybill.linked``, by
        ``actor``) in its transaction: it lets ``carrier`` look the contact up.
        """
        errors = []
        if not TRACKING_NO.match(tracking_no):
            errors.append(FieldError("tracking_no", "1-64 letters, digits, '.', '_' or '-'"))
        if not isinstance(carrier, str) or not CARRIER.match(carrier):
            errors.append(
                FieldError("carrier", "is required: the carrier account (owner) that may look it up")
            )
        if view.mode != "axe":
            errors.append(FieldError("binding", "a waybill needs an axe binding (relay number + extension)"))
        if errors:
            raise Unprocessable("invalid waybill", fields=errors)
        assert isinstance(carrier, str)
        if view.status != "active":
            raise BindingEnded(f"binding {view.id} has ended")
        with self.db.session() as session:
            row = session.get(Waybill, (carrier, tracking_no))
            created = row is None
            if row is None:
                row = Waybill(
                    carrier=carrier,
                    tracking_no=tracking_no,
                    binding_id=view.id,
                    owner=view.owner,
                    created_at=self.clock(),
                )
                session.add(row)
            elif row.owner != view.owner:
                raise TrackingNumberTaken("this carrier's tracking number is linked by another account")
            previous = None if created else row.binding_id
            if previous != view.id:
                row.binding_id = view.id
                self.audit.append(
                    session,
                    AuditEntry(
                        actor=actor,
                        action="waybill.linked",
                        subject=view.id,
                        data={
                            "owner": view.owner,
                            "carrier": carrier,
                            "tracking_no": tracking_no,
                            "relay_number": view.relay_number,
                            "extension": view.extension,
                            "previous_binding_id": previous,
                        },
                    ),
                )
        return created, {"carrier": carrier, "tracking_no": tracking_no, "binding_id": view.id}

    def contact(self, tracking_no: str, *, carrier: str) -> Contact:
        """The contact of a live binding behind the carrier's tracking number, else NotFound."""
        if not TRACKING_NO.match(tracking_no):
            raise NotFound("no such waybill")
        now = self.clock()
        with self.db.session() as session:
            row = session.execute(
                select(Binding.relay_number, Binding.extension, Binding.expires_at)
                .join(Waybill, Waybill.binding_id == Binding.id)
                .where(
                    Waybill.carrier == carrier,
                    Waybill.tracking_no == tracking_no,
                    Binding.status == "active",
                    Binding.expires_at > now,
                )
            ).one_or_none()
        if row is None:
            raise NotFound("no such waybill")
        relay, extension, expires = row
        return Contact(
            tracking_no=tracking_no,
            relay_number=relay,
            extension=extension,
            expires_at=expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
