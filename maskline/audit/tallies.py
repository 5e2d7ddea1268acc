"""Redis work the alerts thread does besides counting thresholds.

* Refusal tallies: calls and messages that reached no one, per reason and
  per hour (``ml:tally:refusals:<hour number>``, a hash of reason -> count,
  kept :data:`TALLY_KEEP`). The webhook path only queues a signal (see
  ``AlertService.refused``); the console's overview reads the hashes.
* Pool-low state: ``ml:alert:pool_low:<region>:raised`` exists while a
  region is past its threshold and its alert was raised, so the alert fires
  once per crossing (``SET NX``), and again only after the load fell back
  (the key is deleted) and crossed anew.

Every key holds one value: the pipelines run unchanged on Redis Cluster.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

TALLY_PREFIX = "ml:tally:refusals:"
HOUR = 3600
# Long enough for the overview's 7-day view, with a day to spare.
TALLY_KEEP = 8 * 24 * HOUR
# How long a raised pool_low stays remembered with no sweep refreshing it
# (the worker refreshes it every run while the region stays low).
POOL_LOW_KEEP = 7 * 24 * HOUR
# A refusal reason is a short code (``stranger``, ``no_binding`` ...), never input.
REASON = re.compile(r"^[a-z][a-z0-9_]{0,39}\Z")


def hour_number(at: dt.datetime) -> int:
    return int(at.timestamp()) // HOUR


def add_refusals(client: Any, refusals: Iterable[tuple[str, dt.datetime]]) -> None:
    """Add each (reason, time) to its hour's tally: one pipeline."""
    counts = Counter((reason, hour_number(at)) for reason, at in refusals)
    if not counts:
        return
    pipe = client.pipeline(transaction=False)
    for (reason, hour), count in counts.items():
        key = f"{TALLY_PREFIX}{hour}"
        pipe.hincrby(key, reason, count)
        pipe.expire(key, TALLY_KEEP)
    pipe.execute()


def refusals_by_reason(client: Any, *, since: dt.datetime, until: dt.datetime) -> dict[str, int]:
    """Refusals per reason in the hours from ``since`` up to ``until``: one pipeline."""
    first, last = hour_number(since), hour_number(until)
    pipe = client.pipeline(transaction=False)
    for hour in range(first, last + 1):
        pipe.hgetall(f"{TALLY_PREFIX}{hour}")
    totals: Counter[str] = Counter()
    for reply in pipe.execute():
        for reason, count in (reply or {}).items():
            name = reason.decode() if isinstance(reason, bytes) else str(reason)
            totals[name] += int(count)
    return dict(totals)


def pool_low_key(subject: str) -> str:
    return f"ml:alert:pool_low:{subject}:raised"


def newly_low(client: Any, regions: Sequence[tuple[str, bool]]) -> list[bool]:
    """For each (subject, low): whether this is a new crossing (raise an alert).

    A low region sets its key if absent (a crossing) and keeps it alive; a
    region back under the threshold deletes it, so its next crossing counts.
    """
    if not regions:
        return []
    pipe = client.pipeline(transaction=False)
    for subject, low in regions:
        if low:
            pipe.set(pool_low_key(subject), "1", nx=True, ex=POOL_LOW_KEEP)
            pipe.expire(pool_low_key(subject), POOL_LOW_KEEP)
        else:
            pipe.delete(pool_low_key(subject))
    replies = pipe.execute()
    crossed, position = [], 0
    for _subject, low in regions:
        crossed.append(bool(low and replies[position]))
        position += 2 if low else 1
    return crossed
