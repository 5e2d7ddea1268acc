"""A session's Interactions as Twilio lists them: from the first webhook on.

SQL has an interaction from its first status callback; before that, the
connect path's Redis record is all there is (:mod:`maskline.webhooks.live`).
Twilio lists an Interaction as soon as the call or text reaches Proxy, with
its resources' live status, so the list merges the two: SQL's row where it
has one, else an unsaved row built from the record.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from maskline.webhooks.live import live_interactions
from maskline.webhooks.models import Interaction

log = logging.getLogger(__name__)

# The status of a resource that has reached Proxy and has had no callback yet:
# the inbound call is answered by Proxy's TwiML at once (Twilio's call status
# ``in-progress``); a text being relayed is ``sending`` (Twilio's Message status).
LIVE_CALL_STATUS = "in-progress"
LIVE_MESSAGE_STATUS = "sending"


def with_live(
    redis: Any, rows: list[Interaction], *, relay: str, binding_id: str, owner: str, now: int
) -> list[Interaction]:
    """``rows`` (SQL's, oldest first) with the binding's connects that SQL
    does not have yet, oldest first. If Redis cannot be read, SQL's alone
    (logged): a list is never refused for it."""
    try:
        live = live_interactions(redis, relay=relay, binding_id=binding_id, now=now)
    except Exception as exc:
        log.warning("live interactions of %s not read: %s", binding_id, type(exc).__name__)
        return rows
    known = {row.sid for row in rows}
    extra = [
        Interaction(
            sid=item.sid,
            binding_id=binding_id,
            owner=owner,
            type=item.kind,
            from_role=item.from_role,
            to_role=item.to_role,
            status=LIVE_CALL_STATUS if item.kind == "call" else LIVE_MESSAGE_STATUS,
            duration=None,
            started_at=item.started_at,
            ended_at=None,
        )
        for item in live
        if item.sid not in known
    ]
    if not extra:
        return rows
    return sorted([*rows, *extra], key=lambda row: (row.started_at, row.sid))


def latest_live(redis: Any, relay: str, binding_id: str, *, now: int) -> dt.datetime | None:
    """When the binding's latest interaction under way began (None: none, or
    Redis cannot be read, logged)."""
    try:
        live = live_interactions(redis, relay=relay, binding_id=binding_id, now=now)
    except Exception as exc:
        log.warning("live interactions of %s not read: %s", binding_id, type(exc).__name__)
        return None
    return live[-1].started_at if live else None
