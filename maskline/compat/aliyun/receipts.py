"""Call receipts in Alibaba's SecretReport shape, pushed through the outbox.

Two listeners, each running inside someone else's transaction:

* :meth:`Receipts.on_binding_event` (on the binding service): a binding this
  face made is marked with an :class:`AliyunSubscription` row, in the
  binding's own transaction, with the PoolKey it was asked for. The face
  says which bind is its own through :func:`binding_for`, a context
  variable set around its call to ``bind`` (the listener is told the
  binding's actor, and the actor must match). The row also keeps the
  bind's CallRestrict and AXG group; UpdateSubscription ``updateAxgGroup``
  changes the group in the allow-list update's own transaction, through
  :func:`regrouping`.
* :meth:`Receipts.interaction_completed` (on the outbox): a call on such a
  binding reached its final status; with a report URL configured, one
  outbox row for the reserved owner :data:`REPORT_OWNER` is added in the
  interaction's transaction. ``maskline worker`` sends it, signed, with the
  outbox's retries.

The body is what Alibaba's HTTP push sends: a JSON array of records (one
here). Fields that would carry a party number (``phone_no``, ``peer_no``)
carry it masked exactly as QuerySubscriptionDetail does (``+1**********``),
or ``****`` where maskline does not know which number it was. Messages get
no receipt.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from maskline.compat.aliyun.interfaces import REPORT_EVENT, REPORT_OWNER
from maskline.compat.aliyun.models import AliyunSubscription
from maskline.events.services import InteractionRecord
from maskline.numbers.interfaces import BindingEvent, PoolExhaustedEvent
from maskline.numbers.models import Binding, BindingMember
from maskline.vault.interfaces import VaultError

BEIJING = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
UNKNOWN = "****"
# Party A of a subscription: BindAxb's ``a``, the ``buyer`` of the axe modes.
A_ROLES = ("a", "buyer")
# Twilio's final call statuses as ITU-T Q.850 release causes, which is what
# Alibaba's release_cause carries.
RELEASE_CAUSES = {"completed": 16, "busy": 17, "no-answer": 19, "canceled": 16, "failed": 31}


@dataclass(frozen=True)
class _Binding:
    actor: str
    pool_key: str
    call_restrict: str | None = None
    group_id: int | None = None


@dataclass(frozen=True)
class _Regroup:
    actor: str
    binding_id: str
    group_id: int


_pending: contextvars.ContextVar[_Binding | None] = contextvars.ContextVar(
    "maskline_aliyun_binding", default=None
)
_regroup: contextvars.ContextVar[_Regroup | None] = contextvars.ContextVar(
    "maskline_aliyun_regroup", default=None
)


@contextlib.contextmanager
def binding_for(
    *, actor: str, pool_key: str, call_restrict: str | None = None, group_id: int | None = None
) -> Iterator[None]:
    """Within this block, a binding created by ``actor`` is the face's own
    (with its CallRestrict and, for AXG, its group G)."""
    token = _pending.set(_Binding(actor, pool_key, call_restrict, group_id))
    try:
        yield
    finally:
        _pending.reset(token)


@contextlib.contextmanager
def regrouping(*, actor: str, binding_id: str, group_id: int) -> Iterator[None]:
    """Within this block, an update of ``binding_id`` by ``actor`` makes
    ``group_id`` its group G, in the update's transaction."""
    token = _regroup.set(_Regroup(actor, binding_id, group_id))
    try:
        yield
    finally:
        _regroup.reset(token)


def beijing(when: dt.datetime) -> str:
    return when.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


class Receipts:
    """Marks the face's subscriptions and queues SecretReport receipts of their calls."""

    def __init__(self, *, vault: Any, outbox: Any, clock: Any, report: bool) -> None:
        """``report``: whether a report URL is configured (else nothing is queued)."""
        self.vault = vault
        self.outbox = outbox
        self.clock = clock
        self.report = report

    def on_binding_event(self, session: Session, event: BindingEvent | PoolExhaustedEvent) -> None:
        if not isinstance(event, BindingEvent):
            return
        if event.type == "binding.updated":
            regroup = _regroup.get()
            if regroup is not None and (event.actor, event.binding.id) == (regroup.actor, regroup.binding_id):
                subscription = session.get(AliyunSubscription, event.binding.id)
                if subscription is None:  # checked before the update: raising undoes it
                    raise LookupError("the subscription's row is gone")
                subscription.group_id = regroup.group_id
            return
        pending = _pending.get()
        if pending is None or event.type != "binding.created" or event.actor != pending.actor:
            return
        session.add(
            AliyunSubscription(
                binding_id=event.binding.id,
                pool_key=pending.pool_key,
                api_key_id=pending.actor.removeprefix("apikey:"),
                created_at=event.at,
                call_restrict=pending.call_restrict,
                group_id=pending.group_id,
            )
        )

    def interaction_completed(self, session: Session, interaction: InteractionRecord) -> None:
        if not self.report or interaction.type != "call":
            return
        subscription = session.get(AliyunSubscription, interaction.binding_id)
        if subscription is None:
            return
        binding = session.get(Binding, interaction.binding_id)
        if binding is None:
            return
        record = self.record(session, subscription, binding, interaction)
        self.outbox.enqueue_body(
            session,
            owner=REPORT_OWNER,
            type=REPORT_EVENT,
            body=json.dumps([record], separators=(",", ":"), ensure_ascii=False),
        )

    def record(
        self,
        session: Session,
        subscription: AliyunSubscription,
        binding: Binding,
        interaction: InteractionRecord,
    ) -> dict[str, Any]:
        """One SecretReport record; party numbers masked, times in Beijing time."""
        a_role = next((m.role for m in binding.parties if m.role in A_ROLES), None)
        a_calls = interaction.from_role == a_role
        peer_role = interaction.to_role if a_calls else interaction.from_role
        released = interaction.ended_at or self.clock()
        connected = interaction.status == "completed" and bool(interaction.duration)
        answered = released - dt.timedelta(seconds=interaction.duration or 0) if connected else released
        call_time = beijing(interaction.started_at)
        return {
            "pool_key": subscription.pool_key,
            "sub_id": binding.id,
            "call_id": interaction.sid,
            "out_id": binding.order_id,
            "phone_no": self._masked(session, binding, a_role),
            "secret_no": binding.relay_number,
            "peer_no": self._masked(session, binding, peer_role),
            # The callee always sees the relay number as caller ID.
            "called_display_no": binding.relay_number,
            # 0: phone_no called peer_no; 1: peer_no called phone_no.
            "call_type": 0 if a_calls else 1,
            "call_time": call_time,
            # Twilio does not say when the far leg started or rang: Alibaba's
            # own fallbacks (each equals the one before when unknown).
            "call_out_time": call_time,
            "ring_time": call_time,
            "free_ring_time": call_time,
            "start_time": beijing(answered),
            "release_time": beijing(released),
            # Who hung up is not in Twilio's status callback: 1 (the caller)
            # for a call cancelled before answer, else 0 (the platform).
            "release_dir": 1 if interaction.status == "canceled" else 0,
            "release_cause": RELEASE_CAUSES.get(interaction.status, 31),
        }

    def _masked(self, session: Session, binding: Binding, role: str | None) -> str:
        """The number of ``role`` on ``binding``, masked; ``****`` when maskline
        does not know which number it was (an AXN caller, one of several)."""
        from maskline.compat.aliyun.forms import mask

        members: list[BindingMember] = [m for m in binding.members if m.role == role]
        if len(members) != 1:
            return UNKNOWN
        try:
            return mask(self.vault.open(session, members[0].token))
        except VaultError:
            return UNKNOWN
