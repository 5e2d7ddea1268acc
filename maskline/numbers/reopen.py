"""Reopening an ended two-party binding on its own relay number (Twilio
Proxy's closed -> in-progress).

The binding keeps its id, relay number and parties; it gets a new expiry.
Its own cool-down tombstones on X are removed first (a binding's cool-down
protects other bindings from its parties, not the binding from itself),
then X is claimed again with the claim script every bind uses: a party that
is on X in another live binding, or cooling down there from another
binding, or a full X, refuses the reopening (:class:`ReopenRefused`), and
nothing changes in SQL. If the SQL commit fails after the claim, the claim
is released.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select

from maskline.audit.interfaces import AuditEntry
from maskline.numbers.interfaces import BindingNotFound, InvalidRequest, NumbersError
from maskline.numbers.models import Binding, BindingMember
from maskline.numbers.rebuild import member_index
from maskline.numbers.routes import Party, epoch

log = logging.getLogger(__name__)


class ReopenRefused(NumbersError):
    """A party is on the relay number in another binding (or cooling down there), or it is full."""


class Reopener:
    """``reopen(binding_id, ...)`` over the binding's SQL rows and its routes."""

    def __init__(self, *, db: Any, vault: Any, routes: Any, audit: Any, clock: Any, policy: Any) -> None:
        self.db = db
        self.vault = vault
        self.routes = routes
        self.audit = audit
        self.clock = clock
        self.policy = policy

    def reopen(self, binding_id: str, *, owner: str, expires_at: dt.datetime, actor: str) -> bool:
        """Make an ended ``axb`` binding live again until ``expires_at``.
        False if it is live already. Raises BindingNotFound, InvalidRequest,
        ReopenRefused or RoutingUnavailable (nothing changed then)."""
        claimed: dict[str, Any] = {}
        try:
            return self._reopen(binding_id, owner, expires_at, actor, claimed)
        except Exception:
            if claimed:
                try:
                    self.routes.release(
                        claimed["relay"],
                        binding_id=binding_id,
                        extension=None,
                        indexes=claimed["indexes"],
                        owner=owner,
                    )
                except NumbersError:
                    log.warning("could not release the claim of %s after a failed commit", binding_id)
            raise

    def _reopen(
        self, binding_id: str, owner: str, expires_at: dt.datetime, actor: str, claimed: dict[str, Any]
    ) -> bool:
        now = self.clock()
        if expires_at <= now:
            raise InvalidRequest("expires_at", "is in the past")
        with self.db.session() as session:
            binding = session.get(Binding, binding_id, with_for_update=True)
            if binding is None or binding.owner != owner:
                raise BindingNotFound(f"no binding {binding_id}")
            if binding.is_live(now):
                return False
            if binding.mode != "axb":
                raise InvalidRequest("mode", "only a binding of two parties can be reopened")
            parties = binding.parties
            tokens = [m.token for m in parties]
            elsewhere = session.scalar(
                select(Binding.id)
                .join(BindingMember, BindingMember.binding_id == Binding.id)
                .where(
                    Binding.relay_number == binding.relay_number,
                    Binding.id != binding.id,
                    Binding.status == "active",
                    Binding.expires_at > now,
                    BindingMember.kind == "party",
                    BindingMember.token.in_(tokens),
                )
                .limit(1)
            )
            if elsewhere is not None:
                raise ReopenRefused("a participant is on this number in another live session")
            indexes = [member_index(session, self.vault, t) for t in tokens]
            relay = binding.relay_number
            binding.status, binding.ended_at, binding.purged_at = "active", None, None
            binding.expires_at = expires_at
            binding.version += 1
            session.flush()
            # Its own tombstones go first: its own cool-down does not block it.
            self.routes.release(relay, binding_id=binding_id, extension=None, indexes=indexes)
            result = self.routes.claim(
                relay,
                binding_id=binding_id,
                version=binding.version,
                expires=epoch(expires_at),
                mode="axb",
                parties=[
                    Party(index=i, role=m.role, token=m.token) for i, m in zip(indexes, parties, strict=True)
                ],
                now=epoch(now),
                cooldown=int(self.policy.cooldown.total_seconds()),
                cap=self.policy.cap,
                # A reopened session is a live binding again: under the owner's cap.
                owner=owner,
                owner_cap=self.policy.owner_max_live,
            )
            if result.outcome == "owner_limit":
                raise ReopenRefused(
                    f"the owner has reached its cap of {result.limit} live bindings (owner_limit_reached)"
                )
            if result.outcome != "ok":
                raise ReopenRefused(f"the number cannot take the session again ({result.outcome})")
            claimed.update(relay=relay, indexes=indexes)
            self.audit.append(
                session,
                AuditEntry(
                    actor=actor,
                    action="binding.reopened",
                    subject=binding_id,
                    data={"owner": owner, "relay_number": relay, "expires_at": expires_at.isoformat()},
                ),
            )
        return True
