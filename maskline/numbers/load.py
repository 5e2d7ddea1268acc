"""How full the pool is, per region (country and area): two aggregate queries.

A region's load is its live bindings over what its active numbers can hold
(``max_bindings_per_number`` each). The console's overview shows it, and the
worker hands it to the alerts (``pool_low`` when a region passes
:data:`POOL_LOW_SHARE`). Numbers are public; no party is read.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from maskline.numbers.models import Binding, RelayNumber

# A region past this share of its capacity is running low: new binds there
# will soon answer "pool exhausted" (a 409).
POOL_LOW_SHARE = 0.8


@dataclass(frozen=True, kw_only=True)
class RegionLoad:
    """One region's numbers, capacity and live bindings."""

    country: str
    area: str
    active_numbers: int
    capacity: int
    live_bindings: int
    # One relay number of the region: the console names the area's place by it.
    sample: str

    @property
    def region(self) -> str:
        """``CN:21``: how alerts and the console name the region."""
        return f"{self.country}:{self.area}"

    @property
    def share(self) -> float:
        """Live bindings over capacity; a region that holds live bindings
        but no active number (all locked or retired) is full."""
        if self.capacity <= 0:
            return 1.0 if self.live_bindings else 0.0
        return self.live_bindings / self.capacity

    @property
    def low(self) -> bool:
        return self.share > POOL_LOW_SHARE


def region_loads(session: Session, *, now: dt.datetime, per_number: int) -> list[RegionLoad]:
    """Every region of the pool with its load, ordered by country and area.

    Two GROUP BY queries: numbers per region (indexed by country and area),
    and live bindings per region (``ix_bindings_status_expires``), however
    large the pool and the bindings table are.
    """
    active = func.sum(case((RelayNumber.status == "active", 1), else_=0))
    numbers = session.execute(
        select(RelayNumber.country, RelayNumber.area, active, func.min(RelayNumber.e164)).group_by(
            RelayNumber.country, RelayNumber.area
        )
    ).all()
    live = dict(
        ((country, area), count)
        for country, area, count in session.execute(
            select(RelayNumber.country, RelayNumber.area, func.count())
            .join(Binding, Binding.relay_number == RelayNumber.e164)
            .where(Binding.status == "active", Binding.expires_at > now)
            .group_by(RelayNumber.country, RelayNumber.area)
        )
    )
    loads = [
        RegionLoad(
            country=country,
            area=area,
            active_numbers=int(active_count or 0),
            capacity=int(active_count or 0) * per_number,
            live_bindings=int(live.get((country, area), 0)),
            sample=sample,
        )
        for country, area, active_count, sample in numbers
    ]
    return sorted(loads, key=lambda r: (r.country, r.area))
