"""CSV downloads of console tables, in the console's language and time zone.

Headers and stored codes are translated as on the page; times carry their
offset. A cell that a spreadsheet would run as a formula (it starts with
``= + - @``, a tab or a carriage return) is prefixed with ``'``, so that a
reason typed into the console cannot become a formula on an auditor's
machine (OWASP's CSV injection advice).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from flask_babel import gettext as _

from maskline.admin import i18n
from maskline.admin.queries import AuditRow
from maskline.webhooks.models import Interaction

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    # A byte-order mark: spreadsheet programs then read the Chinese as UTF-8.
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([_cell(h) for h in header])
    writer.writerows([_cell(v) for v in row] for row in rows)
    return out.getvalue()


def audit_csv(rows: Iterable[AuditRow]) -> str:
    """The audit log page's table (seq, when, who, what, subject, why)."""
    header = ["#", _("When"), _("Who"), _("What"), _("Subject"), _("Why")]
    return _csv(
        header,
        (
            (
                r.seq,
                i18n.when(r.at, seconds=True),
                i18n.actor(r.actor),
                r.action,
                i18n.label(r.subject),
                i18n.reason(r.reason),
            )
            for r in rows
        ),
    )


def interactions_csv(rows: Iterable[Interaction]) -> str:
    """The interactions page's table."""
    header = [
        _("When"),
        _("Binding"),
        _("Owner"),
        _("Type"),
        _("From"),
        _("To"),
        _("Status"),
        _("Duration (s)"),
    ]
    return _csv(
        header,
        (
            (
                i18n.when(i.started_at, seconds=True),
                i.binding_id,
                i18n.owner(i.owner),
                i18n.label(i.type),
                i18n.label(i.from_role),
                i18n.label(i.to_role),
                i18n.label(i.status),
                "" if i.duration is None else i.duration,
            )
            for i in rows
        ),
    )
