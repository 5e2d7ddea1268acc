"""What the console reads: search, a binding's file, pool health, interactions.

Read-only. A party appears only masked (country code and last two digits),
opened from the vault for that purpose; the binding page that shows them is
itself an audit record (see views). Search takes order ids, tracking
numbers, relay numbers and binding ids, and deliberately not a party's
number: "is this number a customer of ours?" would be an oracle for the
very lists this system exists to make worthless.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass, field

import phonenumbers
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from maskline.admin.listing import BINDINGS, search_bindings
from maskline.api.models import Owner, Waybill
from maskline.audit.models import AuditRecord
from maskline.numbers.models import Binding, RelayNumber
from maskline.vault.interfaces import VaultEntryErased, VaultError
from maskline.vault.services import VaultService
from maskline.webhooks.models import Interaction

MAX_RESULTS = 50


def mask_number(e164: str) -> str:
    """``+86 •••••••••78``: the country code and the last two digits only."""
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return "••••"
    national = str(parsed.national_number)
    return f"+{parsed.country_code} {'•' * max(len(national) - 2, 2)}{national[-2:]}"


@dataclass(frozen=True, kw_only=True)
class BindingRow:
    id: str
    order_id: str
    owner: str
    mode: str
    relay_number: str
    extension: str | None
    status: str
    live: bool
    created_at: dt.datetime
    expires_at: dt.datetime
    ended_at: dt.datetime | None


@dataclass(frozen=True, kw_only=True)
class MemberRow:
    role: str
    kind: str  # party or caller
    masked: str


@dataclass(frozen=True, kw_only=True)
class AuditRow:
    seq: int
    at: dt.datetime
    actor: str
    action: str
    subject: str
    reason: str
    data: dict[str, object]


@dataclass(frozen=True, kw_only=True)
class BindingFile:
    binding: BindingRow
    members: list[MemberRow]
    interactions: list[Interaction]
    audit: list[AuditRow]
    waybills: list[str]
    delivered_at: dt.datetime | None
    allow_any: bool


@dataclass(kw_only=True)
class RegionHealth:
    country: str
    area: str
    numbers: int = 0
    active: int = 0
    locked: int = 0
    retired: int = 0
    live_bindings: int = 0
    cooling: int = 0
    capacity: int = 0
    # One relay number of the area: the console names the area's place by it.
    sample: str | None = None

    @property
    def load(self) -> float:
        """Live bindings as a share of what the active numbers can hold."""
        return self.live_bindings / self.capacity if self.capacity else 0.0


@dataclass(frozen=True, kw_only=True)
class SearchResult:
    query: str
    matched_by: str  # what the query was taken as
    rows: list[BindingRow] = field(default_factory=list)


def binding_row(b: Binding, now: dt.datetime) -> BindingRow:
    return BindingRow(
        id=b.id,
        order_id=b.order_id,
        owner=b.owner,
        mode=b.mode,
        relay_number=b.relay_number,
        extension=b.extension,
        status=b.status if b.status != "active" or b.expires_at > now else "expired",
        live=b.is_live(now),
        created_at=b.created_at,
        expires_at=b.expires_at,
        ended_at=b.ended_at,
    )


def search(session: Session, query: str, *, now: dt.datetime, region: str) -> SearchResult:
    """The first page of bindings by binding id, relay number, tracking number
    or order id (the last two by prefix), newest first: see
    :func:`maskline.admin.listing.search_bindings`."""
    found = search_bindings(session, query, region=region)
    rows = session.scalars(found.select.order_by(*BINDINGS.order(forward=True)).limit(MAX_RESULTS))
    return SearchResult(
        query=found.query, matched_by=found.matched_by, rows=[binding_row(b, now) for b in rows]
    )


def binding_file(
    session: Session, binding_id: str, *, vault: VaultService, now: dt.datetime
) -> BindingFile | None:
    """Everything the console shows about one binding, parties masked."""
    binding = session.scalar(
        select(Binding).where(Binding.id == binding_id).options(selectinload(Binding.members))
    )
    if binding is None:
        return None
    members = [
        MemberRow(role=m.role, kind=m.kind, masked=_masked(session, vault, m.token))
        for m in sorted(binding.members, key=lambda m: m.position)
    ]
    interactions = list(
        session.scalars(
            select(Interaction)
            .where(Interaction.binding_id == binding_id)
            .order_by(Interaction.started_at.desc())
            .limit(MAX_RESULTS)
        )
    )
    waybills = list(session.scalars(select(Waybill.tracking_no).where(Waybill.binding_id == binding_id)))
    return BindingFile(
        binding=binding_row(binding, now),
        members=members,
        interactions=interactions,
        audit=audit_rows(session, subject=binding_id),
        waybills=waybills,
        delivered_at=binding.delivered_at,
        allow_any=binding.allow_any,
    )


def _masked(session: Session, vault: VaultService, token: str) -> str:
    try:
        return mask_number(vault.open(session, token))
    except VaultEntryErased:
        return "(erased)"
    except VaultError:
        # Tampered or unreadable: the page still works, and says so.
        return "(unreadable)"


def audit_rows(
    session: Session, *, subject: str | None = None, before: int | None = None, limit: int = 100
) -> list[AuditRow]:
    """Audit records, newest first: all, or one subject's; ``before`` pages back."""
    query = select(AuditRecord).order_by(AuditRecord.seq.desc()).limit(limit)
    if subject is not None:
        query = query.where(AuditRecord.subject == subject)
    if before is not None:
        query = query.where(AuditRecord.seq < before)
    return [audit_row(r) for r in session.scalars(query)]


