"""The Twilio Proxy v1 face over maskline's bindings, vault, router and audit.

Mapping:

* a **Service** (KS) is a row of its owner: defaults and callback URLs;
* a **PhoneNumber** (PN) is a pool number added to a Service (its sid is
  derived from the E.164 form, so the same number has the same PN sid in
  every Service);
* a **Session** (KC) is an ``axb`` binding of the credentials' owner, made
  when its second Participant joins (``order_id`` is the session sid) on one
  of its Service's numbers (not reserved, unless a participant named it;
  matching ``geo_match_level``; per ``number_selection_behavior``), and
  ended when the session is closed, deleted or loses a participant. A
  ``ttl`` counts from the last interaction (moved by the worker);
* a **Participant** (KP) is a role of that binding (``participant1`` /
  ``participant2``): its number is sealed in the vault at once, the row keeps
  the token and a masked identifier only; its proxy identifier is the
  binding's relay number;
* an **Interaction** (KI) is a row of ``interactions`` of that binding;
* a **MessageInteraction** is an SMS from the relay number to a participant,
  sent through the Twilio REST client as click-to-call places calls.

Every method takes the owner: another owner's resources are not found.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import distinct, func, or_, select
from sqlalchemy.orm import Session

from maskline.audit.interfaces import AuditEntry
from maskline.compat.twilio.interfaces import (
    InvalidParameter,
    NoProxyNumber,
    ProxyError,
    ProxyRule,
    ResourceConflict,
    ResourceNotFound,
    ServiceUnavailable,
    TooManyRequests,
    derived_sid,
    is_sid,
    new_sid,
)
from maskline.compat.twilio.live import latest_live, with_live
from maskline.compat.twilio.models import ProxyParticipant, ProxyPhoneNumber, ProxyService, ProxySession
from maskline.numbers import regions
from maskline.numbers.interfaces import (
    BindingNotFound,
    BindingNotLive,
    BindingView,
    BindRequest,
    InvalidRequest,
    OwnerLimitReached,
    PoolExhausted,
    RoutingUnavailable,
)
from maskline.numbers.models import Binding, BindingMember, RelayNumber
from maskline.numbers.pool import parse_relay_number
from maskline.numbers.routes import epoch
from maskline.twilio_rest import TwilioError, calling, make_client
from maskline.vault.interfaces import InvalidPhoneNumber
from maskline.webhooks.interfaces import StepDecision
from maskline.webhooks.models import Interaction

log = logging.getLogger(__name__)

GEO_MATCH_LEVELS = ("area-code", "overlay", "radius", "country")
NUMBER_SELECTION_BEHAVIORS = ("avoid-sticky", "prefer-sticky")
SESSION_MODES = ("message-only", "voice-only", "voice-and-message")
ROLES = ("participant1", "participant2")
SMS_STATUS_PATH = "/webhooks/twilio/sms/status"
MAX_BODY = 1600
MAX_UNIQUE_NAME = 191
# How far back the ttl of a session is counted from its interactions (the
# worker runs every 30 s; this only bounds the query).
SLIDE_LOOKBACK = dt.timedelta(days=2)
# Statuses of a call or message still under way (Twilio's).
LIVE_STATUSES = frozenset({"queued", "initiated", "ringing", "in-progress", "sending", "accepted"})


def mask_identifier(e164: str) -> str:
    """``+14155550132`` -> ``+1*******32``: enough to tell two participants
    apart, never enough to dial. The only form of a party number this face
    stores or returns."""
    if len(e164) <= 6:
        return "*" * len(e164)
    return e164[:2] + "*" * (len(e164) - 4) + e164[-2:]


@dataclass(frozen=True, kw_only=True)
class ServiceFields:
    """What a create or update of a Service sets (None: not given)."""

    unique_name: str | None = None
    default_ttl: int | None = None
    geo_match_level: str | None = None
    number_selection_behavior: str | None = None
    callback_url: str | None = None
    intercept_callback_url: str | None = None
    out_of_session_callback_url: str | None = None
    intercept_fail_closed: bool | None = None


@dataclass(frozen=True, kw_only=True)
class SessionState:
    """A session with what its binding says about it."""

    row: ProxySession
    status: str
    closed_reason: str | None
    date_ended: dt.datetime | None
    date_started: dt.datetime | None
    date_last_interaction: dt.datetime | None


@dataclass(frozen=True, kw_only=True)
class ParticipantState:
    row: ProxyParticipant
    proxy_identifier: str | None


@dataclass(frozen=True, kw_only=True)
class SentMessage:
    interaction: Interaction
    participant: ProxyParticipant


class ProxyFace:
    """The Proxy resources of owners, over ``services`` (maskline's Services)."""

    def __init__(self, *, services: Any) -> None:
        self.services = services
        self._client: Any = None
        # Told when a session with another mode than voice-and-message is made.
        self.on_restricted_mode: Callable[[], None] | None = None

    @property
    def _db(self) -> Any:
        return self.services.db

    def _now(self) -> dt.datetime:
        now: dt.datetime = self.services.clock()
        return now

    # -- services ------------------------------------------------------------------

    def _service(self, session: Session, owner: str, sid: str) -> ProxyService:
        row = session.get(ProxyService, sid) if is_sid(sid, "service") else None
        if row is None or row.owner != owner:
            raise ResourceNotFound(f"The requested resource /Services/{sid} was not found")
        return row

    def _unique_service_name(self, session: Session, owner: str, name: str, sid: str | None) -> None:
        taken = session.scalar(
            select(ProxyService.sid).where(ProxyService.owner == owner, ProxyService.unique_name == name)
        )
        if taken is not None and taken != sid:
            raise ResourceConflict("UniqueName: a Service with this unique name already exists")

    def create_service(self, owner: str, fields: ServiceFields, *, account_sid: str) -> ProxyService:
        if not fields.unique_name:
            raise InvalidParameter("Missing required parameter UniqueName in the post body")
        now = self._now()
        with self._db.session() as session:
            self._unique_service_name(session, owner, fields.unique_name, None)
            row = ProxyService(
                sid=new_sid("service"),
                owner=owner,
                account_sid=account_sid,
                unique_name=fields.unique_name,
                default_ttl=fields.default_ttl or 0,
                geo_match_level=fields.geo_match_level or "country",
                number_selection_behavior=fields.number_selection_behavior or "prefer-sticky",
                callback_url=fields.callback_url,
                intercept_callback_url=fields.intercept_callback_url,
                out_of_session_callback_url=fields.out_of_session_callback_url,
                intercept_fail_closed=bool(fields.intercept_fail_closed),
                created_at=now,
                updated_at=now,
            )
            session.add(row)
        return row

    def get_service(self, owner: str, sid: str) -> ProxyService:
        with self._db.session() as session:
            return self._service(session, owner, sid)

    def list_services(self, owner: str, *, offset: int, limit: int) -> list[ProxyService]:
        with self._db.session() as session:
            return list(
                session.scalars(
                    select(ProxyService)
                    .where(ProxyService.owner == owner)
                    .order_by(ProxyService.created_at, ProxyService.sid)
                    .offset(offset)
                    .limit(limit)
                )
            )

    def update_service(self, owner: str, sid: str, fields: ServiceFields) -> ProxyService:
        with self._db.session() as session:
            row = self._service(session, owner, sid)
            if fields.unique_name is not None:
                self._unique_service_name(session, owner, fields.unique_name, sid)
            for name, value in dataclasses.asdict(fields).items():
                if value is not None:
                    # An empty URL clears it, as in Twilio.
                    setattr(row, name, value or None if name.endswith("_url") else value)
            row.updated_at = self._now()
        return row

    def delete_service(self, owner: str, sid: str, *, actor: str) -> None:
        """Ends the bindings of the Service's sessions, then deletes it all."""
        with self._db.session() as session:
            self._service(session, owner, sid)
            bindings = session.scalars(
                select(ProxySession.binding_id).where(
                    ProxySession.service_sid == sid, ProxySession.binding_id.is_not(None)
                )
            ).all()
        for binding_id in bindings:
            self._unbind(binding_id, owner, actor=actor, reason="twilio proxy: service deleted")
        with self._db.session() as session:
            row = self._service(session, owner, sid)
            session.delete(row)

    # -- phone numbers ---------------------------------------------------------------

    def _relay_by_sid(self, session: Session, sid: str) -> str | None:
        # PN sids are derived from the E.164 form: the pool is searched by
        # recomputing them (a pool is hundreds of numbers, not millions).
        for e164 in session.scalars(select(RelayNumber.e164)):
            if derived_sid("phone_number", e164) == sid:
                return e164
        return None

    def add_number(
        self,
        owner: str,
        service_sid: str,
        *,
        sid: str | None,
        phone_number: str | None,
        is_reserved: bool,
    ) -> ProxyPhoneNumber:
        if (sid is None) == (phone_number is None):
            raise InvalidParameter("Sid: give either Sid or PhoneNumber of a number of the pool")
        now = self._now()
        with self._db.session() as session:
            self._service(session, owner, service_sid)
            if sid is not None:
                e164 = self._relay_by_sid(session, sid) if is_sid(sid, "phone_number") else None
                if e164 is None:
                    raise InvalidParameter("Sid: is not the sid of a number of maskline's pool")
            else:
                assert phone_number is not None
                e164 = phone_number.strip()
                if session.get(RelayNumber, e164) is None:
                    raise InvalidParameter("PhoneNumber: is not a number of maskline's pool (E.164 form)")
            if session.get(ProxyPhoneNumber, (service_sid, e164)) is not None:
                raise ResourceConflict("PhoneNumber: this number is already in the Service")
            row = ProxyPhoneNumber(
                service_sid=service_sid,
                e164=e164,
                sid=derived_sid("phone_number", e164),
                is_reserved=is_reserved,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()
            return row

    def _number(self, session: Session, owner: str, service_sid: str, sid: str) -> ProxyPhoneNumber:
        self._service(session, owner, service_sid)
        row = (
            session.scalar(
                select(ProxyPhoneNumber).where(
                    ProxyPhoneNumber.service_sid == service_sid, ProxyPhoneNumber.sid == sid
                )
            )
            if is_sid(sid, "phone_number")
            else None
        )
        if row is None:
            raise ResourceNotFound(
                f"The requested resource /Services/{service_sid}/PhoneNumbers/{sid} was not found"
            )
        return row

    def get_number(self, owner: str, service_sid: str, sid: str) -> ProxyPhoneNumber:
        with self._db.session() as session:
            return self._number(session, owner, service_sid, sid)

    def number_details(self, numbers: list[ProxyPhoneNumber]) -> dict[str, tuple[RelayNumber | None, int]]:
        """e164 -> (its pool row, live bindings on it) for rendering."""
        wanted = [n.e164 for n in numbers]
        if not wanted:
            return {}
        now = self._now()
        with self._db.session() as session:
            pool = {
                r.e164: r for r in session.scalars(select(RelayNumber).where(RelayNumber.e164.in_(wanted)))
            }
            counts = dict(
                session.execute(
                    select(Binding.relay_number, func.count())
                    .where(
                        Binding.relay_number.in_(wanted), Binding.status == "active", Binding.expires_at > now
                    )
                    .group_by(Binding.relay_number)
                ).all()
            )
        return {e164: (pool.get(e164), int(counts.get(e164, 0))) for e164 in wanted}

    def list_numbers(
        self, owner: str, service_sid: str, *, offset: int, limit: int
    ) -> list[ProxyPhoneNumber]:
        with self._db.session() as session:
            self._service(session, owner, service_sid)
            return list(
                session.scalars(
                    select(ProxyPhoneNumber)
                    .where(ProxyPhoneNumber.service_sid == service_sid)
                    .order_by(ProxyPhoneNumber.created_at, ProxyPhoneNumber.sid)
                    .offset(offset)
                    .limit(limit)
                )
            )

    def update_number(
        self, owner: str, service_sid: str, sid: str, *, is_reserved: bool | None
    ) -> ProxyPhoneNumber:
        with self._db.session() as session:
            row = self._number(session, owner, service_sid, sid)
            if is_reserved is not None:
                row.is_reserved = is_reserved
                row.updated_at = self._now()
            return row

    def delete_number(self, owner: str, service_sid: str, sid: str) -> None:
        with self._db.session() as session:
            session.delete(self._number(session, owner, service_sid, sid))

    # -- sessions ----------------------------------------------------------------------

    def _session(self, session: Session, owner: str, service_sid: str, sid: str) -> ProxySession:
        """By sid, or by unique name (as Twilio allows in place of the sid)."""
        self._service(session, owner, service_sid)
        if is_sid(sid, "session"):
            row = session.get(ProxySession, sid)
        elif len(sid) > MAX_UNIQUE_NAME or any(ord(c) < 32 for c in sid):
            row = None  # not a name a session can have (PostgreSQL refuses a NUL outright)
        else:
            row = session.scalar(
                select(ProxySession).where(
                    ProxySession.service_sid == service_sid, ProxySession.unique_name == sid
                )
            )
        if row is None or row.owner != owner or row.service_sid != service_sid:
            raise ResourceNotFound(
                f"The requested resource /Services/{service_sid}/Sessions/{sid} was not found"
            )
        return row

    def _expiry(
        self, service: ProxyService, ttl: int | None, date_expiry: dt.datetime | None, now: dt.datetime
    ) -> dt.datetime:
        settings = self.services.settings
        if ttl is not None and date_expiry is not None:
            raise InvalidParameter("Ttl: give Ttl or DateExpiry, not both")
        if date_expiry is not None:
            expiry = date_expiry
            if expiry <= now:
                raise InvalidParameter("DateExpiry: is in the past")
            field = "DateExpiry"
        else:
            seconds = ttl or service.default_ttl
            expiry = now + (dt.timedelta(seconds=seconds) if seconds else settings.default_ttl)
            field = "Ttl" if ttl else "DefaultTtl"
        if expiry - now > settings.max_ttl:
            raise InvalidParameter(
                f"{field}: is more than {settings.max_ttl.days} days away (maskline's maximum)"
            )
        return expiry

    def create_session(
        self,
        owner: str,
        service_sid: str,
        *,
        unique_name: str | None,
        ttl: int | None,
        date_expiry: dt.datetime | None,
        mode: str | None,
        status: str | None,
        participants: Sequence[dict[str, str | None]] = (),
        actor: str = "",
    ) -> SessionState:
        """A new session; with ``participants`` (``Identifier``, ``FriendlyName``,
        ``ProxyIdentifier``, ``ProxyIdentifierSid``), all of them join or the
        session is not kept (the error names which one)."""
        state = self._create_session(
            owner,
            service_sid,
            unique_name=unique_name,
            ttl=ttl,
            date_expiry=date_expiry,
            mode=mode,
            status=status,
        )
        if not participants:
            return state
        try:
            for i, item in enumerate(participants):
                try:
                    self.add_participant(
                        owner,
                        service_sid,
                        state.row.sid,
                        identifier=item.get("Identifier") or "",
                        friendly_name=item.get("FriendlyName"),
                        actor=actor,
                        proxy_identifier=item.get("ProxyIdentifier"),
                        proxy_identifier_sid=item.get("ProxyIdentifierSid"),
                    )
                except ProxyError as exc:
                    exc.message = f"Participants[{i}].{exc.message}"
                    raise
        except Exception:
            try:
                self.delete_session(owner, service_sid, state.row.sid, actor=actor)
            except Exception as cleanup:  # the first error is the one to answer with
                log.warning("could not remove session %s: %s", state.row.sid, type(cleanup).__name__)
            raise
        return self.get_session(owner, service_sid, state.row.sid)

    def _create_session(
        self,
        owner: str,
        service_sid: str,
        *,
        unique_name: str | None,
        ttl: int | None,
        date_expiry: dt.datetime | None,
        mode: str | None,
        status: str | None,
    ) -> SessionState:
        if status not in (None, "open", "in-progress"):
            raise InvalidParameter("Status: a new session is open or in-progress")
        now = self._now()
        with self._db.session() as session:
            service = self._service(session, owner, service_sid)
            expiry = self._expiry(service, ttl, date_expiry, now)
            if unique_name is not None and session.scalar(
                select(ProxySession.sid).where(
                    ProxySession.service_sid == service_sid, ProxySession.unique_name == unique_name
                )
            ):
                raise ResourceConflict("UniqueName: a Session with this unique name already exists")
            row = ProxySession(
                sid=new_sid("session"),
                service_sid=service_sid,
                owner=owner,
                unique_name=unique_name,
                ttl=ttl or 0,
                date_expiry=expiry,
                expiry_fixed=date_expiry is not None,
                mode=mode or "voice-and-message",
                status="open",
                created_at=now,
                updated_at=now,
            )
            session.add(row)
        if row.mode != "voice-and-message" and self.on_restricted_mode is not None:
            self.on_restricted_mode()
        return self.state(row)

    def state(self, row: ProxySession) -> SessionState:
        """The session as shown: status from its binding and interactions."""
        now = self._now()
        binding: Binding | None = None
        first = last = None
        with self._db.session() as session:
            if row.binding_id is not None:
                binding = session.get(Binding, row.binding_id)
                first, last = session.execute(
                    select(func.min(Interaction.started_at), func.max(Interaction.started_at)).where(
                        Interaction.binding_id == row.binding_id, Interaction.owner == row.owner
                    )
                ).one()
        status, reason, ended = row.status, row.closed_reason, row.date_ended
        if status != "closed":
            if binding is not None and not binding.is_live(now):
                status = "closed"
                reason = reason or ("ttl" if binding.status != "unbound" else "unbound")
                ended = binding.ended_at or binding.expires_at
            elif binding is None and row.date_expiry <= now:
                status, reason, ended = "closed", "ttl", row.date_expiry
            elif first is not None:
                status = "in-progress"
            elif binding is not None:
                # No interaction in SQL yet: one under way makes it in-progress, as in Twilio.
                last = latest_live(self.services.redis, binding.relay_number, binding.id, now=epoch(now))
                status = "in-progress" if last is not None else status
        return SessionState(
            row=row,
            status=status,
            closed_reason=reason,
            date_ended=ended,
            date_started=binding.created_at if binding is not None else None,
            date_last_interaction=last,
        )

    def get_session(self, owner: str, service_sid: str, sid: str) -> SessionState:
        with self._db.session() as session:
            row = self._session(session, owner, service_sid, sid)
        return self.state(row)

    def list_sessions(self, owner: str, service_sid: str, *, offset: int, limit: int) -> list[SessionState]:
        with self._db.session() as session:
            self._service(session, owner, service_sid)
            rows = list(
                session.scalars(
                    select(ProxySession)
                    .where(ProxySession.service_sid == service_sid, ProxySession.owner == owner)
                    .order_by(ProxySession.created_at, ProxySession.sid)
                    .offset(offset)
                    .limit(limit)
                )
            )
        return [self.state(row) for row in rows]

    def update_session(
        self,
        owner: str,
        service_sid: str,
        sid: str,
        *,
        ttl: int | None,
        date_expiry: dt.datetime | None,
        status: str | None,
        actor: str,
    ) -> SessionState:
        """Close it (status=closed: its binding is unbound), reopen it
        (closed -> in-progress: its binding lives again on the same number),
        or give it a new expiry. Other status changes are Proxy's 80608."""
        if status not in (None, "closed", "in-progress"):
            raise ProxyRule(
                ProxyRule.STATUS_INVALID,
                "Status: not a valid change; close an open or in-progress session (closed), "
                "or reopen a closed one (in-progress)",
            )
        now = self._now()
        with self._db.session() as session:
            row = self._session(session, owner, service_sid, sid)
            service = self._service(session, owner, service_sid)
        current = self.state(row)
        if status == "closed":
            if ttl is not None or date_expiry is not None:
                raise InvalidParameter("Status: a session closed cannot also get a new Ttl or DateExpiry")
            if current.status != "closed" and row.binding_id is not None:
                self._unbind(row.binding_id, owner, actor=actor, reason="twilio proxy: session closed")
            with self._db.session() as session:
                stored = self._session(session, owner, service_sid, row.sid)
                if stored.status != "closed":
                    stored.status, stored.closed_reason = "closed", "api"
                    stored.date_ended = current.date_ended or now
                stored.updated_at = now
                row = stored
            return self.state(row)
        if current.status == "closed":
            if status != "in-progress":
                raise ProxyRule(ProxyRule.SESSION_CLOSED, "Session is closed and cannot be updated")
            return self._reopen(row, service, ttl=ttl, date_expiry=date_expiry, now=now, actor=actor)
        if ttl is None and date_expiry is None:
            return current
        expiry = self._expiry(service, ttl, date_expiry, now)
        if row.binding_id is not None:
            try:
                self.services.numbers.bindings.extend(
                    row.binding_id,
                    owner=owner,
                    expires_at=expiry,
                    actor=actor,
                    reason="twilio proxy: session updated",
                )
            except (BindingNotFound, BindingNotLive):
                raise ResourceConflict("Status: the session's binding has ended") from None
            except InvalidRequest as exc:
                raise InvalidParameter(f"DateExpiry: {exc.reason}") from None
            except RoutingUnavailable:
                raise ServiceUnavailable("the routing store cannot be reached; retry later") from None
        with self._db.session() as session:
            stored = self._session(session, owner, service_sid, row.sid)
            stored.date_expiry = expiry
            # A DateExpiry stays where it is; a ttl counts from the last interaction.
            stored.expiry_fixed = date_expiry is not None
            if ttl is not None:
                stored.ttl = ttl
            stored.updated_at = now
            row = stored
        return self.state(row)

    def _reopen(
        self,
        row: ProxySession,
        service: ProxyService,
        *,
        ttl: int | None,
        date_expiry: dt.datetime | None,
        now: dt.datetime,
        actor: str,
    ) -> SessionState:
        """closed -> in-progress: a new expiry (the given one, else the session's
        ttl or the Service's default from now), and its binding live again."""
        expiry = self._expiry(service, ttl if ttl is not None else (row.ttl or None), date_expiry, now)
        if row.binding_id is not None:
            from maskline.numbers.reopen import Reopener, ReopenRefused

            bindings = self.services.numbers.bindings
            reopener = Reopener(
                db=self._db,
                vault=self.services.vault,
                routes=bindings.routes,
                audit=self.services.audit,
                clock=self.services.clock,
                policy=bindings.policy,
            )
            try:
                reopener.reopen(row.binding_id, owner=row.owner, expires_at=expiry, actor=actor)
            except ReopenRefused:
                raise ProxyRule(
                    ProxyRule.REOPEN_INVALID,
                    "Status: the session cannot be reopened: a participant is on its proxy number in "
                    "another session (or cooling down there), or the number is full",
                ) from None
            except (BindingNotFound, InvalidRequest):
                raise ProxyRule(ProxyRule.REOPEN_INVALID, "Status: the session cannot be reopened") from None
            except RoutingUnavailable:
                raise ServiceUnavailable("the routing store cannot be reached; retry later") from None
        with self._db.session() as session:
            stored = self._session(session, row.owner, row.service_sid, row.sid)
            stored.status, stored.closed_reason, stored.date_ended = "in-progress", None, None
            stored.date_expiry = expiry
            stored.expiry_fixed = date_expiry is not None
            if ttl is not None:
                stored.ttl = ttl
            stored.updated_at = now
            row = stored
        return self.state(row)

    def slide_expiries(self, now: dt.datetime) -> int:
        """Move the expiry of open sessions with a ``ttl`` (theirs, else the
        Service's ``default_ttl``) to ``ttl`` seconds after their last
        interaction, as Twilio counts it. Never a closed session, never one
        whose expiry is a ``DateExpiry``, never past ``MASKLINE_MAX_TTL``
        from now, never earlier than it is. Returns how many moved.

        Run by ``maskline worker``: a session is extended within one worker
        interval of its interaction.
        """
        last = func.max(func.coalesce(Interaction.ended_at, Interaction.started_at))
        per_session = (
            ProxySession.sid,
            ProxySession.owner,
            ProxySession.binding_id,
            ProxySession.ttl,
            ProxyService.default_ttl,
            Binding.expires_at,
        )
        with self._db.session() as session:
            rows = session.execute(
                select(*per_session, last)
                .join(ProxyService, ProxyService.sid == ProxySession.service_sid)
                .join(Binding, Binding.id == ProxySession.binding_id)
                .join(Interaction, Interaction.binding_id == Binding.id)
                .where(
                    ProxySession.status != "closed",
                    ProxySession.expiry_fixed.is_(False),
                    or_(ProxySession.ttl > 0, ProxyService.default_ttl > 0),
                    Binding.status == "active",
                    Binding.expires_at > now,
                    Interaction.owner == ProxySession.owner,
                    Interaction.started_at > now - SLIDE_LOOKBACK,
                )
                .group_by(*per_session)
            ).all()
        limit = now + self.services.settings.max_ttl
        moved = 0
        for sid, owner, binding_id, ttl, default_ttl, expires, last_at in rows:
            wanted = min(last_at + dt.timedelta(seconds=ttl or default_ttl), limit)
            if wanted <= expires:
                continue
            try:
                self.services.numbers.bindings.extend(
                    binding_id,
                    owner=owner,
                    expires_at=wanted,
                    reason="twilio proxy: ttl from the last interaction",
                )
            except (BindingNotFound, BindingNotLive):
                continue  # closed or ended meanwhile: it stays so
            with self._db.session() as session:
                stored = session.get(ProxySession, sid)
                if stored is not None and stored.binding_id == binding_id:
                    stored.date_expiry = wanted
            moved += 1
        return moved

    def delete_session(self, owner: str, service_sid: str, sid: str, *, actor: str) -> None:
        with self._db.session() as session:
            row = self._session(session, owner, service_sid, sid)
        if row.binding_id is not None:
            self._unbind(row.binding_id, owner, actor=actor, reason="twilio proxy: session deleted")
        with self._db.session() as session:
            session.delete(self._session(session, owner, service_sid, row.sid))

    def _unbind(self, binding_id: str, owner: str, *, actor: str, reason: str) -> None:
        try:
            self.services.numbers.bindings.unbind(binding_id, owner=owner, actor=actor, reason=reason)
        except BindingNotFound:
            pass  # gone already: nothing routes through it
        except RoutingUnavailable:
            raise ServiceUnavailable("the routing store cannot be reached; retry later") from None

    # -- participants ------------------------------------------------------------------

    def _participants(self, session: Session, session_sid: str) -> list[ProxyParticipant]:
        return list(
            session.scalars(
                select(ProxyParticipant)
                .where(ProxyParticipant.session_sid == session_sid)
                .order_by(ProxyParticipant.created_at, ProxyParticipant.role)
            )
        )

    def _relay_of(self, row: ProxySession) -> str | None:
        if row.binding_id is None:
            return None
        with self._db.session() as session:
            relay: str | None = session.scalar(
                select(Binding.relay_number).where(Binding.id == row.binding_id)
            )
            return relay

    def _requested_number(
        self,
        session: Session,
        service_sid: str,
        proxy_identifier: str | None,
        proxy_identifier_sid: str | None,
    ) -> str | None:
        """The Service's number a participant asks for (reserved ones too, as in Twilio)."""
        by_number = by_sid = None
        if proxy_identifier:
            try:
                # A relay number's rules, not a party's (the vault refuses some kinds).
                e164 = parse_relay_number(
                    proxy_identifier, field="ProxyIdentifier", region=self.services.settings.default_region
                )
            except InvalidRequest as exc:
                raise InvalidParameter(f"ProxyIdentifier: {exc.reason}") from None
            by_number = session.get(ProxyPhoneNumber, (service_sid, e164))
            if by_number is None:
                raise NoProxyNumber(
                    NoProxyNumber.NOT_IN_SERVICE,
                    "ProxyIdentifier: is not a number of this Service; add it to its PhoneNumbers first",
                )
        if proxy_identifier_sid:
            by_sid = (
                session.scalar(
                    select(ProxyPhoneNumber).where(
                        ProxyPhoneNumber.service_sid == service_sid,
                        ProxyPhoneNumber.sid == proxy_identifier_sid,
                    )
                )
                if is_sid(proxy_identifier_sid, "phone_number")
                else None
            )
            if by_sid is None:
                raise NoProxyNumber(
                    NoProxyNumber.NOT_IN_SERVICE,
                    "ProxyIdentifierSid: is not the sid of a number of this Service's PhoneNumbers",
                )
        if by_number is not None and by_sid is not None and by_number.e164 != by_sid.e164:
            raise InvalidParameter("ProxyIdentifierSid: names another number than ProxyIdentifier")
        chosen = by_number or by_sid
        return chosen.e164 if chosen is not None else None

    def add_participant(
        self,
        owner: str,
        service_sid: str,
        session_sid: str,
        *,
        identifier: str,
        friendly_name: str | None,
        actor: str,
        proxy_identifier: str | None = None,
        proxy_identifier_sid: str | None = None,
    ) -> ParticipantState:
        """Seal the identifier; with the second participant, bind the session (axb)
        on one of the Service's numbers (the one a participant asked for, if any)."""
        vault = self.services.vault
        region = self.services.settings.default_region
        try:
            e164 = vault.normalize(identifier, field="Identifier", region=region)
        except InvalidPhoneNumber as exc:
            raise InvalidParameter(f"Identifier: {exc.reason}") from None
        now = self._now()
        if self.get_session(owner, service_sid, session_sid).status == "closed":
            raise ProxyRule(
                ProxyRule.SESSION_CLOSED, "Status: the session is closed; it takes no participants"
            )
        first_pick = None
        if not (proxy_identifier or proxy_identifier_sid):
            # A first participant's number is chosen before the write transaction
            # (reads only: SQLite would wait on its own writer otherwise).
            with self._db.session() as session:
                found = self._session(session, owner, service_sid, session_sid)
                service = self._service(session, owner, service_sid)
                alone = not self._participants(session, found.sid)
                known = vault.lookup(session, e164)
                behavior, level = service.number_selection_behavior, service.geo_match_level
            if alone:
                first_pick = self._first_number(service_sid, found.sid, e164, known, now, behavior, level)
        with self._db.session() as session:
            found = self._session(session, owner, service_sid, session_sid)
            service = self._service(session, owner, service_sid)
            wanted = self._requested_number(session, service_sid, proxy_identifier, proxy_identifier_sid)
            # Locked: two participants added at once take one role each.
            row = session.get(ProxySession, found.sid, with_for_update=True) or found
            existing = self._participants(session, row.sid)
            if len(existing) >= 2:
                raise ProxyRule(ProxyRule.TOO_MANY_PARTICIPANTS, "A Session may have at most 2 participants")
            if row.binding_id is not None:
                raise ResourceConflict(
                    "Identifier: this session's binding ended when a participant was removed; "
                    "create a new session"
                )
            if session.get(RelayNumber, e164) is not None:
                raise InvalidParameter(
                    "Identifier: is a relay number of this pool; relay numbers cannot be participants"
                )
            asked = existing[0].proxy_e164 if existing else None
            if wanted is not None and asked is not None and wanted != asked:
                field = "ProxyIdentifier" if proxy_identifier else "ProxyIdentifierSid"
                raise InvalidParameter(
                    f"{field}: the other participant's proxy number is another; both participants "
                    "of a session share one proxy number"
                )
            token = vault.put_normalized(session, e164).token
            if any(p.token == token for p in existing):
                raise ProxyRule(
                    ProxyRule.ALREADY_IN_SESSION, "Identifier: is already a participant in the Session"
                )
            taken = {p.role for p in existing}
            role = next(r for r in ROLES if r not in taken)
            if not existing and wanted is None:
                # Twilio gives each participant its proxy identifier at once: the
                # number it will call. The second participant shares it.
                if first_pick is None:
                    raise ResourceConflict("Identifier: the session changed meanwhile; retry")
                wanted = first_pick
            participant = ProxyParticipant(
                sid=new_sid("participant"),
                session_sid=row.sid,
                role=role,
                token=token,
                identifier_masked=mask_identifier(e164),
                friendly_name=friendly_name,
                proxy_e164=wanted,
                created_at=now,
                updated_at=now,
            )
            if not existing:
                session.add(participant)
                # The number it got is the one the session binds on, or the session is refused.
                return ParticipantState(row=participant, proxy_identifier=wanted)
            other = existing[0]
            other_token, other_role = other.token, other.role
            expiry = row.date_expiry
            chosen = wanted or asked
            behavior, level = service.number_selection_behavior, service.geo_match_level
        if other_token is None:
            raise ResourceConflict(
                "Identifier: the first participant's number was collected before a second one joined; "
                "remove and add it again"
            )
        other_number = self._db.read(lambda connection: vault.open_readonly(connection, other_token))
        relays: frozenset[str]
        prefer: tuple[str, ...] = ()
        if chosen is not None:
            relays = frozenset({chosen})
        else:
            relays, prefer = self._service_relays(
                service_sid,
                row.sid,
                numbers=(other_number, e164),
                tokens=(other_token, token),
                behavior=behavior,
                level=level,
                now=now,
            )
        request = BindRequest(
            order_id=row.sid,
            mode="axb",
            parties={other_role: other_number, role: e164},
            owner=owner,
            expires_at=expiry,
            actor=actor,
            relay_numbers=relays,
            prefer_relays=prefer,
        )

        def attach(session: Session, view: BindingView) -> None:
            # In the binding's transaction: the session takes the binding and
            # the participant is stored exactly when the binding commits.
            stored = session.get(ProxySession, row.sid, with_for_update=True)
            if stored is None or stored.binding_id is not None:
                raise ResourceConflict("Identifier: the session changed meanwhile; retry")
            if chosen is not None and session.get(ProxyPhoneNumber, (service_sid, chosen)) is None:
                raise NoProxyNumber(
                    NoProxyNumber.NOT_IN_SERVICE,
                    "ProxyIdentifier: the number asked for is no longer in this Service",
                )
            stored.binding_id = view.id
            stored.updated_at = now
            session.add(participant)

        try:
            view = self.services.numbers.bindings.bind(request, within=attach)
        except (InvalidRequest, InvalidPhoneNumber) as exc:
            raise InvalidParameter(f"Identifier: {exc.reason}") from None
        except OwnerLimitReached as exc:
            # Twilio has no Proxy code for an account's own cap: its generic
            # 429 Too Many Requests, naming maskline's limit.
            raise TooManyRequests(f"owner_limit_reached: {exc}") from None
        except PoolExhausted:
            if chosen is not None:
                field = "ProxyIdentifier" if wanted is None or proxy_identifier else "ProxyIdentifierSid"
                raise NoProxyNumber(
                    NoProxyNumber.ALL_IN_USE,
                    f"{field}: the number asked for cannot take this session (it already carries "
                    "one of these participants, is cooling down for one, or is full); "
                    "maskline does not choose another",
                ) from None
            raise NoProxyNumber(
                NoProxyNumber.ALL_IN_USE,
                "PhoneNumbers: every number of this Service that may take this session already "
                "carries one of these participants, is cooling down for one, or is full; "
                "add numbers to the Service",
            ) from None
        except RoutingUnavailable:
            raise ServiceUnavailable("the routing store cannot be reached; retry later") from None
        return ParticipantState(row=participant, proxy_identifier=view.relay_number)

    def _first_number(
        self,
        service_sid: str,
        session_sid: str,
        e164: str,
        token: str | None,
        now: dt.datetime,
        behavior: str,
        level: str,
    ) -> str:
        """The proxy number of a session's first participant: a number of the
        Service that may take it (as for a pair, by this participant alone)
        and that it is on in no live binding and not cooling down on."""
        tokens = (token,) if token else ()
        relays, prefer = self._service_relays(
            service_sid, session_sid, numbers=(e164,), tokens=tokens, behavior=behavior, level=level, now=now
        )
        ordered = [*prefer, *sorted(n for n in relays if n not in prefer)]
        with self._db.session() as session:
            for number in ordered:
                if self._others_free(session, [number], tokens, now):
                    return number
        raise NoProxyNumber(
            NoProxyNumber.ALL_IN_USE,
            "PhoneNumbers: every number of this Service that may take this participant already "
            "carries it, is cooling down for it, or is full; add numbers to the Service",
        )

    def _service_relays(
        self,
        service_sid: str,
        session_sid: str,
        *,
        numbers: tuple[str, ...],
        tokens: tuple[str, ...],
        behavior: str,
        level: str,
        now: dt.datetime,
    ) -> tuple[frozenset[str], tuple[str, ...]]:
        """(the Service's numbers this session may take, the ones to try first).

        Not reserved, active with voice, and where the participants are
        (``geo_match_level``: ``country`` is every participant's country;
        ``area-code``, and ``overlay`` / ``radius`` approximated by it, is
        also the area code of one of them). ``prefer-sticky`` tries first
        the number of the pair's most recent earlier session of the Service;
        ``avoid-sticky`` leaves that number out while another is free.
        """
        with self._db.session() as session:
            rows = session.execute(
                select(
                    ProxyPhoneNumber.e164, ProxyPhoneNumber.is_reserved, RelayNumber.country, RelayNumber.area
                )
                .join(RelayNumber, RelayNumber.e164 == ProxyPhoneNumber.e164)
                .where(
                    ProxyPhoneNumber.service_sid == service_sid,
                    RelayNumber.status == "active",
                    RelayNumber.voice.is_(True),
                )
            ).all()
            if not rows:
                raise NoProxyNumber(
                    NoProxyNumber.NO_NUMBERS,
                    "PhoneNumbers: this Service has no number that can take sessions; "
                    "add numbers of the pool to it",
                )
            unreserved = [(e164, country, area) for e164, reserved, country, area in rows if not reserved]
            if not unreserved:
                raise NoProxyNumber(
                    NoProxyNumber.ONLY_RESERVED,
                    "PhoneNumbers: every number of this Service is reserved; reserved numbers are "
                    "used only when a participant names them (ProxyIdentifier)",
                )
            places = [regions.describe(n) for n in numbers]
            countries = {country for country, _area in places}
            areas = {area for _country, area in places if area}
            matching = [
                e164
                for e164, country, area in unreserved
                if countries == {country} and (level == "country" or area in areas)
            ]
            if not matching:
                if level == "country":
                    raise NoProxyNumber(
                        NoProxyNumber.NONE_IN_COUNTRY,
                        "GeoMatchLevel: no unreserved number of this Service is in the participants' "
                        "country (both participants must share it with the number)",
                    )
                raise NoProxyNumber(
                    NoProxyNumber.NONE_IN_AREA,
                    f"GeoMatchLevel: no unreserved number of this Service is in a participant's "
                    f"area code ({level}; maskline matches overlay and radius by area code)",
                )
            sticky = self._sticky(session, service_sid, session_sid, tokens)
            if sticky is None or sticky not in matching:
                return frozenset(matching), ()
            if behavior == "prefer-sticky":
                return frozenset(matching), (sticky,)
            if self._others_free(session, [n for n in matching if n != sticky], tokens, now):
                matching.remove(sticky)
            return frozenset(matching), ()

    def _sticky(
        self, session: Session, service_sid: str, session_sid: str, tokens: tuple[str, ...]
    ) -> str | None:
        """The number of the most recent earlier session of the Service with
        these participants (both before one), by vault token: no number in SQL."""
        shared = func.count(distinct(ProxyParticipant.token))
        row = session.execute(
            select(Binding.relay_number)
            .select_from(ProxySession)
            .join(ProxyParticipant, ProxyParticipant.session_sid == ProxySession.sid)
            .join(Binding, Binding.id == ProxySession.binding_id)
            .where(
                ProxySession.service_sid == service_sid,
                ProxySession.sid != session_sid,
                ProxyParticipant.token.in_(list(tokens)),
            )
            .group_by(Binding.relay_number, ProxySession.sid, ProxySession.created_at)
            .order_by(shared.desc(), ProxySession.created_at.desc(), ProxySession.sid.desc())
            .limit(1)
        ).first()
        return row[0] if row is not None else None

    def _others_free(
        self, session: Session, others: list[str], tokens: tuple[str, ...], now: dt.datetime
    ) -> bool:
        """Whether, as far as SQL knows, one of ``others`` can take these
        participants: neither is on it or cooling down on it, and it is not full."""
        if not others:
            return False
        policy = self.services.numbers.bindings.policy
        held = set(
            session.scalars(
                select(Binding.relay_number)
                .join(BindingMember, BindingMember.binding_id == Binding.id)
                .where(
                    Binding.relay_number.in_(others),
                    BindingMember.kind == "party",
                    BindingMember.token.in_(list(tokens)),
                    or_(Binding.status == "active", Binding.ended_at > now - policy.cooldown),
                )
            )
        )
        load = dict(
            session.execute(
                select(Binding.relay_number, func.count())
                .where(Binding.relay_number.in_(others), Binding.status == "active", Binding.expires_at > now)
                .group_by(Binding.relay_number)
            ).all()
        )
        return any(n not in held and load.get(n, 0) < policy.cap for n in others)

    def _participant(
        self, session: Session, owner: str, service_sid: str, session_sid: str, sid: str
    ) -> tuple[ProxySession, ProxyParticipant]:
        row = self._session(session, owner, service_sid, session_sid)
        participant = session.get(ProxyParticipant, sid) if is_sid(sid, "participant") else None
        if participant is None or participant.session_sid != row.sid:
            raise ResourceNotFound(
                f"The requested resource /Services/{service_sid}/Sessions/{session_sid}"
                f"/Participants/{sid} was not found"
            )
        return row, participant

    def get_participant(self, owner: str, service_sid: str, session_sid: str, sid: str) -> ParticipantState:
        with self._db.session() as session:
            row, participant = self._participant(session, owner, service_sid, session_sid, sid)
        return ParticipantState(
            row=participant, proxy_identifier=self._relay_of(row) or participant.proxy_e164
        )

    def list_participants(
        self, owner: str, service_sid: str, session_sid: str, *, offset: int, limit: int
    ) -> list[ParticipantState]:
        with self._db.session() as session:
            row = self._session(session, owner, service_sid, session_sid)
            rows = self._participants(session, row.sid)[offset : offset + limit]
        relay = self._relay_of(row)
        return [ParticipantState(row=p, proxy_identifier=relay or p.proxy_e164) for p in rows]

    def delete_participant(
        self, owner: str, service_sid: str, session_sid: str, sid: str, *, actor: str
    ) -> None:
        """Removing a participant ends the session's binding (an axb binding needs both)."""
        with self._db.session() as session:
            row, _participant = self._participant(session, owner, service_sid, session_sid, sid)
        if row.binding_id is not None:
            self._unbind(row.binding_id, owner, actor=actor, reason="twilio proxy: participant removed")
        with self._db.session() as session:
            _row, participant = self._participant(session, owner, service_sid, session_sid, sid)
            session.delete(participant)

    # -- interactions ---------------------------------------------------------------

    def interactions(
        self, owner: str, service_sid: str, session_sid: str
    ) -> tuple[ProxySession, list[Interaction], dict[str, str]]:
        """(the session, its binding's interactions oldest first, role -> participant sid):
        SQL's, and the calls and texts under way that only Redis knows yet."""
        with self._db.session() as session:
            row = self._session(session, owner, service_sid, session_sid)
            roles = {p.role: p.sid for p in self._participants(session, row.sid)}
            if row.binding_id is None:
                return row, [], roles
            found = list(
                session.scalars(
                    select(Interaction)
                    .where(Interaction.binding_id == row.binding_id, Interaction.owner == owner)
                    .order_by(Interaction.started_at, Interaction.sid)
                )
            )
            relay = session.scalar(select(Binding.relay_number).where(Binding.id == row.binding_id))
        if relay is not None:
            found = with_live(
                self.services.redis,
                found,
                relay=relay,
                binding_id=row.binding_id,
                owner=owner,
                now=epoch(self._now()),
            )
        return row, found, roles

    def delete_interaction(
        self, owner: str, service_sid: str, session_sid: str, sid: str, *, actor: str
    ) -> None:
        """Delete an Interaction's record (Proxy's DELETE): one that has ended;
        a call or message still under way is refused (its status callback
        would write it again)."""
        _row, listed, _roles = self.interactions(owner, service_sid, session_sid)
        if any(i.status in LIVE_STATUSES and derived_sid("interaction", i.sid) == sid for i in listed):
            # Under way (SQL's row, or one that only Redis knows yet): its
            # status callback would write it again.
            raise ResourceConflict("Status: the interaction is still under way; delete it once it has ended")
        with self._db.session() as session:
            row = self._session(session, owner, service_sid, session_sid)
            found = None
            if row.binding_id is not None and is_sid(sid, "interaction"):
                for interaction in session.scalars(
                    select(Interaction).where(
                        Interaction.binding_id == row.binding_id, Interaction.owner == owner
                    )
                ):
                    if derived_sid("interaction", interaction.sid) == sid:
                        found = interaction
                        break
            if found is None:
                raise ResourceNotFound(
                    f"The requested resource /Services/{service_sid}/Sessions/{session_sid}"
                    f"/Interactions/{sid} was not found"
                )
            if found.status in LIVE_STATUSES:
                raise ResourceConflict(
                    "Status: the interaction is still under way; delete it once it has ended"
                )
            session.delete(found)
            self.services.audit.append(
                session,
                AuditEntry(
                    actor=actor,
                    action="interaction.deleted",
                    subject=row.binding_id or row.sid,
                    data={"owner": owner, "session": row.sid, "interaction": sid},
                ),
            )

    # -- message interactions ----------------------------------------------------------

    def send_message(
        self,
        owner: str,
        service_sid: str,
        session_sid: str,
        participant_sid: str,
        *,
        body: str | None,
        media_urls: list[str],
        actor: str,
    ) -> SentMessage:
        """An SMS from the relay number to the participant, through Twilio's REST API."""
        if not body and not media_urls:
            raise InvalidParameter("Body: give Body or MediaUrl")
        if body is not None and len(body) > MAX_BODY:
            raise InvalidParameter(f"Body: is longer than {MAX_BODY} characters")
        settings = self.services.settings
        now = self._now()
        with self._db.session() as session:
            row, participant = self._participant(session, owner, service_sid, session_sid, participant_sid)
        if row.mode == "voice-only":
            raise InvalidParameter("Mode: the session is voice-only; it takes no messages")
        state = self.state(row)
        if state.status == "closed" or row.binding_id is None or participant.token is None:
            raise ResourceConflict("Status: the session is not open with two participants")
        binding_id, token = row.binding_id, participant.token
        relay = self._relay_of(row)
        assert relay is not None
        if not settings.public_url:
            raise ServiceUnavailable(
                "message interactions need MASKLINE_PUBLIC_URL (the URLs Twilio calls back)"
            )
        from maskline.webhooks.services import DecisionStore, Quotas

        try:
            if self._client is None:
                self._client = make_client(settings)
            redis = self.services.redis
            quotas = Quotas(redis, limits={"sms": (settings.sms_per_hour, settings.sms_per_day)})
            allowed = quotas.take(relay, binding_id, "sms", now=epoch(now))
            vault = self.services.vault
            number = self._db.read(lambda connection: vault.open_readonly(connection, token))
            with self._db.session() as session:
                self.services.audit.append(
                    session,
                    AuditEntry(
                        actor=actor,
                        action="message.requested",
                        subject=binding_id,
                        data={"owner": owner, "to_role": participant.role, "relay_number": relay},
                    ),
                )
        except Exception as exc:
            if isinstance(exc, ServiceUnavailable):
                raise
            log.warning("message interaction on %s: backend failed (%s)", binding_id, type(exc).__name__)
            raise ServiceUnavailable(f"a backend failed ({type(exc).__name__}); retry later") from None
        if not allowed:
            raise TooManyRequests("this session's message quota is used up")
        client = self._client
        try:
            message = calling(
                lambda: client.messages.create(
                    to=number,
                    from_=relay,
                    body=body,
                    media_url=media_urls or None,
                    status_callback=f"{settings.public_url}{SMS_STATUS_PATH}",
                ),
                region=settings.default_region,
            )
        except TwilioError as exc:
            log.warning("message interaction on %s: Twilio: %s", binding_id, exc.summary())
            raise
        sid = str(message.sid)
        status = str(message.status or "queued")
        decision = StepDecision(
            action="connect",
            binding_id=binding_id,
            from_role="api",
            target_role=participant.role,
            target_token=token,
        )
        try:
            # The status callback then finds the interaction's binding and roles.
            DecisionStore.from_settings(self.services.redis, settings).record(
                sid, "api:1", decision, now=epoch(now), relay=relay
            )
        except Exception as exc:
            log.warning("message interaction bookkeeping failed: %s", type(exc).__name__)
        interaction = Interaction(
            sid=sid,
            binding_id=binding_id,
            owner=owner,
            type="sms",
            from_role="api",
            to_role=participant.role,
            status=status,
            started_at=now,
        )
        with self._db.session() as session:
            if session.get(Interaction, sid) is None:
                session.add(interaction)
        log.info("message interaction %s on binding %s to %s", sid, binding_id, participant.role)
        return SentMessage(interaction=interaction, participant=participant)
