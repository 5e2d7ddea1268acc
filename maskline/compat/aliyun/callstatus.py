"""QueryCallStatus: the status of a subscription's latest call, live or ended.

SQL has a call from its first status callback on; a call just connected is
known only to the connect path's Redis record (:mod:`maskline.webhooks.live`).
The latest of the two is answered: SQL's row for a call it has (its status
word from Twilio's callbacks: ``ringing``, ``in-progress``, ``completed``,
``busy``, ``no-answer``, ...), else ``in-progress`` for a call Redis alone
knows (Proxy's TwiML has answered it, the far leg is being dialled).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from maskline.compat.aliyun.forms import mask
from maskline.numbers.interfaces import BindingView
from maskline.numbers.models import Binding
from maskline.numbers.routes import epoch
from maskline.vault.interfaces import VaultError
from maskline.webhooks.live import live_interactions
from maskline.webhooks.models import Interaction

log = logging.getLogger(__name__)

LIVE_STATUS = "in-progress"


@dataclass(frozen=True)
class CallStatus:
    status: str | None
    called: str | None  # masked


def latest_call(services: Any, view: BindingView, *, owner: str) -> CallStatus:
    """The subscription's latest call: its status word and the called party, masked."""
    with services.db.session() as session:
        call = session.scalars(
            select(Interaction)
            .where(Interaction.binding_id == view.id, Interaction.owner == owner)
            .where(Interaction.type == "call")
            .order_by(Interaction.started_at.desc(), Interaction.sid.desc())
            .limit(1)
        ).first()
        status, to_role = (call.status, call.to_role) if call is not None else (None, None)
        started = call.started_at if call is not None else None
        try:
            live = live_interactions(
                services.redis, relay=view.relay_number, binding_id=view.id, now=epoch(services.clock())
            )
        except Exception as exc:  # SQL's answer stands; the list is never refused for it
            log.warning("live calls of %s not read: %s", view.id, type(exc).__name__)
            live = []
        newer = [
            item
            for item in live
            if item.kind == "call"
            and (started is None or item.started_at > started)
            and item.sid != (call and call.sid)
        ]
        if newer:
            status, to_role = LIVE_STATUS, newer[-1].to_role
        if status is None:
            return CallStatus(None, None)
        binding = session.get(Binding, view.id)
        member = next((m for m in binding.members if m.role == to_role), None) if binding else None
        try:
            called = mask(services.vault.open(session, member.token)) if member else None
        except VaultError:
            called = "****"
        return CallStatus(status, called)
