"""Binding changes into the audit chain, in the binding's own transaction.

:class:`BindingAuditor` listens to :meth:`BindingService.on_event`. Every
event with an actor (an API key, an admin, a CLI user) becomes a record:
``binding.created``, ``binding.updated``, ``binding.unbound`` or
``binding.expired``, whose subject is the binding id. Its data are public
facts only: owner, order id, mode, relay number, extension, roles, expiry,
and what an update changed. Never a party number, never a vault token
(a token is a party's stable identity across orders).

Events without an actor are maskline's own doing and are not recorded:

* the sweeper ending a binding at its expiry: that expiry was set by an
  audited bind or update, whose record carries ``expires_at``, so the chain
  already says when the binding would end; a record per expired binding
  would double the chain's growth (and its lock's traffic in every sweep)
  without naming anyone;
* an erase ending its party's bindings: the erase itself is audited
  (``vault.erase``, with its actor and reason) in the same transaction.

Register the auditor after every other listener (see ``build_numbers``): an
append takes the chain's head row, locked until the transaction commits, so
the later it is taken the shorter binds wait on one another. On PostgreSQL a
bind through the API appends its record in its one statement instead
(:meth:`BindingAuditor.prepared`, maskline.numbers.bind_sql).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from maskline.audit.interfaces import AuditEntry
from maskline.audit.services import AuditLog, PreparedRecord
from maskline.numbers.interfaces import BindingEvent, PoolExhaustedEvent


def _timestamp(when: dt.datetime | None) -> str | None:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when is not None else None


def binding_audit_data(event: BindingEvent) -> dict[str, object]:
    """The record's data for ``event``: an allow-list of public fields."""
    view = event.binding
    data: dict[str, object] = {
        "owner": view.owner,
        "order_id": view.order_id,
        "mode": view.mode,
        "relay_number": view.relay_number,
        "extension": view.extension,
    }
    if event.type == "binding.created":
        data.update(
            roles=list(view.roles),
            expires_at=_timestamp(view.expires_at),
            allow=view.allow,
            allowed_callers=view.allowed_callers,
            fallback_used=view.fallback_used,
            record=view.record,
        )
    elif event.type == "binding.updated":
        data["changes"] = dict(event.changes)
    else:
        data["ended_at"] = _timestamp(event.at)
    return data


class BindingAuditor:
    """Appends a record for every binding change that someone made."""

    def __init__(self, *, audit: AuditLog) -> None:
        self._audit = audit

    def on_binding_event(self, session: Session, event: BindingEvent | PoolExhaustedEvent) -> None:
        """The listener of :meth:`BindingService.on_event`."""
        entry = self.entry(event)
        if entry is not None:
            self._audit.append(session, entry)

    def prepared(self, event: BindingEvent) -> PreparedRecord | None:
        """The record :meth:`on_binding_event` would append, for the bind
        statement that appends it itself (maskline.numbers.bind_sql)."""
        entry = self.entry(event)
        return None if entry is None else self._audit.prepare(entry)

    @staticmethod
    def entry(event: BindingEvent | PoolExhaustedEvent) -> AuditEntry | None:
        """The record for ``event``, or None if it is not recorded."""
        if isinstance(event, PoolExhaustedEvent) or event.actor is None:
            return None  # not a change, or maskline's own (see the module docstring)
        return AuditEntry(
            actor=event.actor,
            action=event.type,
            subject=event.binding.id,
            reason=event.reason,
            data=binding_audit_data(event),
        )
