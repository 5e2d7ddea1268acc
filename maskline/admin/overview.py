"""The figures of the console's landing page (/admin): what is happening now.

Every figure is an aggregate, cheap however large the tables grow:

* live bindings: a count over ``ix_bindings_status_expires``;
* binds, calls and texts per hour over 24 hours and 7 days: GROUP BY hour
  over a range of ``ix_bindings_created_at`` / ``ix_interactions_started_at``;
* refusals by reason: the hourly tallies the alerts thread keeps in Redis
  (:mod:`maskline.audit.tallies`), one pipeline;
* pool load per region: :func:`maskline.numbers.load.region_loads`;
* open alerts and pending reveals: counts of small tables.

No party number is read: counts, relay numbers (public) and codes only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Integer, func, select
from sqlalchemy.orm import Session

from maskline.admin.models import RevealRequest
from maskline.audit.models import Alert
from maskline.numbers.load import RegionLoad, region_loads
from maskline.numbers.models import Binding
from maskline.webhooks.models import Interaction

HOUR = dt.timedelta(hours=1)
DAY_HOURS = 24
WEEK_HOURS = 7 * 24


@dataclass(frozen=True, kw_only=True)
class Hourly:
    """Binds, calls and texts in each hour of a window, oldest first."""

    starts: list[dt.datetime]  # each hour's start (UTC)
    binds: list[int]
    calls: list[int]
    texts: list[int]

    def last(self, hours: int) -> Hourly:
        """The newest ``hours`` of this window."""
        return Hourly(
            starts=self.starts[-hours:],
            binds=self.binds[-hours:],
            calls=self.calls[-hours:],
            texts=self.texts[-hours:],
        )


@dataclass(frozen=True, kw_only=True)
class Overview:
    now: dt.datetime
    live_bindings: int
    # Exactly the last 24 hours (the charts count whole clock hours).
    calls_day: int
    day: Hourly
    week: Hourly
    # None: Redis could not answer (the page says so rather than show zeros).
    refusals_day: dict[str, int] | None
    refusals_week: dict[str, int] | None
    regions: list[RegionLoad]
    open_alerts: int
    pending_reveals: int

    @property
    def low_regions(self) -> list[RegionLoad]:
        return [r for r in self.regions if r.low]


def hour_of(column: Any, dialect: str) -> ColumnElement[Any]:
    """The whole hours since the epoch of a UTC time column, in SQL.

    Times are stored as naive UTC on both backends (maskline.db.UTCDateTime).
    """
    if dialect == "postgresql":
        return func.cast(func.floor(func.extract("epoch", column) / 3600), Integer)
    return func.cast(func.strftime("%s", column), Integer) / 3600


def _window(now: dt.datetime, hours: int) -> list[dt.datetime]:
    """The starts of the ``hours`` whole hours ending with the current one."""
    current = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    return [current - HOUR * (hours - 1 - i) for i in range(hours)]


def hourly(session: Session, *, now: dt.datetime, hours: int) -> Hourly:
    """Binds, calls and texts per hour over the last ``hours`` hours (this one included)."""
    starts = _window(now, hours)
    since = starts[0]
    first = int(since.timestamp()) // 3600
    dialect = session.get_bind().dialect.name

    def place(rows: Sequence[tuple[int, int]]) -> list[int]:
        counts = [0] * hours
        for hour, count in rows:
            if 0 <= int(hour) - first < hours:
                counts[int(hour) - first] += int(count)
        return counts

    bucket = hour_of(Binding.created_at, dialect)
    binds = session.execute(
        select(bucket, func.count()).where(Binding.created_at >= since).group_by(bucket)
    ).all()
    bucket = hour_of(Interaction.started_at, dialect)
    kinds = session.execute(
        select(Interaction.type, bucket, func.count())
        .where(Interaction.started_at >= since)
        .group_by(Interaction.type, bucket)
    ).all()
    return Hourly(
        starts=starts,
        binds=place([(h, c) for h, c in binds]),
        calls=place([(h, c) for kind, h, c in kinds if kind == "call"]),
        texts=place([(h, c) for kind, h, c in kinds if kind == "sms"]),
    )


def live_bindings(session: Session, *, now: dt.datetime) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Binding)
            .where(Binding.status == "active", Binding.expires_at > now)
        )
        or 0
    )


def calls_since(session: Session, since: dt.datetime) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Interaction)
            .where(Interaction.started_at >= since, Interaction.type == "call")
        )
        or 0
    )


def open_alerts(session: Session) -> int:
    return int(
        session.scalar(select(func.count()).select_from(Alert).where(Alert.acknowledged_at.is_(None))) or 0
    )


def pending_reveals(session: Session, *, now: dt.datetime) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(RevealRequest)
            .where(RevealRequest.status == "pending", RevealRequest.expires_at > now)
        )
        or 0
    )


RefusalReader = Callable[..., dict[str, int]]


def _refusals(read: RefusalReader, *, now: dt.datetime, hours: int) -> dict[str, int] | None:
    try:
        return read(since=_window(now, hours)[0], until=now)
    except Exception:
        # Redis down: the rest of the page still answers, and says this part cannot.
        return None


def build(session: Session, *, now: dt.datetime, per_number: int, refusals: RefusalReader) -> Overview:
    """Every figure of the overview, read now."""
    week = hourly(session, now=now, hours=WEEK_HOURS)
    return Overview(
        now=now,
        live_bindings=live_bindings(session, now=now),
        calls_day=calls_since(session, now - DAY_HOURS * HOUR),
        day=week.last(DAY_HOURS),
        week=week,
        refusals_day=_refusals(refusals, now=now, hours=DAY_HOURS),
        refusals_week=_refusals(refusals, now=now, hours=WEEK_HOURS),
        regions=region_loads(session, now=now, per_number=per_number),
        open_alerts=open_alerts(session),
        pending_reveals=pending_reveals(session, now=now),
    )
