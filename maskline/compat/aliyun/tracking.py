"""AddAxnTrackNo and QueryPhoneNoAByTrackNo, mapped onto maskline's waybills (no Flask here).

AddAxnTrackNo links a logistics tracking number to an AXN extension
subscription (an ``axe`` binding) as a waybill whose carrier account is the
AccessKey's owner; QueryPhoneNoAByTrackNo, by the same owner, answers what a
courier dials for it: ``PhoneNoX`` (national form) and ``Extension``.
``PhoneNoA`` is **masked**, as everywhere on this face: maskline never
returns a party number. A tracking number of an ended subscription, or of
another owner, is not found.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from maskline.api.keys import Principal
from maskline.api.models import Waybill
from maskline.audit.interfaces import AuditEntry
from maskline.compat.aliyun.forms import mask, national
from maskline.compat.aliyun.interfaces import BusinessError, invalid_parameter
from maskline.numbers.interfaces import BindingView
from maskline.numbers.models import Binding

# The waybills' own rule for tracking numbers.
TRACK_NO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _track_no(params: dict[str, str]) -> str:
    # AddAxnTrackNo sends it as ``trackNo`` (the SDK's spelling), the query as ``TrackNo``.
    value = (params.get("TrackNo") or params.get("trackNo") or "").strip()
    if not value:
        raise invalid_parameter("TrackNo", "is required")
    if not TRACK_NO.match(value):
        raise invalid_parameter("TrackNo", "1-64 letters, digits, '.', '_' or '-'")
    return value


class Tracking:
    def __init__(self, *, services: Any) -> None:
        self.services = services

    def add(self, view: BindingView, params: dict[str, str], principal: Principal) -> dict[str, Any]:
        track_no = _track_no(params)
        if view.mode != "axe":
            raise invalid_parameter("SubsId", "a tracking number needs an AXN extension subscription")
        if view.status != "active":
            raise BusinessError("isv.NO_NOT_EXIST", "the subscription has ended")
        owner = principal.owner
        with self.services.db.session() as session:
            row = session.get(Waybill, (owner, track_no))
            previous = row.binding_id if row is not None else None
            if row is None:
                row = Waybill(
                    carrier=owner,
                    tracking_no=track_no,
                    binding_id=view.id,
                    owner=owner,
                    created_at=self.services.clock(),
                )
                session.add(row)
            row.binding_id = view.id
            if previous != view.id:
                self.services.audit.append(
                    session,
                    AuditEntry(
                        actor=f"apikey:{principal.key_id}",
                        action="waybill.linked",
                        subject=view.id,
                        data={
                            "owner": owner,
                            "carrier": owner,
                            "tracking_no": track_no,
                            "relay_number": view.relay_number,
                            "extension": view.extension,
                            "previous_binding_id": previous,
                        },
                    ),
                )
        return {}

    def query(self, params: dict[str, str], principal: Principal, relay: str | None) -> dict[str, Any]:
        track_no = _track_no(params)
        now = self.services.clock()
        vault = self.services.vault
        with self.services.db.session() as session:
            query = (
                select(Binding)
                .join(Waybill, Waybill.binding_id == Binding.id)
                .where(
                    Waybill.carrier == principal.owner,
                    Waybill.tracking_no == track_no,
                    Binding.status == "active",
                    Binding.expires_at > now,
                )
            )
            if relay is not None:
                query = query.where(Binding.relay_number == relay)
            binding = session.scalars(query).first()
            if binding is None:
                raise BusinessError("isv.NO_NOT_EXIST", "no live subscription for this TrackNo")
            parties = binding.parties
            try:
                masked = mask(vault.open(session, parties[0].token)) if parties else None
            except Exception:  # an erased party: masked all the same
                masked = "****"
            return {
                "Module": [
                    {
                        "PhoneNoX": national(binding.relay_number),
                        "Extension": binding.extension,
                        "PhoneNoA": masked,
                    }
                ]
            }
