"""The console's lists: paged pages with filters, and their CSV exports.

Every list shows at most :data:`~maskline.admin.paging.PAGE_SIZE` rows and
its total, and pages by key (see :mod:`maskline.admin.paging`). A filter
that cannot be used is a 400 page naming the field, never a 500.

An export holds the rows of its list under the same filter, streamed as
they are read. Operators and security admins may export; each export is an
audit record naming the list and the filter used (a typed search is
recorded with any phone number in it masked: a party's number typed into
the search box must not reach the audit table).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Response, render_template, request, stream_with_context
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import Select

from maskline.admin import export, i18n, listing, paging
from maskline.admin.filters import (
    OUTCOMES,
    AlertFilter,
    AuditFilter,
    InteractionFilter,
    PoolFilter,
    RevealFilter,
)
from maskline.admin.interfaces import InvalidAdminInput
from maskline.admin.queries import audit_row, binding_row, owner_use, pool_health
from maskline.admin.views import _ctx, _me, bp, requires
from maskline.audit import head
from maskline.audit.interfaces import AuditEntry
from maskline.numbers.models import RelayNumber
from maskline.redaction import redact_phone_numbers


@bp.errorhandler(InvalidAdminInput)
def _bad_filter(error: InvalidAdminInput) -> ResponseReturnValue:
    """A filter, cursor or selection that cannot be used: say which field, change nothing."""
    return render_template("admin/error.html", title=_("Not understood"), message=i18n.error_text(error)), 400


def _cursor() -> paging.Cursor:
    return paging.Cursor(after=request.args.get("after") or None, before=request.args.get("before") or None)


def _zone() -> Any:
    return i18n.console_zone()


def _region() -> str:
    region: str = _ctx().services.settings.default_region
    return region


def _interaction_filter(session: Any) -> InteractionFilter:
    f = InteractionFilter.read(request.args, zone=_zone(), region=_region())
    # Only a number of the pool: any other is refused before it is used (or
    # recorded with an export), since it may be a party's.
    if f.relay is not None and session.get(RelayNumber, f.relay) is None:
        raise InvalidAdminInput("relay", "is not a number of the pool")
    return f


# -- pages -------------------------------------------------------------------------


@bp.get("/bindings")
@requires("read")
def bindings() -> ResponseReturnValue:
    services = _ctx().services
    query = request.args.get("q", "")
    found = page = None
    if query.strip():
        now = services.clock()
        with services.db.session() as db:
            found = listing.search_bindings(db, query, region=_region())
            page = paging.page(
                db, found.select, listing.BINDINGS, cursor=_cursor(), convert=lambda b: binding_row(b, now)
            )
    return render_template(
        "admin/bindings.html", query=query, result=found, page=page, args=found.args() if found else {}
    )


@bp.get("/interactions")
@requires("read")
def interactions() -> ResponseReturnValue:
    services = _ctx().services
    with services.db.session() as db:
        f = _interaction_filter(db)
        page = paging.page(
            db, listing.interactions_select(f), listing.INTERACTIONS, cursor=_cursor(), convert=paging.as_is
        )
        db.expunge_all()
    return render_template(
        "admin/interactions.html", rows=page.rows, page=page, f=f, args=f.args(), outcomes=OUTCOMES
    )


@bp.get("/alerts")
@requires("read")
def alerts() -> ResponseReturnValue:
    services = _ctx().services
    f = AlertFilter.read(request.args)
    with services.db.session() as db:
        page = paging.page(
            db, listing.alerts_select(f), listing.ALERTS, cursor=_cursor(), convert=listing.alert_view
        )
        kinds = listing.alert_kinds(db, f.kind)
    return render_template("admin/alerts.html", rows=page.rows, page=page, f=f, args=f.args(), kinds=kinds)


@bp.get("/audit")
@requires("read")
def audit() -> ResponseReturnValue:
    services = _ctx().services
    f = AuditFilter.read(request.args, zone=_zone())
    with services.db.session() as db:
        # Unfiltered, the total is the newest seq (seqs are dense from 1): one
        # index lookup, where a count would read the whole chain on each view.
        total = None if f.args() else listing.audit_length(db)
        page = paging.page(
            db, listing.audit_select(f), listing.AUDIT, cursor=_cursor(), convert=audit_row, total=total
        )
        # From the newest signed checkpoint: a view costs the same however
        # long the chain is (the full walk is `maskline audit verify`).
        verified = head.console_check(db, services.audit, services.settings)
    return render_template(
        "admin/audit.html", rows=page.rows, page=page, f=f, args=f.args(), verified=verified
    )


@bp.get("/pool")
@requires("read")
def pool() -> ResponseReturnValue:
    services = _ctx().services
    settings = services.settings
    f = PoolFilter.read(request.args)
    now = services.clock()
    with services.db.session() as db:
        regions = pool_health(
            db, now=now, cooldown=settings.cooldown, per_number=settings.max_bindings_per_number
        )
        page = paging.page(db, listing.pool_select(f), listing.POOL, cursor=_cursor(), convert=paging.as_is)
        live = listing.live_counts(db, [n.e164 for n in page.rows], now=now)
        owners = owner_use(db, now=now, default_cap=settings.owner_max_live_bindings)
        db.expunge_all()
    return render_template(
        "admin/pool.html", regions=regions, page=page, live=live, f=f, args=f.args(), owners=owners
    )


@bp.get("/reveals")
@requires("reveal")
def reveals() -> ResponseReturnValue:
    ctx = _ctx()
    f = RevealFilter.read(request.args)
    with ctx.services.db.session() as db:
        page = paging.page(
            db, listing.reveals_select(f.status), listing.REVEALS, cursor=_cursor(), convert=paging.as_is
        )
        ids = [r.id for r in page.rows]
    # The reveal service names the people of each request (one page's worth).
    rows = [ctx.reveals.get(request_id) for request_id in ids]
    return render_template("admin/reveals.html", rows=rows, page=page, f=f, args=f.args())


# -- exports -----------------------------------------------------------------------


def _download(
    name: str,
    subject: str,
    table: export.Table,
    query: Select[Any],
    keyset: paging.Keyset,
    used: dict[str, str],
) -> Response:
    """Record the export (list and filter), then stream the file."""
    services = _ctx().services
    with services.db.session() as db:
        services.audit.append(
            db, AuditEntry(actor=_me().actor, action="admin.export", subject=subject, data={"filter": used})
        )
    rows: Iterable[Any] = paging.every(services.db.session, query, keyset)
    body = stream_with_context(table.csv(rows))
    response = Response(body, mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@bp.get("/bindings.csv")
@requires("read")
@requires("export")
def bindings_csv() -> ResponseReturnValue:
    services = _ctx().services
    with services.db.session() as db:
        found = listing.search_bindings(db, request.args.get("q", ""), region=_region())
        in_pool = found.relay is not None and db.get(RelayNumber, found.relay) is not None
    query = found.relay if in_pool and found.relay else redact_phone_numbers(found.query, region=_region())
    used = {"q": query, "matched_by": found.matched_by} if found.query else {}
    return _download(
        "maskline-bindings.csv", "bindings", export.BINDINGS, found.select, listing.BINDINGS, used
    )


@bp.get("/interactions.csv")
@requires("read")
@requires("export")
def interactions_csv() -> ResponseReturnValue:
    with _ctx().services.db.session() as db:
        f = _interaction_filter(db)
    return _download(
        "maskline-interactions.csv",
        "interactions",
        export.INTERACTIONS,
        listing.interactions_select(f),
        listing.INTERACTIONS,
        f.args(),
    )


@bp.get("/audit.csv")
@requires("read")
@requires("export")
def audit_csv() -> ResponseReturnValue:
    f = AuditFilter.read(request.args, zone=_zone())
    return _download(
        "maskline-audit.csv", "audit", export.AUDIT, listing.audit_select(f), listing.AUDIT, f.args()
    )


@bp.get("/alerts.csv")
@requires("read")
@requires("export")
def alerts_csv() -> ResponseReturnValue:
    f = AlertFilter.read(request.args)
    return _download(
        "maskline-alerts.csv", "alerts", export.ALERTS, listing.alerts_select(f), listing.ALERTS, f.args()
    )


@bp.get("/pool.csv")
@requires("read")
@requires("export")
def pool_csv() -> ResponseReturnValue:
    f = PoolFilter.read(request.args)
    return _download("maskline-pool.csv", "pool", export.POOL, listing.pool_select(f), listing.POOL, f.args())


@bp.get("/reveals.csv")
@requires("reveal")
@requires("export")
def reveals_csv() -> ResponseReturnValue:
    f = RevealFilter.read(request.args)
    return _download(
        "maskline-reveals.csv",
        "reveals",
        export.REVEALS,
        listing.reveals_select(f.status),
        listing.REVEALS,
        f.args(),
    )
