"""Writing events to the outbox, and owners' events configuration.

:class:`Outbox` adds an ``outbox_events`` row in the caller's session, so an
event commits or rolls back with the change it describes. Only owners with
an events URL get events; the owners table is read in that same transaction.
A payload is built from an allow-list of fields: ids, roles, the relay
number and extension, statuses and times. Never a party number.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from maskline.api.models import ApiKey, OutboxEvent, Owner
from maskline.audit.interfaces import AuditEntry
from maskline.audit.services import AuditLog
from maskline.clock import Clock, system_clock
from maskline.db import Database
from maskline.events.interfaces import (
    EventType,
    InvalidEventsUrl,
    InvalidOwnerLimit,
    InvalidOwnerName,
    OwnerExists,
    OwnerLimitsUnavailable,
    OwnerNotFound,
)
from maskline.numbers.bind_sql import OutboxRow
from maskline.numbers.interfaces import BindingEvent, BindingView, PoolExhaustedEvent, RoutingUnavailable
from maskline.numbers.models import Binding
from maskline.outbound import IPNetwork, OutboundPolicy, RefusedUrl

if TYPE_CHECKING:
    from maskline.numbers.owner_limits import OwnerLimitSync

log = logging.getLogger(__name__)

# The same rule as API key owners (maskline.api.keys).
_OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,119}\Z")
MAX_URL = 500


def _timestamp(when: dt.datetime | None) -> str | None:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when is not None else None


def new_event_id() -> str:
    return "ev_" + secrets.token_hex(12)


def new_events_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class InteractionRecord(Protocol):
    """What :meth:`Outbox.interaction_completed` reads of an interaction row."""

    @property
    def sid(self) -> str: ...
    @property
    def binding_id(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def from_role(self) -> str: ...
    @property
    def to_role(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def duration(self) -> int | None: ...
    @property
    def started_at(self) -> dt.datetime: ...
    @property
    def ended_at(self) -> dt.datetime | None: ...


def _binding_data(view: BindingView) -> dict[str, object]:
    return {
        "binding_id": view.id,
        "order_id": view.order_id,
        "mode": view.mode,
        "relay_number": view.relay_number,
        "extension": view.extension,
        "roles": list(view.roles),
        "status": view.status,
        "created_at": _timestamp(view.created_at),
        "expires_at": _timestamp(view.expires_at),
        "delivered_at": _timestamp(view.delivered_at),
    }


def _event_data(event: BindingEvent) -> dict[str, object]:
    data = _binding_data(event.binding)
    if event.type != "binding.created":
        data["ended_at"] = _timestamp(event.at)
    return data


InteractionListener = Callable[[Session, InteractionRecord], None]


class Outbox:
    """Adds events to the outbox inside the caller's transaction."""

    def __init__(self, *, clock: Clock = system_clock) -> None:
        self._clock = clock
        self._interaction_listeners: list[InteractionListener] = []

    def on_interaction(self, listener: InteractionListener) -> None:
        """Call ``listener(session, interaction)`` from :meth:`interaction_completed`,
        in the interaction's transaction, whether or not its owner takes events:
        for outbox rows of other receivers (e.g. a compat face's call receipts).
        An exception rolls the transaction back, as any failing write would."""
        self._interaction_listeners.append(listener)

    def add(self, session: Session, *, owner: str, type: EventType, data: dict[str, object]) -> str | None:
        """Queue an event for ``owner``; its id, or None if the owner takes no events."""
        url = session.execute(select(Owner.events_url).where(Owner.name == owner)).scalar_one_or_none()
        if not url:
            return None
        return self.enqueue(session, owner=owner, type=type, data=data)

    def enqueue(self, session: Session, *, owner: str, type: str, data: dict[str, object]) -> str:
        """Queue an event for ``owner`` whether or not it has an events URL:
        for maskline's own receivers (e.g. alerts), which the caller knows
        are configured. Returns the event id."""
        event_id = new_event_id()
        payload = {"id": event_id, "type": type, "created_at": _timestamp(self._clock()), "data": data}
        return self.enqueue_body(
            session,
            owner=owner,
            type=type,
            body=json.dumps(payload, separators=(",", ":")),
            event_id=event_id,
        )

    def enqueue_body(
        self, session: Session, *, owner: str, type: str, body: str, event_id: str | None = None
    ) -> str:
        """Queue ``body``, sent as it is (a vendor's own shape, without maskline's
        envelope), signed and retried as any event. Returns the event id (also
        sent in Maskline-Event-Id)."""
        now = self._clock()
        event_id = event_id or new_event_id()
        session.add(
            OutboxEvent(
                event_id=event_id,
                owner=owner,
                type=type,
                payload=body,
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
        return event_id

    def on_binding_event(self, session: Session, event: BindingEvent | PoolExhaustedEvent) -> None:
        """The listener of :meth:`BindingService.on_event`."""
        if isinstance(event, PoolExhaustedEvent):
            self.add(
                session,
                owner=event.owner,
                type=event.type,
                data={
                    "owner": event.owner,
                    "order_id": event.order_id,
                    "mode": event.mode,
                    "role": event.role,
                    "needed": event.needed,
                    "at": _timestamp(event.at),
                },
            )
            return
        if event.type == "binding.updated":
            return  # not an owner event (the owner made the change itself)
        self.add(session, owner=event.binding.owner, type=event.type, data=_event_data(event))

    def binding_row(self, event: BindingEvent) -> OutboxRow | None:
        """The row :meth:`on_binding_event` would queue for ``event``, for the
        bind statement, which queues it only if the owner takes events
        (maskline.numbers.bind_sql)."""
        if event.type == "binding.updated":
            return None
        event_id = new_event_id()
        now = self._clock()
        payload = {
            "id": event_id,
            "type": event.type,
            "created_at": _timestamp(now),
            "data": _event_data(event),
        }
        return OutboxRow(
            event_id=event_id,
            owner=event.binding.owner,
            type=event.type,
            payload=json.dumps(payload, separators=(",", ":")),
            at=now,
        )

    def interaction_completed(self, session: Session, interaction: InteractionRecord) -> str | None:
        """A call or message reached its final status (called once per interaction)."""
        if not interaction.owner:
            return None
        for listener in self._interaction_listeners:
            listener(session, interaction)
        binding = session.execute(
            select(Binding.order_id, Binding.relay_number).where(Binding.id == interaction.binding_id)
        ).one_or_none()
        return self.add(
            session,
            owner=interaction.owner,
            type="interaction.completed",
            data={
                "interaction_id": interaction.sid,
                "binding_id": interaction.binding_id,
                "order_id": binding.order_id if binding else None,
                "relay_number": binding.relay_number if binding else None,
                "type": interaction.type,
                "from_role": interaction.from_role,
                "to_role": interaction.to_role,
                "status": interaction.status,
                "duration": interaction.duration,
                "started_at": _timestamp(interaction.started_at),
                "ended_at": _timestamp(interaction.ended_at),
            },
        )


# -- owners' events configuration ----------------------------------------------


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_events_url(url: str, *, allow_loopback_http: bool, allow: tuple[IPNetwork, ...] = ()) -> str:
    """``url`` if maskline may send events there, else InvalidEventsUrl.

    https only: events are signed, not encrypted, and say which orders are
    live. Plain http is for a receiver on this machine in development. The
    host passes the outbound guard (maskline.outbound): no loopback (outside
    development), private, link-local or reserved address, unless ``allow``
    (MASKLINE_OUTBOUND_ALLOW) names its range.
    """
    url = url.strip()
    if len(url) > MAX_URL:
        raise InvalidEventsUrl(f"the events URL is longer than {MAX_URL} characters")
    policy = OutboundPolicy(allow=allow, loopback=allow_loopback_http)
    try:
        return policy.check_url(url, field="the events URL")
    except RefusedUrl as exc:
        raise InvalidEventsUrl(str(exc)) from None


def display_url(url: str | None) -> str | None:
    """``url`` without its query string, which may carry a token: for output and logs."""
    if url is None:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}" + ("?…" if parts.query else "")


@dataclass(frozen=True, kw_only=True)
class OwnerInfo:
    """An owner's events configuration as shown: never the secret, never the query."""

    name: str
    events_url: str | None
    has_secret: bool
    created_at: dt.datetime | None
    updated_at: dt.datetime | None
    outbox: dict[str, int]
    # Its own cap on live bindings (0: none; None: MASKLINE_OWNER_MAX_LIVE_BINDINGS).
    max_live_bindings: int | None = None
    live_bindings: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "events_url": display_url(self.events_url),
            "events_secret": "set" if self.has_secret else None,
            "created_at": _timestamp(self.created_at),
            "updated_at": _timestamp(self.updated_at),
            "outbox": self.outbox,
            "max_live_bindings": self.max_live_bindings,
            "live_bindings": self.live_bindings,
        }


