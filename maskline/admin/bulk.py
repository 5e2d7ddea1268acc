"""Bulk extend and unbind of bindings selected in a list, with one reason.

Two steps, both POSTs with the CSRF token:

1. *review* (``/admin/bindings/bulk``): the selection, action, hours and
   reason are checked, and a confirmation page lists what will change for
   each binding (extend: old -> new expiry; unbind: ends now) and what will
   be skipped and why. Nothing changes yet.
2. *apply* (``/admin/bindings/bulk/apply``): each binding goes through the
   binding lifecycle service on its own (its own audit record, with the
   actor and the reason), so one refusal does not stop the others. An
   extend whose binding's expiry is no longer the one reviewed is skipped:
   what was confirmed is what happens, and sending the form twice does not
   extend twice.

Bulk extend only ever extends (by whole hours from the current expiry);
shortening is the single-binding form's job, with its own confirmation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from flask import render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from werkzeug.datastructures import MultiDict

from maskline.admin import i18n
from maskline.admin.interfaces import InvalidAdminInput
from maskline.admin.paging import PAGE_SIZE
from maskline.admin.views import _ctx, _hours, _me, _reason, bp, requires
from maskline.audit.interfaces import AuditEntry
from maskline.numbers.interfaces import NumbersError
from maskline.numbers.models import Binding
from maskline.numbers.services import is_binding_id

ACTIONS = ("extend", "unbind")
# One page of a list at most: what a person can look over before confirming.
MAX_SELECTED = PAGE_SIZE


@dataclass(frozen=True, kw_only=True)
class BulkRequest:
    ids: list[str]
    action: str
    hours: int | None
    reason: str


@dataclass(frozen=True, kw_only=True)
class PlanRow:
    """One selected binding: what the action would do to it, or why not."""

    id: str
    order_id: str = ""
    relay_number: str = ""
    old_expiry: dt.datetime | None = None
    new_expiry: dt.datetime | None = None
    skip: str | None = None  # why it will not change (English; shown through i18n)

    @property
    def changes(self) -> bool:
        return self.skip is None


def read_request(form: MultiDict[str, str]) -> BulkRequest:
    """The bulk form, checked: selected ids, action, hours (extend), reason."""
    ids = list(dict.fromkeys(v.strip() for v in form.getlist("ids") if v.strip()))
    if not ids:
        raise InvalidAdminInput("ids", "select at least one binding")
    if len(ids) > MAX_SELECTED:
        raise InvalidAdminInput("ids", f"select at most {MAX_SELECTED} bindings at a time")
    if not all(is_binding_id(i) for i in ids):
        raise InvalidAdminInput("ids", "must be binding ids from the list")
    action = (form.get("action") or "").strip()
    if action not in ACTIONS:
        raise InvalidAdminInput("action", "must be extend or unbind")
    hours = _hours(form.get("hours")) if action == "extend" else None
    return BulkRequest(ids=ids, action=action, hours=hours, reason=_reason())


def plan(bulk: BulkRequest, *, now: dt.datetime, max_ttl: dt.timedelta) -> list[PlanRow]:
    """What ``bulk`` would do to each binding now (reads only)."""
    services = _ctx().services
    rows: list[PlanRow] = []
    with services.db.session() as db:
        for binding_id in bulk.ids:
            b = db.get(Binding, binding_id)
            if b is None:
                rows.append(PlanRow(id=binding_id, skip="no binding has this id"))
                continue
            row = PlanRow(id=b.id, order_id=b.order_id, relay_number=b.relay_number, old_expiry=b.expires_at)
            if not b.is_live(now):
                rows.append(_skip(row, "this binding has already ended"))
            elif bulk.action == "unbind":
                rows.append(_with(row, new_expiry=now))
            elif b.delivered_at is not None:
                rows.append(_skip(row, "the order was delivered: its binding cannot be extended"))
            else:
                new = b.expires_at + dt.timedelta(hours=bulk.hours or 0)
                if new - now > max_ttl:
                    rows.append(_skip(row, f"would end more than {max_ttl.days} days from now (the maximum)"))
                else:
                    rows.append(_with(row, new_expiry=new))
    return rows


def _skip(row: PlanRow, why: str) -> PlanRow:
    return PlanRow(
        id=row.id, order_id=row.order_id, relay_number=row.relay_number, old_expiry=row.old_expiry, skip=why
    )


def _with(row: PlanRow, *, new_expiry: dt.datetime) -> PlanRow:
    return PlanRow(
        id=row.id,
        order_id=row.order_id,
        relay_number=row.relay_number,
        old_expiry=row.old_expiry,
        new_expiry=new_expiry,
    )


def _seen(form: Mapping[str, str], binding_id: str) -> str:
    return (form.get(f"seen_{binding_id}") or "").strip()


@bp.post("/bindings/bulk")
@requires("bindings.change")
def bulk_review() -> ResponseReturnValue:
    services = _ctx().services
    bulk = read_request(request.form)
    rows = plan(bulk, now=services.clock(), max_ttl=services.numbers.bindings.policy.max_ttl)
    return render_template(
        "admin/bulk_confirm.html",
        bulk=bulk,
        rows=rows,
        changing=sum(r.changes for r in rows),
        stamp=_stamp,
        said=_said,
    )


@bp.post("/bindings/bulk/apply")
@requires("bindings.change")
def bulk_apply() -> ResponseReturnValue:
    services = _ctx().services
    bulk = read_request(request.form)
    actor = _me().actor
    results: list[tuple[PlanRow, str | None]] = []
    for row in plan(bulk, now=services.clock(), max_ttl=services.numbers.bindings.policy.max_ttl):
        if not row.changes:
            results.append((row, _said(row.skip or "")))
            continue
        if bulk.action == "extend" and _seen(request.form, row.id) != _stamp(row.old_expiry):
            results.append((row, _("its expiry changed since you reviewed it: review again")))
            continue
        try:
            if bulk.action == "extend":
                services.numbers.bindings.extend(
                    row.id, expires_at=row.new_expiry, actor=actor, reason=bulk.reason
                )
            else:
                services.numbers.bindings.unbind(row.id, actor=actor, reason=bulk.reason)
        except NumbersError as exc:
            results.append((row, i18n.error_text(exc)))
            continue
        results.append((row, None))
    done = sum(1 for _row, problem in results if problem is None)
    with services.db.session() as db:
        services.audit.append(
            db,
            AuditEntry(
                actor=actor,
                action=f"admin.bulk.{bulk.action}",
                subject="bindings",
                reason=bulk.reason,
                data={"selected": len(bulk.ids), "changed": done, "hours": bulk.hours},
            ),
        )
    return render_template("admin/bulk_done.html", bulk=bulk, results=results, done=done)


def _stamp(when: dt.datetime | None) -> str:
    """An expiry as the confirmation form carries it (UTC, to the microsecond)."""
    return "" if when is None else when.astimezone(dt.UTC).isoformat()


def _said(why: str) -> str:
    """A skip reason in the console's language."""
    return i18n.error_text(Exception(why))
