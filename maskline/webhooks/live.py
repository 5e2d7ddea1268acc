"""Interactions under way, from the connect path's Redis records.

SQL holds an interaction from its first status callback on. Between the
webhook that connected it and that callback (for a call answered with only
a final callback, its whole life) only the decision record knows of it. The
step script adds each connect's SID to the binding's live index
(``ml:{X}:lv:<binding>``, see :mod:`maskline.webhooks.steps`); this module
reads it for the faces' interaction lists (Twilio Proxy's Interactions,
Alibaba's QueryCallStatus), which merge it with SQL (SQL wins for a SID it has).

Reading costs one ``ZRANGE`` and one ``HGETALL`` per entry, on the list's
path only: nothing is added to the connect path but the ``ZADD``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from maskline.webhooks.steps import live_key, record_key

# A Twilio call lasts at most four hours (<Dial timeLimit>'s default and
# maximum, 14400 s); an older entry whose final callback never came is over.
MAX_CALL_SECONDS = 4 * 3600
# A text is under way until its first status callback; a day covers a lost one.
MAX_MESSAGE_SECONDS = 24 * 3600


@dataclass(frozen=True, kw_only=True)
class LiveInteraction:
    """A call or text connected on a binding, with no status callback yet
    that ended it. No number: roles and the SID only."""

    sid: str
    kind: str  # "call" or "sms"
    from_role: str
    to_role: str
    started_at: dt.datetime


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def live_interactions(client: Any, *, relay: str, binding_id: str, now: int) -> list[LiveInteraction]:
    """The connects of ``binding_id`` on ``relay`` that are still under way,
    oldest first: connected (not overruled by an intercept), not over."""
    found = []
    for raw_sid, score in client.zrange(live_key(relay, binding_id), 0, -1, withscores=True):
        sid = _text(raw_sid)
        fields = {_text(k): v for k, v in client.hgetall(record_key(relay, sid)).items()}
        if "done" in fields or _text(fields.get("b", b"")) != binding_id:
            continue
        steps = [name[3:] for name in fields if name.startswith("lf:")]
        if not steps:
            continue  # the connect was overruled (an intercept said no): no interaction
        kind = "sms" if any(step.startswith("sms:") for step in steps) else "call"
        first_seen = int(_text(fields.get("t", b"")) or score)
        limit = MAX_MESSAGE_SECONDS if kind == "sms" else MAX_CALL_SECONDS
        if now - first_seen > limit:
            continue
        found.append(
            LiveInteraction(
                sid=sid,
                kind=kind,
                from_role=_text(fields.get("fr", b"")),
                to_role=_text(fields.get("tr", b"")),
                started_at=dt.datetime.fromtimestamp(first_seen, dt.UTC),
            )
        )
    return found
