"""Time as a dependency: services take a clock so tests pass time in, never sleep."""

from __future__ import annotations

import datetime as dt
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
