"""The console's lists as queries: each list's filtered select and its keyset.

The pages (:mod:`maskline.admin.lists`) and the CSV exports read the same
select, so an export holds exactly the rows its page lists. Rows are the
stored entities; nothing here opens the vault, and no list has a party
number to show.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, func, or_, select
from sqlalchemy.orm import Session

from maskline.admin.filters import AlertFilter, AuditFilter, InteractionFilter, PoolFilter, TimeRange
from maskline.admin.models import RevealRequest
from maskline.admin.paging import Keyset
from maskline.api.models import Waybill
from maskline.audit.interfaces import AlertView
from maskline.audit.models import Alert, AuditRecord
from maskline.numbers.models import Binding, RelayNumber
from maskline.numbers.services import is_binding_id
from maskline.vault.interfaces import InvalidPhoneNumber
from maskline.vault.normalize import parse_relay
from maskline.webhooks.models import Interaction

BINDINGS = Keyset(columns=(Binding.created_at, Binding.id))
INTERACTIONS = Keyset(columns=(Interaction.started_at, Interaction.sid))
AUDIT = Keyset(columns=(AuditRecord.seq,))
ALERTS = Keyset(columns=(Alert.raised_at, Alert.id))
POOL = Keyset(columns=(RelayNumber.e164,), descending=False)
REVEALS = Keyset(columns=(RevealRequest.requested_at, RevealRequest.id))
MAX_QUERY = 128


def prefix(column: Any, text: str) -> ColumnElement[bool]:
    """``column`` starts with ``text`` (its ``%`` and ``_`` taken literally)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    found: ColumnElement[bool] = column.like(escaped + "%", escape="\\")
    return found


@dataclass(frozen=True, kw_only=True)
class BindingSearch:
    """What a search was taken as, and the select of its bindings."""

    query: str
    matched_by: str
    select: Select[Any]
    # The relay number searched for, in E.164 (public), if the query was one.
    relay: str | None = None

    def args(self) -> dict[str, str]:
        return {"q": self.query} if self.query else {}


def _as_number(q: str, region: str) -> str | None:
    """``q`` as a number in E.164, read in ``region``, or None if it is no number."""
    if not any(c.isdigit() for c in q) or any(c.isalpha() for c in q):
        return None
    try:
        return parse_relay(q, field="q", region=region)
    except InvalidPhoneNumber:
        return None


def search_bindings(session: Session, query: str, *, region: str) -> BindingSearch:
    """Bindings by binding id; relay number (national or E.164, read in the
    deployment's ``region``); or order id / tracking number by prefix.

    A party's number is deliberately not looked up (see :mod:`queries`): a
    number of the region that is no relay number of the pool finds nothing.
    """
    q = query.strip()[:MAX_QUERY]
    everything = select(Binding)
    if not q:
        return BindingSearch(query=q, matched_by="nothing", select=everything.where(Binding.id.is_(None)))
    if is_binding_id(q):
        return BindingSearch(query=q, matched_by="binding id", select=everything.where(Binding.id == q))
    number = _as_number(q, region)
    if number is not None:
        in_pool = session.get(RelayNumber, number) is not None
        selected = everything.where(Binding.relay_number == number if in_pool else Binding.id.is_(None))
        return BindingSearch(query=q, matched_by="relay number", select=selected, relay=number)
    by_order = prefix(Binding.order_id, q)
    waybills = select(Waybill.binding_id).where(prefix(Waybill.tracking_no, q))
    orders = bool(session.scalar(select(exists().where(by_order))))
    tracked = bool(session.scalar(select(exists(waybills))))
    matched = "tracking number" if tracked and not orders else "order id"
    if tracked and orders:
        matched = "order id or tracking number"
    return BindingSearch(
        query=q, matched_by=matched, select=everything.where(or_(by_order, Binding.id.in_(waybills)))
    )


def _in(time: TimeRange, column: Any) -> list[ColumnElement[bool]]:
    found = []
    if time.since is not None:
        found.append(column >= time.since)
    if time.until is not None:
        found.append(column < time.until)
    return found


def audit_select(f: AuditFilter) -> Select[Any]:
    query = select(AuditRecord).where(*_in(f.time, AuditRecord.at))
    if f.actor:
        query = query.where(prefix(AuditRecord.actor, f.actor))
    if f.action:
        query = query.where(prefix(AuditRecord.action, f.action))
    if f.subject:
        query = query.where(AuditRecord.subject == f.subject)
    return query


def interactions_select(f: InteractionFilter) -> Select[Any]:
    query = select(Interaction).where(*_in(f.time, Interaction.started_at))
    if f.binding:
        query = query.where(Interaction.binding_id == f.binding)
    if f.relay:
        query = query.where(
            Interaction.binding_id.in_(select(Binding.id).where(Binding.relay_number == f.relay))
        )
    if f.outcome:
        query = query.where(Interaction.status == f.outcome)
    return query


def alerts_select(f: AlertFilter) -> Select[Any]:
    query = select(Alert)
    if f.kind:
        query = query.where(Alert.kind == f.kind)
    if f.state == "open":
        query = query.where(Alert.acknowledged_at.is_(None))
    elif f.state == "acknowledged":
        query = query.where(Alert.acknowledged_at.is_not(None))
    return query


def alert_kinds(session: Session, chosen: str | None) -> list[str]:
    """The kinds of alert raised so far (for the filter's choices), and the chosen one."""
    kinds = set(session.scalars(select(Alert.kind).distinct()))
    if chosen:
        kinds.add(chosen)
    return sorted(kinds)


def alert_view(row: Alert) -> AlertView:
    """An alert row as the alerts page shows it (its detail parsed)."""
    try:
        detail = json.loads(row.detail) if row.detail else {}
    except ValueError:
        detail = {}
    return AlertView(
        alert_id=row.alert_id,
        kind=row.kind,
        subject=row.subject,
        count=row.count,
        threshold=row.threshold,
        window_start=row.window_start,
        raised_at=row.raised_at,
        detail=detail if isinstance(detail, dict) else {},
        acknowledged_by=row.acknowledged_by,
        acknowledged_at=row.acknowledged_at,
    )


def pool_select(f: PoolFilter) -> Select[Any]:
    query = select(RelayNumber)
    if f.status:
        query = query.where(RelayNumber.status == f.status)
    return query


def live_counts(session: Session, numbers: list[str], *, now: dt.datetime) -> dict[str, int]:
    """Live bindings of each of ``numbers`` (one page's worth)."""
    if not numbers:
        return {}
    rows = session.execute(
        select(Binding.relay_number, func.count())
        .where(Binding.relay_number.in_(numbers), Binding.status == "active", Binding.expires_at > now)
        .group_by(Binding.relay_number)
    )
    return {relay: int(n) for relay, n in rows}


def reveals_select(status: str | None) -> Select[Any]:
    query = select(RevealRequest)
    if status:
        query = query.where(RevealRequest.status == status)
    return query
