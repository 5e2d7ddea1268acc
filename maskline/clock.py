"""Time as a dependency: services take a clock so tests pass time in, never sleep."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Protocol


class Clock(Protocol):
    def __call__(self) -> dt.datetime:
        """The current time, timezone-aware UTC."""
        ...


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class FixedClock:
    """A clock that only moves when told to (for tests and simulations)."""

    def __init__(self, start: dt.datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> dt.datetime:
        self.now += dt.timedelta(**delta)
        return self.now


def format_local(when: dt.datetime, zone: str | dt.tzinfo, *, seconds: bool = False) -> str:
    """``when`` in ``zone`` with its offset, as people read it: ``2026-12-08 07:06 +08:00``.

    For consoles and CLI tables; machine interfaces keep ISO 8601 UTC. A
    naive ``when`` is taken as UTC (SQLite hands some back so).
    """
    tz = zoneinfo.ZoneInfo(zone) if isinstance(zone, str) else zone
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    local = when.astimezone(tz)
    offset = local.utcoffset() or dt.timedelta(0)
    sign = "-" if offset < dt.timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    stamp = local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    return f"{stamp} {sign}{minutes // 60:02d}:{minutes % 60:02d}"
