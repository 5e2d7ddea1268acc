"""Replacing a party of a live binding in place (Alibaba's updateNoA / updateNoB).

The binding keeps its id, relay number, order and expiry; only the party
changes. SQL holds the new party's vault token under the same role, and one
Lua script (``lua/replace.lua``) moves the routes on X atomically: the new
party's route takes the replaced one's entry, the peer's route points at the
new party, and the replaced party's route is deleted, so from then on it
reaches no one through X. A new party that is on X already (in any binding)
or cooling down there is refused with :class:`PartyConflict`, as a bind is.

Order of work: SQL checks and changes in one transaction, the script last
before the commit; if the commit then fails, the script runs backwards.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from maskline.audit.interfaces import AuditEntry
from maskline.numbers.interfaces import (
    BindingNotFound,
    BindingNotLive,
    InvalidRequest,
    NumbersError,
    RoutingUnavailable,
)
from maskline.numbers.models import Binding, BindingMember, RelayNumber
from maskline.numbers.rebuild import member_index
from maskline.numbers.routes import _load, epoch, pack_binding_id, pack_token, route_key
from maskline.redis_backend import REDIS_ERRORS

log = logging.getLogger(__name__)
CONFLICT = "the number is already bound on this relay number, or cooling down there"


class PartyConflict(NumbersError):
    """The new party is already bound on the binding's relay number, or cooling down there."""


@dataclass(frozen=True, kw_only=True)
class Replaced:
    binding_id: str
    role: str
    changed: bool  # False: the new number was the party's already


class PartyReplacer:
    """``replace(binding_id, role=..., number=...)`` over the binding's SQL rows and its routes."""

    def __init__(
        self, *, db: Any, vault: Any, routes: Any, audit: Any, clock: Any, cooldown: dt.timedelta
    ) -> None:
        self.db = db
        self.vault = vault
        self.routes = routes
        self.audit = audit
        self.clock = clock
        self.cooldown = cooldown
        self._script = routes.client.register_script(_load("replace"))

    def _move(
        self, relay: str, *, binding_id: str, version: int, old: bytes, new: bytes, token: str, peer: bytes
    ) -> str:
        args = [
            pack_binding_id(binding_id),
            version,
            epoch(self.clock()),
            int(self.cooldown.total_seconds()),
            old,
            new,
            pack_token(token),
            peer,
        ]
        try:
            result = self._script(keys=[route_key(relay)], args=args)
        except REDIS_ERRORS as exc:
            raise RoutingUnavailable(f"routing store unavailable: {type(exc).__name__}") from None
        outcome = result[0]
        return outcome.decode() if isinstance(outcome, bytes) else str(outcome)

    def _held_in_sql(self, session: Session, binding: Binding, token: str, now: dt.datetime) -> bool:
        """Whether ``token`` is a party of a binding on the same relay number,
        live or ended within the cool-down (what SQL knows; Redis is asked too)."""
        found = session.scalar(
            select(Binding.id)
            .join(BindingMember, BindingMember.binding_id == Binding.id)
            .where(
                Binding.relay_number == binding.relay_number,
                BindingMember.kind == "party",
                BindingMember.token == token,
                or_(Binding.status == "active", Binding.ended_at > now - self.cooldown),
            )
            .limit(1)
        )
        return found is not None

    def replace(
        self,
        binding_id: str,
        *,
        owner: str,
        role: str,
        number: str,
        field: str,
        region: str | None,
        actor: str,
    ) -> Replaced:
        """Give ``role`` of an ``axb`` binding another number (``field`` names
        it in errors). Raises InvalidRequest, BindingNotFound, BindingNotLive,
        PartyConflict or RoutingUnavailable; nothing changed then."""
        e164 = self.vault.normalize(number, field=field, region=region)
        moved: dict[str, Any] = {}
        try:
            changed = self._replace(binding_id, owner, role, e164, field, actor, moved)
        except Exception:
            if moved:
                # SQL kept the old party (its commit failed): move the routes back.
                try:
                    self._move(
                        moved["relay"],
                        binding_id=binding_id,
                        version=moved["version"],
                        old=moved["new"],
                        new=moved["old"],
                        token=moved["old_token"],
                        peer=moved["peer"],
                    )
                except NumbersError:
                    log.warning("could not move the routes of %s back after a failed commit", binding_id)
            raise
        return Replaced(binding_id=binding_id, role=role, changed=changed)

    def _replace(
        self, binding_id: str, owner: str, role: str, e164: str, field: str, actor: str, moved: dict[str, Any]
    ) -> bool:
        now = self.clock()
        with self.db.session() as session:
            if session.get(RelayNumber, e164) is not None:
                raise InvalidRequest(field, "is a relay number of this pool; relay numbers cannot be parties")
            binding = session.get(Binding, binding_id, with_for_update=True)
            if binding is None or binding.owner != owner:
                raise BindingNotFound(f"no binding {binding_id}")
            if not binding.is_live(now):
                raise BindingNotLive(f"binding {binding_id} has ended")
            if binding.mode != "axb":
                raise InvalidRequest(field, "only a binding of two parties (AXB) can change a party")
            parties = {m.role: m for m in binding.parties}
            member = parties.get(role)
            peers = [m for r, m in parties.items() if r != role]
            if member is None or len(peers) != 1:
                raise InvalidRequest(field, "the subscription has no such party")
            peer = peers[0]
            token = self.vault.put_normalized(session, e164).token
            if token == member.token:
                return False
            if token == peer.token or self._held_in_sql(session, binding, token, now):
                raise PartyConflict(
                    f"{field}: the number is already bound on this relay number, or cooling down"
                )
            old_token = member.token
            old_index = member_index(session, self.vault, old_token)
            peer_index = member_index(session, self.vault, peer.token)
            member.token = token
            binding.version += 1
            session.flush()
            new_index = member_index(session, self.vault, token)
            relay, version = binding.relay_number, binding.version
            outcome = self._move(
                relay,
                binding_id=binding_id,
                version=version,
                old=old_index,
                new=new_index,
                token=token,
                peer=peer_index,
            )
            if outcome == "busy":
                raise PartyConflict(
                    f"{field}: the number is already bound on this relay number, or cooling down"
                )
            if outcome == "unavailable":
                raise RoutingUnavailable(f"routing store lost its data for {relay}; rebuild needed")
            if outcome != "ok":
                raise BindingNotLive(f"binding {binding_id} is not live in the routing store")
            moved.update(
                relay=relay,
                version=version,
                old=old_index,
                new=new_index,
                old_token=old_token,
                peer=peer_index,
            )
            self.audit.append(
                session,
                AuditEntry(
                    actor=actor,
                    action="binding.party_replaced",
                    subject=binding_id,
                    data={"owner": owner, "role": role, "relay_number": relay},
                ),
            )
        return True
