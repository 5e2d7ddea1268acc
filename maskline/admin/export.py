"""CSV downloads of console lists, in the console's language and time zone.

Each list's columns are what its page shows: ids, relay numbers (public),
roles, statuses, times, never a party number (no list has one to give).
Headers and stored codes are translated as on the page; times carry their
offset. A cell that a spreadsheet would run as a formula (it starts with
``= + - @``, a tab or a carriage return) is prefixed with ``'``, so that a
reason typed into the console cannot become a formula on an auditor's
machine (OWASP's CSV injection advice).

Output is a generator of text chunks: the view streams it, so a list of a
million rows costs one batch of memory, not the whole file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _

from maskline.admin import i18n
from maskline.admin.listing import alert_view
from maskline.admin.queries import AuditRow, audit_row

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Rows written per chunk sent to the client.
CHUNK_ROWS = 200


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def stream(header: Sequence[str], rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """A CSV file in chunks: a byte-order mark and the header first (so that
    spreadsheet programs read the Chinese as UTF-8), then rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    out.write("\ufeff")
    writer.writerow([_cell(h) for h in header])
    for i, row in enumerate(rows, start=1):
        writer.writerow([_cell(v) for v in row])
        if i % CHUNK_ROWS == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


@dataclass(frozen=True)
class Table:
    """A list's CSV shape: its header (translated when called) and one row's cells."""

    header: Callable[[], list[str]]
    row: Callable[[Any], Sequence[object]]

    def csv(self, rows: Iterable[Any]) -> Iterator[str]:
        return stream(self.header(), (self.row(r) for r in rows))


def _audit(r: AuditRow) -> Sequence[object]:
    return (
        r.seq,
        i18n.when(r.at, seconds=True),
        i18n.actor(r.actor),
        r.action,
        i18n.label(r.subject),
        i18n.reason(r.reason),
    )


AUDIT = Table(
    header=lambda: ["#", _("When"), _("Who"), _("What"), _("Subject"), _("Why")],
    row=lambda record: _audit(audit_row(record)),
)

INTERACTIONS = Table(
    header=lambda: [
        _("When"),
        _("Binding"),
        _("Owner"),
        _("Type"),
        _("From"),
        _("To"),
        _("Status"),
        _("Duration (s)"),
    ],
    row=lambda i: (
        i18n.when(i.started_at, seconds=True),
        i.binding_id,
        i18n.owner(i.owner),
        i18n.label(i.type),
        i18n.label(i.from_role),
        i18n.label(i.to_role),
        i18n.label(i.status),
        "" if i.duration is None else i.duration,
    ),
)

BINDINGS = Table(
    header=lambda: [
        _("Binding"),
        _("Order"),
        _("Owner"),
        _("Mode"),
        _("Relay number"),
        _("Ext."),
        _("Status"),
        _("Created"),
        _("Expires"),
        _("Ended"),
    ],
    row=lambda b: (
        b.id,
        b.order_id,
        i18n.owner(b.owner),
        i18n.label(b.mode),
        b.relay_number,
        b.extension or "",
        i18n.label(b.status),
        i18n.when(b.created_at, seconds=True),
        i18n.when(b.expires_at, seconds=True),
        i18n.when(b.ended_at, seconds=True),
    ),
)


def _alert(row: Any) -> Sequence[object]:
    a = alert_view(row)
    detail = "; ".join(f"{i18n.label(k)}: {v}" for k, v in a.detail.items())
    return (
        i18n.when(a.raised_at, seconds=True),
        i18n.label(a.kind),
        a.subject,
        a.count,
        a.threshold,
        i18n.when(a.window_start, seconds=True),
        detail,
        a.acknowledged_by or "",
        i18n.when(a.acknowledged_at, seconds=True),
    )


ALERTS = Table(
    header=lambda: [
        _("Raised"),
        _("Kind"),
        _("Subject"),
        _("Count"),
        _("Threshold"),
        _("Window from"),
        _("Detail"),
        _("Acknowledged by"),
        _("Acknowledged"),
    ],
    row=_alert,
)

POOL = Table(
    header=lambda: [_("Relay number"), _("Country"), _("Area"), _("Status"), _("Added")],
    row=lambda n: (n.e164, n.country, n.area, i18n.label(n.status), i18n.when(n.created_at, seconds=True)),
)

REVEALS = Table(
    header=lambda: [
        _("Request"),
        _("Binding"),
        _("Party"),
        _("Status"),
        _("Asked"),
        _("Decided"),
        _("Viewed"),
    ],
    row=lambda r: (
        r.id,
        r.binding_id,
        i18n.label(r.role),
        i18n.label(r.status),
        i18n.when(r.requested_at, seconds=True),
        i18n.when(r.decided_at, seconds=True),
        i18n.when(r.viewed_at, seconds=True),
    ),
)