def audit_row(r: AuditRecord) -> AuditRow:
    """A stored record as the console shows it (its data parsed)."""
    return AuditRow(
        seq=r.seq,
        at=r.at,
        actor=r.actor,
        action=r.action,
        subject=r.subject,
        reason=r.reason,
        data=json.loads(r.data) if r.data else {},
    )


def pool_health(
    session: Session, *, now: dt.datetime, cooldown: dt.timedelta, per_number: int
) -> list[RegionHealth]:
    """Per (country, area): numbers by status, live bindings, load, bindings cooling down."""
    regions: dict[tuple[str, str], RegionHealth] = {}
    area_of: dict[str, tuple[str, str]] = {}
    for number in session.scalars(select(RelayNumber)):
        key = (number.country, number.area)
        health = regions.setdefault(
            key, RegionHealth(country=number.country, area=number.area, sample=number.e164)
        )
        area_of[number.e164] = key
        health.numbers += 1
        if number.status in ("active", "locked", "retired"):
            setattr(health, number.status, getattr(health, number.status) + 1)
        if number.status == "active":
            health.capacity += per_number
    live: dict[str, int] = defaultdict(int)
    for relay, count in session.execute(
        select(Binding.relay_number, func.count())
        .where(Binding.status == "active", Binding.expires_at > now)
        .group_by(Binding.relay_number)
    ):
        live[relay] = count
    cooling: dict[str, int] = defaultdict(int)
    for relay, count in session.execute(
        select(Binding.relay_number, func.count())
        .where(Binding.ended_at.is_not(None), Binding.ended_at > now - cooldown)
        .group_by(Binding.relay_number)
    ):
        cooling[relay] = count
    for relay, key in area_of.items():
        regions[key].live_bindings += live.get(relay, 0)
        regions[key].cooling += cooling.get(relay, 0)
    return sorted(regions.values(), key=lambda h: (h.country, h.area))


@dataclass(frozen=True, kw_only=True)
class OwnerUse:
    """One owner's share of the pool: its live bindings against its cap."""

    owner: str
    live_bindings: int
    # Its own cap, else the deployment's; 0: none.
    cap: int
    own_cap: bool

    @property
    def use(self) -> float:
        return self.live_bindings / self.cap if self.cap else 0.0


def owner_use(session: Session, *, now: dt.datetime, default_cap: int) -> list[OwnerUse]:
    """Live bindings per owner (most first), with each owner's cap (issue 17)."""
    caps = {name: cap for name, cap in session.execute(select(Owner.name, Owner.max_live_bindings))}
    rows = session.execute(
        select(Binding.owner, func.count())
        .where(Binding.status == "active", Binding.expires_at > now)
        .group_by(Binding.owner)
    )
    live = {owner: int(count) for owner, count in rows}
    owners = set(live) | {name for name, cap in caps.items() if cap is not None}
    out = []
    for owner in owners:
        own = caps.get(owner)
        out.append(
            OwnerUse(
                owner=owner,
                live_bindings=live.get(owner, 0),
                cap=default_cap if own is None else own,
                own_cap=own is not None,
            )
        )
    return sorted(out, key=lambda u: (-u.live_bindings, u.owner))


def recent_interactions(session: Session, *, limit: int = 100) -> list[Interaction]:
    return list(session.scalars(select(Interaction).order_by(Interaction.started_at.desc()).limit(limit)))