class OwnerService:
    """Sets, shows and clears where an owner's events go.

    With an ``audit`` log, a change made with an ``actor`` is recorded
    (``owner.events_set`` / ``owner.events_cleared``) in its transaction:
    the host of the URL and whether the secret changed, never the secret
    nor the URL's path and query.
    """

    def __init__(
        self,
        *,
        db: Database,
        clock: Clock = system_clock,
        allow_loopback_http: bool,
        allow: tuple[IPNetwork, ...] = (),
        audit: AuditLog | None = None,
        limits: Callable[[], OwnerLimitSync] | None = None,
    ) -> None:
        """``allow``: MASKLINE_OUTBOUND_ALLOW, ranges events URLs may point into;
        ``limits``: the owners' counts and caps in Redis (set-limits writes the
        cap there in its transaction, then recounts the owner)."""
        self.db = db
        self._clock = clock
        self.allow_loopback_http = allow_loopback_http
        self.allow = allow
        self.audit = audit
        self._limits = limits

    def _record(
        self, session: Session, actor: str | None, action: str, name: str, data: dict[str, object]
    ) -> None:
        if actor is None:
            return
        if self.audit is None:
            raise RuntimeError("this OwnerService has no audit log to record the actor in")
        self.audit.append(session, AuditEntry(actor=actor, action=action, subject=name, data=data))

    def create(self, name: str, *, actor: str) -> OwnerInfo:
        """A new owner with no events configured, audited as ``owner.create``.

        OwnerExists if it is known (as an owner row or by its API keys).
        """
        if not isinstance(name, str) or not _OWNER.match(name):
            raise InvalidOwnerName("owner: letters, digits and . _ : - only, at most 120 characters")
        now = self._clock()
        with self.db.session() as session:
            known = session.get(Owner, name) is not None or bool(
                session.scalar(select(func.count()).where(ApiKey.owner == name))
            )
            if known:
                raise OwnerExists(f"an owner named {name} exists")
            owner = Owner(name=name, created_at=now, updated_at=now)
            session.add(owner)
            session.flush()
            self._record(session, actor, "owner.create", name, {})
            return self._info(session, owner)

    def names(self) -> list[str]:
        """Every owner's name, sorted: those with a row and those known by API keys only."""
        with self.db.session() as session:
            rows = set(session.scalars(select(Owner.name)))
            rows |= set(session.scalars(select(ApiKey.owner).distinct()))
        return sorted(rows)

    def list_owners(self) -> list[OwnerInfo]:
        """Every owner as :meth:`show` describes it, sorted by name."""
        return [self.show(name) for name in self.names()]

    def set_events(
        self, name: str, *, url: str, rotate_secret: bool = False, actor: str | None = None
    ) -> tuple[OwnerInfo, str | None]:
        """Point ``name``'s events at ``url``; returns the new secret when one was
        made (the first time, or with ``rotate_secret``), else None."""
        if not _OWNER.match(name):
            raise InvalidOwnerName("owner: letters, digits and . _ : - only, at most 120 characters")
        url = check_events_url(url, allow_loopback_http=self.allow_loopback_http, allow=self.allow)
        now = self._clock()
        with self.db.session() as session:
            owner = session.get(Owner, name, with_for_update=True)
            if owner is None:
                owner = Owner(name=name, created_at=now, updated_at=now)
                session.add(owner)
            secret = None
            if rotate_secret or not owner.events_secret:
                secret = new_events_secret()
                owner.events_secret = secret
            owner.events_url = url
            owner.updated_at = now
            session.flush()
            data: dict[str, object] = {"host": urlsplit(url).hostname, "new_secret": secret is not None}
            self._record(session, actor, "owner.events_set", name, data)
            return self._info(session, owner), secret

    def set_limits(self, name: str, *, max_live_bindings: int | None, actor: str | None = None) -> OwnerInfo:
        """Give ``name`` its own cap on live bindings (0: none), or None to
        follow MASKLINE_OWNER_MAX_LIVE_BINDINGS. SQL and Redis change
        together (a Redis failure undoes it); the owner's count is then
        recounted from SQL. Bindings above a lowered cap stay; new binds
        wait until the owner is under it."""
        if not _OWNER.match(name):
            raise InvalidOwnerName("owner: letters, digits and . _ : - only, at most 120 characters")
        if max_live_bindings is not None and not 0 <= max_live_bindings <= 100_000_000:
            raise InvalidOwnerLimit("max_live_bindings: a whole number from 0 (no cap) to 100000000")
        now = self._clock()
        with self.db.session() as session:
            owner = session.get(Owner, name, with_for_update=True)
            if owner is None:
                owner = Owner(name=name, created_at=now, updated_at=now)
                session.add(owner)
            owner.max_live_bindings = max_live_bindings
            owner.updated_at = now
            session.flush()
            self._record(session, actor, "owner.limits_set", name, {"max_live_bindings": max_live_bindings})
            limits = self._limits() if self._limits is not None else None
            if limits is not None:
                try:
                    limits.counts.set_cap(name, max_live_bindings)
                except RoutingUnavailable:
                    raise OwnerLimitsUnavailable("Redis cannot be reached: nothing changed; retry") from None
            info = self._info(session, owner)
        if limits is not None:
            try:
                limits.reconcile(only=name)
            except RoutingUnavailable:  # the worker's next pass recounts it
                log.warning("could not recount owner %s now; the worker will", name)
        return info

    def show(self, name: str) -> OwnerInfo:
        with self.db.session() as session:
            owner = session.get(Owner, name)
            if owner is None:
                if session.scalar(select(func.count()).where(ApiKey.owner == name)):
                    # An owner known by its API keys only: no events configured.
                    return OwnerInfo(
                        name=name,
                        events_url=None,
                        has_secret=False,
                        created_at=None,
                        updated_at=None,
                        outbox=self._counts(session, name),
                    )
                raise OwnerNotFound(f"no owner {name}")
            return self._info(session, owner)

    def clear_events(self, name: str, *, actor: str | None = None) -> OwnerInfo:
        """Stop sending ``name`` events: URL and secret go; pending events fail."""
        with self.db.session() as session:
            owner = session.get(Owner, name, with_for_update=True)
            if owner is None:
                raise OwnerNotFound(f"no owner {name}")
            owner.events_url = None
            owner.events_secret = None
            owner.updated_at = self._clock()
            session.execute(
                update(OutboxEvent)
                .where(OutboxEvent.owner == name, OutboxEvent.status == "pending")
                .values(status="failed", last_error="events were turned off for this owner")
            )
            session.flush()
            self._record(session, actor, "owner.events_cleared", name, {})
            return self._info(session, owner)

    def _info(self, session: Session, owner: Owner) -> OwnerInfo:
        return OwnerInfo(
            name=owner.name,
            events_url=owner.events_url,
            has_secret=bool(owner.events_secret),
            created_at=owner.created_at,
            updated_at=owner.updated_at,
            outbox=self._counts(session, owner.name),
            max_live_bindings=owner.max_live_bindings,
            live_bindings=int(
                session.scalar(
                    select(func.count()).where(Binding.owner == owner.name, Binding.status == "active")
                )
                or 0
            ),
        )

    @staticmethod
    def _counts(session: Session, name: str) -> dict[str, int]:
        counts = {"pending": 0, "delivered": 0, "failed": 0}
        rows = session.execute(
            select(OutboxEvent.status, func.count())
            .where(OutboxEvent.owner == name)
            .group_by(OutboxEvent.status)
        )
        for status, count in rows:
            counts[status] = int(count)
        return counts
