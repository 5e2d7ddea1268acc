"""Bindings: validate, allocate (Redis Lua claim + SQL row), extend, unbind, read.

Order of a bind: validate everything and seal the parties (nothing else is
touched if input is bad), pick candidate relay numbers from the SQL pool,
claim one atomically in Redis, then commit the SQL rows; if the commit
fails the claim is released. A crash between claim and commit leaves a
Redis claim with no SQL row, which the sweeper reconciles.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import logging
import random
import re
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, selectinload

from config import SMS_REDACTIONS, VOICE_LANGUAGES
from maskline.clock import Clock, system_clock
from maskline.db import Database
from maskline.numbers import regions
from maskline.numbers.bind_sql import Answer, BindWriter, OutcomeUnknown, Raced
from maskline.numbers.interfaces import (
    MODES,
    BindingEvent,
    BindingEventType,
    BindingNotFound,
    BindingNotLive,
    BindingView,
    BindRequest,
    ExpiryChange,
    InvalidRequest,
    NoNumberInRegion,
    OwnerLimitReached,
    PoolExhausted,
    PoolExhaustedEvent,
    RoutingUnavailable,
    WouldShorten,
)
from maskline.numbers.models import Binding, BindingMember, RelayNumber
from maskline.numbers.new_binding import NewBinding, NewMember
from maskline.numbers.pool import LoadCache
from maskline.numbers.rebuild import member_index
from maskline.numbers.route_copies import CopyOptions, seal_copy
from maskline.numbers.routes import (
    AllowedCaller,
    ExtensionLength,
    Party,
    RouteStore,
    allow_value,
    epoch,
    short_index,
)
from maskline.numbers.selection import RelaySelection, relay_place
from maskline.vault.services import VaultService

log = logging.getLogger(__name__)

ROLE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}\Z")
MAX_ORDER_ID = 128
MAX_ALLOWED_CALLERS = 20
# Roles taken as the bound party of an axe binding, in order of preference.
BOUND_ROLE_PREFERENCE = ("buyer", "customer", "recipient")


def _redactions(stored: str | None) -> tuple[str, ...] | None:
    """A binding's stored SMS redaction ("phones,links", "" for none, NULL for the default)."""
    return None if stored is None else tuple(filter(None, stored.split(",")))


# Told of every binding created or ended, inside that change's transaction,
# and of every bind that found the pool exhausted (in a transaction of its own).
BindingListener = Callable[[Session, BindingEvent | PoolExhaustedEvent], None]


# What the bind statement stores of a binding (the rest are column defaults).
_BINDING_COLUMNS = (
    "id",
    "owner",
    "order_id",
    "mode",
    "relay_number",
    "extension",
    "allow_any",
    "expires_at",
    "created_at",
    "record",
    "sms_redact",
    "sms_media",
    "language",
)

BINDING_ID = re.compile(r"^bd_[a-z2-7]{16}\Z")


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_binding_id(value: object) -> bool:
    return isinstance(value, str) and BINDING_ID.match(value) is not None


def new_binding_id() -> str:
    return "bd_" + base64.b32encode(secrets.token_bytes(10)).decode().lower()


@dataclass(frozen=True, kw_only=True)
class BindingPolicy:
    """The numbers settings a binding needs."""

    cap: int = 200
    extension_digits: int = 4
    # Allow-any (open) extensions: anyone may key them, so they are longer.
    open_extension_digits: int = 6
    # Live bindings an owner may hold when it has no cap of its own (0: no cap).
    owner_max_live: int = 0
    cooldown: dt.timedelta = dt.timedelta(hours=24)
    default_ttl: dt.timedelta = dt.timedelta(hours=72)
    max_ttl: dt.timedelta = dt.timedelta(days=90)
    # nearest: the anchor's area, province, then country, never another
    # country; strict: the anchor's area only; global: nearest, then anywhere.
    geo_policy: Literal["nearest", "strict", "global"] = "nearest"
    # After an order is marked delivered, its binding lives at most this long.
    delivery_grace: dt.timedelta = dt.timedelta(hours=72)
    # How stale the live-binding counts that rank candidates may get (see LoadCache).
    load_max_age: dt.timedelta = dt.timedelta(seconds=2)


# Orders equally good candidates at random, so concurrent binds spread over
# them. Not a secret (relay numbers are public), so no system random call per
# candidate.
_spread = random.Random()  # noqa: S311


# (e164, country, area) of a relay number of the pool
_PoolNumber = tuple[str, str, str]


def _near(where: regions.Place, e164: str) -> bool:
    """Is relay number ``e164`` in the anchor's area (by area code or city)?"""
    there = relay_place(e164)
    return there.country == where.country and (
        (bool(where.area) and there.area == where.area) or (bool(where.city) and there.city == where.city)
    )


@dataclass(frozen=True)
class _Sealed:
    role: str
    token: str
    index: bytes
    e164: str
    # Stored by this bind: on no binding yet, so on no relay number.
    new: bool = False


class BindingService:
    """Creates and changes bindings; SQL first in truth, Redis first in time."""

    def __init__(
        self,
        *,
        db: Database,
        vault: VaultService,
        routes: RouteStore,
        selection: RelaySelection,
        policy: BindingPolicy,
        clock: Clock = system_clock,
    ) -> None:
        self.db = db
        self.vault = vault
        self.routes = routes
        self.selection = selection
        self.policy = policy
        self._clock = clock
        self._listeners: list[BindingListener] = []
        self._writer: BindWriter | None = None
        self._writer_listeners = 0
        self._routes_lost: Callable[[], object] | None = None
        self.load_counts = LoadCache()

    def when_routes_lost(self, rebuild: Callable[[], object]) -> None:
        """Call ``rebuild()`` when a claim finds a relay number's routes gone
        (Redis came back empty): binding creation must not wait for a call
        or the worker to notice the loss before it works again."""
        self._routes_lost = rebuild

    def on_event(self, listener: BindingListener) -> None:
        """Run ``listener`` in the same transaction as every binding created or
        ended (unbound, expired, erased), and after a bind that found the pool
        exhausted. A listener that raises undoes the change with it."""
        self._listeners.append(listener)

    def use_writer(self, writer: BindWriter) -> None:
        """Create bindings through ``writer``'s statements (PostgreSQL), whose
        records stand for the listeners registered so far. A bind that runs
        code in its transaction (``within``), or any listener registered after
        this call, takes the ORM path, where every listener runs."""
        self._writer = writer
        self._writer_listeners = len(self._listeners)

    def _emit(self, session: Session, event: BindingEvent | PoolExhaustedEvent) -> None:
        for listener in self._listeners:
            listener(session, event)

    def _tell_exhausted(self, req: BindRequest, exc: PoolExhausted) -> None:
        """pool.exhausted in its own transaction; never hides the bind's error."""
        if not self._listeners:
            return
        event = PoolExhaustedEvent(
            owner=req.owner,
            order_id=req.order_id.strip(),
            mode=req.mode,
            role=exc.role,
            needed=exc.needed,
            at=self._clock(),
        )
        try:
            with self.db.session() as session:
                self._emit(session, event)
        except Exception as failure:
            log.warning("could not record pool.exhausted: %s", type(failure).__name__)

    # -- validation ------------------------------------------------------------

    def _validate(self, req: BindRequest, now: dt.datetime) -> dt.datetime:
        if not isinstance(req.order_id, str) or not req.order_id.strip():
            raise InvalidRequest("order_id", "is required: every binding belongs to an order")
        if len(req.order_id) > MAX_ORDER_ID:
            raise InvalidRequest("order_id", f"is longer than {MAX_ORDER_ID} characters")
        if req.mode not in MODES:
            raise InvalidRequest("mode", f"must be one of {', '.join(MODES)}")
        if not isinstance(req.parties, dict) or not req.parties:
            raise InvalidRequest("parties", "must map roles to numbers")
        for role in req.parties:
            if not isinstance(role, str) or not ROLE_PATTERN.match(role):
                raise InvalidRequest(
                    "parties", "roles must be lower-case words (a-z, 0-9, _), at most 32 characters"
                )
        if req.mode == "axb" and len(req.parties) != 2:
            raise InvalidRequest("parties", "an axb binding has exactly two parties")
        if req.allow is not None and req.allow != "any":
            if not isinstance(req.allow, list):
                raise InvalidRequest("allow", 'must be a list of numbers or "any"')
            if len(req.allow) > MAX_ALLOWED_CALLERS:
                raise InvalidRequest("allow", f"allows at most {MAX_ALLOWED_CALLERS} callers")
        if req.mode == "axe" and len(req.parties) == 1 and not req.allow:
            raise InvalidRequest(
                "allow", 'an axe binding needs an allow-list of callers (or allow: "any", explicitly)'
            )
        if not isinstance(req.record, bool):
            raise InvalidRequest("record", "must be true or false")
        if req.sms_redact is not None:
            unknown = sorted(set(req.sms_redact) - set(SMS_REDACTIONS))
            if unknown:
                raise InvalidRequest("sms_redact", f"takes {', '.join(SMS_REDACTIONS)}, not {unknown[0]!r}")
        if req.sms_media not in (None, "forward", "refuse"):
            raise InvalidRequest("sms_media", "must be forward or refuse")
        if req.fallback not in (None, "axe"):
            raise InvalidRequest("fallback", 'the only fallback is "axe"')
        if req.language is not None and req.language not in VOICE_LANGUAGES:
            raise InvalidRequest(
                "language", f"must be {' or '.join(VOICE_LANGUAGES)} (or left out for the deployment's)"
            )
        if req.fallback == "axe" and req.mode != "axb":
            raise InvalidRequest("fallback", "only an axb binding can fall back to axe")
        return self._expiry(req.ttl, req.expires_at, now)

    def _expiry(
        self,
        ttl: dt.timedelta | None,
        expires_at: dt.datetime | None,
        now: dt.datetime,
        *,
        field: str = "expires_at",
    ) -> dt.datetime:
        if ttl is not None and expires_at is not None:
            raise InvalidRequest("ttl_seconds", "give either ttl_seconds or expires_at, not both")
        if expires_at is not None:
            if expires_at.tzinfo is None:
                raise InvalidRequest("expires_at", "must include a time zone")
            expires = expires_at
        else:
            ttl = ttl if ttl is not None else self.policy.default_ttl
            if ttl <= dt.timedelta(0):
                raise InvalidRequest("ttl_seconds", "must be positive")
            expires = now + ttl
        if expires <= now:
            raise InvalidRequest(field, "is in the past")
        if expires - now > self.policy.max_ttl:
            raise InvalidRequest(
                field, f"would put the expiry more than {self.policy.max_ttl.days} days away (the maximum)"
            )
        return expires

    def _normalize_all(
        self, req: BindRequest
    ) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
        """Every number normalized, as (field, role, e164), parties then allowed
        callers; all checked, and no number twice, before any is stored."""

        def as_e164(raw: str, field: str) -> str:
            if req.normalized:
                return raw  # the face normalized it under the same policy
            return self.vault.normalize(raw, field=field, region=req.region)

        normalized = [
            (f"parties.{role}", role, as_e164(raw, f"parties.{role}")) for role, raw in req.parties.items()
        ]
        callers: list[tuple[str, str, str]] = []
        if isinstance(req.allow, list):
            callers = [
                (f"allow[{i}]", "caller", as_e164(raw, f"allow[{i}]")) for i, raw in enumerate(req.allow)
            ]
        seen: dict[str, str] = {}
        for field, _role, e164 in normalized + callers:
            if e164 in seen:
                raise InvalidRequest(field, f"is the same number as {seen[e164]}")
            seen[e164] = field
        return normalized, callers

    @staticmethod
    def _refuse_relays(numbers: list[tuple[str, str, str]], relays: set[str]) -> None:
        for field, _role, e164 in numbers:
            if e164 in relays:
                raise InvalidRequest(field, "is a relay number of this pool; relay numbers cannot be parties")

    def _seal_all(self, session: Session, req: BindRequest) -> tuple[list[_Sealed], list[_Sealed]]:
        """Normalize every number (all checked before any is stored), then seal."""
        normalized, callers = self._normalize_all(req)
        numbers = [e164 for _f, _r, e164 in normalized + callers]
        # A primary-key lookup of these numbers alone, whatever the pool's size.
        relays = set(session.scalars(select(RelayNumber.e164).where(RelayNumber.e164.in_(numbers))))
        self._refuse_relays(normalized + callers, relays)
        # One batch put for every number of the bind.
        stored = self.vault.put_many_normalized(session, numbers)
        sealed = [
            _Sealed(role, put.token, short_index(self.vault.index_of(e164)), e164, new=put.created)
            for (_field, role, e164), put in zip(normalized + callers, stored, strict=True)
        ]
        return sealed[: len(normalized)], sealed[len(normalized) :]

    def _named(self, session: Session, numbers: Iterable[str]) -> list[_PoolNumber]:
        """The active voice numbers among ``numbers`` (a face's list, preferences)."""
        wanted = list(numbers)
        if not wanted:
            return []
        rows = session.execute(
            select(RelayNumber.e164, RelayNumber.country, RelayNumber.area).where(
                RelayNumber.e164.in_(wanted), RelayNumber.status == "active", RelayNumber.voice.is_(True)
            )
        ).all()
        return [(e164, country, area) for e164, country, area in rows]

    # -- binding ---------------------------------------------------------------

    def bind(
        self,
        req: BindRequest,
        *,
        within: Callable[[Session, BindingView], None] | None = None,
        answer: Callable[[BindingView], Answer] | None = None,
    ) -> BindingView:
        """Create a binding, or raise InvalidRequest / PoolExhausted / RoutingUnavailable.

        ``within(session, view)`` runs in the binding's transaction before it
        commits (whatever it raises undoes the binding): for a record that
        must commit exactly when the binding does. ``answer(view)``, if given,
        is the same record for the one-statement path (which then may be
        taken), and raises AnswerNotPending where ``within`` would raise.
        """
        try:
            return self._bind(req, within, answer)
        except PoolExhausted as exc:
            self._tell_exhausted(req, exc)
            raise

    def _bind(
        self,
        req: BindRequest,
        within: Callable[[Session, BindingView], None] | None,
        answer: Callable[[BindingView], Answer] | None,
    ) -> BindingView:
        now = self._clock()
        expires = self._validate(req, now)
        one_statement = within is None or answer is not None
        if one_statement and self._writer is not None and len(self._listeners) == self._writer_listeners:
            view = self._bind_in_one_statement(self._writer, req, now, expires, answer)
            if view is not None:
                return view
        with self.db.session() as session:
            parties, callers = self._seal_all(session, req)
            new, bound, fallback_used = self._claim(lambda: session, req, parties, callers, now, expires)
            binding = new.to_orm()
            session.add(binding)
            try:
                session.flush()
                view = self._view(binding, fallback_used=fallback_used)
                self._emit(
                    session, BindingEvent(type="binding.created", binding=view, at=now, actor=req.actor)
                )
                if within is not None:
                    within(session, view)
                session.flush()
            except Exception:
                self._release_quietly(
                    binding.relay_number,
                    binding.id,
                    binding.extension,
                    [p.index for p in bound],
                    binding.owner,
                )
                raise
        self._bound(binding)
        return view

    def _bound(self, binding: Binding | NewBinding) -> None:
        self.load_counts.add(binding.relay_number, +1)
        # DEBUG, not INFO: at a thousand binds a second the scrubbing log
        # filter's parse of each line cost more CPU than the bind's SQL; the
        # audit chain and the outbox say who bound what.
        log.debug(
            "bound %s on %s (order owner %s, mode %s)",
            binding.id,
            binding.relay_number,
            binding.owner,
            binding.mode,
        )

    def _bind_in_one_statement(
        self,
        writer: BindWriter,
        req: BindRequest,
        now: dt.datetime,
        expires: dt.datetime,
        answer: Callable[[BindingView], Answer] | None,
    ) -> BindingView | None:
        """The bind with two SQL round trips (see maskline.numbers.bind_sql), or
        None, having stored nothing and released its claim, when a concurrent
        bind stored one of its new numbers first: the ORM path then reuses
        that entry."""
        normalized, callers = self._normalize_all(req)
        numbers = [e164 for _f, _r, e164 in normalized + callers]
        indexes = self.vault.indexes_of(numbers)
        found, relays = writer.lookup(list(indexes), numbers)
        self._refuse_relays(normalized + callers, relays)
        tokens = {indexes[index]: token for index, token in found.items()}
        vault_rows = []
        sealed = []
        for _field, role, e164 in normalized + callers:
            token = tokens.get(e164)
            new = token is None
            if token is None:
                row = self.vault.new_entry(e164)
                vault_rows.append(row)
                token = row["token"]
            sealed.append(_Sealed(role, token, short_index(self.vault.index_of(e164)), e164, new=new))
        parties, allowed = sealed[: len(normalized)], sealed[len(normalized) :]
        # A session only if candidates need SQL (selection sets to build, a
        # face's list of numbers).
        with contextlib.ExitStack() as stack:
            opened: list[Session] = []

            def session_of() -> Session:
                if not opened:
                    opened.append(stack.enter_context(self.db.session()))
                return opened[0]

            binding, bound, fallback_used = self._claim(session_of, req, parties, allowed, now, expires)
        view = self._view(binding, fallback_used=fallback_used)
        event = BindingEvent(type="binding.created", binding=view, at=now, actor=req.actor)
        members = [(m.position, m.kind, m.role, m.token) for m in binding.members]
        try:
            writer.write(
                binding={c: getattr(binding, c) for c in _BINDING_COLUMNS},
                members=members,
                vault_rows=vault_rows,
                records=writer.records(event),
                answer=answer(view) if answer is not None else None,
            )
        except OutcomeUnknown:
            raise  # committed or not: the sweeper reconciles a claim without its row
        except Exception as exc:
            self._release_quietly(
                binding.relay_number, binding.id, binding.extension, [p.index for p in bound], binding.owner
            )
            if isinstance(exc, Raced):
                return None
            raise
        writer.committed(event, [(m.role, m.token) for m in binding.parties])
        self._bound(binding)
        return view

    def _claim(
        self,
        session_of: Callable[[], Session],
        req: BindRequest,
        parties: list[_Sealed],
        callers: list[_Sealed],
        now: dt.datetime,
        expires: dt.datetime,
    ) -> tuple[NewBinding, list[_Sealed], bool]:
        """Claim a relay number in Redis; the binding (with its members, as
        plain data), its bound parties, and whether it fell back to axe."""
        anchor = self._anchor(parties)
        binding_id = new_binding_id()
        tried: list[str] = []
        attempt, busy = self._try_claim(
            req.owner,
            self._candidates(session_of, anchor, now, req, tried),
            binding_id,
            req.mode,
            parties,
            callers,
            req.allow == "any",
            expires,
            now,
            copy_options=_copy_options(req),
        )
        mode, fallback_used = req.mode, False
        if attempt is None and req.fallback == "axe":
            mode, fallback_used = "axe", True
            anchor_position = parties.index(anchor)
            # Where the anchor itself was the busy party, axe cannot help.
            skip = {x for x, position in busy.items() if position == anchor_position}
            axe_candidates = (x for x in self._candidates(session_of, anchor, now, req, []) if x not in skip)
            attempt, _ = self._try_claim(
                req.owner, axe_candidates, binding_id, "axe", parties, callers, False, expires, now
            )
        if attempt is None:
            raise self._exhausted(
                parties, anchor, tried, Counter(busy.values()), restricted=req.relay_numbers is not None
            )
        relay, extension, bound, allowed = attempt
        kinds = [("party", p) for p in bound] + [("caller", c) for c in allowed]
        members = [NewMember(i, kind, m.role, m.token) for i, (kind, m) in enumerate(kinds)]
        binding = NewBinding(
            id=binding_id,
            owner=req.owner,
            order_id=req.order_id.strip(),
            mode=mode,
            relay_number=relay,
            extension=extension,
            allow_any=req.allow == "any" and not fallback_used,
            record=req.record,
            sms_redact=None if req.sms_redact is None else ",".join(sorted(req.sms_redact)),
            sms_media=req.sms_media,
            language=req.language,
            expires_at=expires,
            created_at=now,
            members=tuple(members),
        )
        return binding, bound, fallback_used

    def _anchor(self, parties: list[_Sealed]) -> _Sealed:
        """The party whose area decides the relay number: the buyer if any."""
        for role in BOUND_ROLE_PREFERENCE:
            for p in parties:
                if p.role == role:
                    return p
        return parties[0]

    def _candidates(
        self,
        session_of: Callable[[], Session],
        anchor: _Sealed,
        now: dt.datetime,
        req: BindRequest,
        tried: list[str],
    ) -> Iterator[str]:
        """Relay numbers to try, best first, appended to ``tried`` as they are
        handed out.

        A face's own list (``req.relay_numbers``) is ranked here from SQL: its
        preferred numbers in order, then the anchor's area, then its country,
        then the rest, least loaded first; the geo policy does not apply to
        it. Otherwise the preferred numbers come first, then the selection
        sets in Redis by the geo policy (see :mod:`maskline.numbers.selection`):
        a page of numbers at a time, never the whole pool.
        """
        if req.relay_numbers is not None:
            for e164 in self._rank_named(session_of(), anchor, now, req):
                tried.append(e164)
                yield e164
            return
        where = regions.place(anchor.e164)
        policy = self.policy.geo_policy
        handed: set[str] = set()
        if req.prefer_relays:
            usable = {e164 for e164, _c, _a in self._named(session_of(), req.prefer_relays)}
            for e164 in req.prefer_relays:
                # The deployment's strict policy binds preferences too.
                if e164 in usable and e164 not in handed and (policy != "strict" or _near(where, e164)):
                    handed.add(e164)
                    tried.append(e164)
                    yield e164
        for e164 in self.selection.candidates(
            where,
            cap=self.policy.cap,
            build=lambda country: self.selection.build(session_of(), country, now),
            near_only=policy == "strict",
            anywhere=policy == "global",
        ):
            if e164 not in handed:
                tried.append(e164)
                yield e164

    def _rank_named(self, session: Session, anchor: _Sealed, now: dt.datetime, req: BindRequest) -> list[str]:
        """A face's list of relay numbers, best first (see :meth:`_candidates`)."""
        assert req.relay_numbers is not None
        country, area = regions.describe(anchor.e164)
        load = self.load_counts.counts(session, now, max_age=self.policy.load_max_age)
        preferred = {e164: i for i, e164 in enumerate(reversed(req.prefer_relays))}
        ranked = []
        for e164, r_country, r_area in self._named(session, req.relay_numbers):
            if r_country == country and area and r_area == area:
                tier = 0
            elif r_country == country:
                tier = 1
            else:
                tier = 2
            if e164 in preferred:
                # Before every tier; the earliest preference first.
                ranked.append((-1 - preferred[e164], 0, 0.0, e164))
                continue
            # Random tie-break spreads concurrent binds of one party over
            # equally loaded numbers instead of piling them on the first.
            ranked.append((tier, load.get(e164, 0), _spread.random(), e164))
        ranked.sort()
        return [e164 for *_rest, e164 in ranked]

    def _split_axe(
        self, parties: list[_Sealed], callers: list[_Sealed]
    ) -> tuple[list[_Sealed], list[_Sealed]]:
        """axe: the buyer (or first party) is bound; other parties become allowed callers."""
        bound = self._anchor(parties)
        others = [p for p in parties if p is not bound]
        return [bound], others + callers

    def _try_claim(
        self,
        owner: str,
        candidates: Iterable[str],
        binding_id: str,
        mode: str,
        parties: list[_Sealed],
        callers: list[_Sealed],
        allow_any: bool,
        expires: dt.datetime,
        now: dt.datetime,
        *,
        copy_options: CopyOptions | None = None,
    ) -> tuple[tuple[str, str | None, list[_Sealed], list[_Sealed]] | None, dict[str, int]]:
        """Claim the first candidate that can take the binding.

        Returns the claim (relay, extension, bound parties, allowed callers),
        or None with, per number where a party was already on it (live or
        cooling down), that party's position. The Lua claim is the authority,
        on the owner's cap too (OwnerLimitReached).
        """
        default = self.policy.extension_digits
        if allow_any:
            # Anyone may key an open extension: only where they are long.
            wanted = max(default, self.policy.open_extension_digits)
            length = ExtensionLength(default=default, wanted=wanted, least=wanted)
        else:
            length = ExtensionLength(default=default, wanted=default)
        if mode == "axe":
            bound, allowed = self._split_axe(parties, callers)
            allow = (
                "*"
                if allow_any
                else allow_value([AllowedCaller(index=c.index, role=c.role, token=c.token) for c in allowed])
            )
        else:
            bound, allowed, allow = parties, [], ""
        busy: dict[str, int] = {}
        for relay in candidates:
            try:
                result = self.routes.claim(
                    relay,
                    binding_id=binding_id,
                    version=1,
                    expires=epoch(expires),
                    mode=mode,
                    parties=[Party(index=p.index, role=p.role, token=p.token) for p in bound],
                    allow=allow,
                    extension_candidates=self._extension_candidates() if mode == "axe" else None,
                    now=epoch(now),
                    cooldown=int(self.policy.cooldown.total_seconds()),
                    cap=self.policy.cap,
                    owner=owner,
                    owner_cap=self.policy.owner_max_live,
                    length=length,
                    copy=self._route_copy(relay, binding_id, bound, copy_options) if mode == "axb" else None,
                )
            except RoutingUnavailable:
                self._notice_lost_routes(relay)
                raise
            if result.outcome == "ok":
                return (relay, result.extension, bound, allowed), busy
            if result.outcome == "owner_limit":
                raise OwnerLimitReached(owner=owner, limit=result.limit or 0)
            if result.outcome == "busy" and result.busy_party is not None:
                busy[relay] = result.busy_party
            elif result.outcome == "full":
                # Ranked last from now on, until the counts are read again.
                self.load_counts.at_least(relay, self.policy.cap)
                self.selection.mark_full(relay, self.policy.cap)
        return None, busy

    def _route_copy(
        self, relay: str, binding_id: str, parties: list[_Sealed], options: CopyOptions | None
    ) -> bytes | None:
        """The axb binding's sealed numbers and options for ``relay``, so
        that its connects need no SQL (None: they read SQL)."""
        if options is None:
            return None
        numbers = {p.role: p.e164 for p in parties}
        return seal_copy(
            self.vault.keys.current(), relay=relay, binding_id=binding_id, numbers=numbers, options=options
        )

    def _notice_lost_routes(self, relay: str) -> None:
        """After a failed claim: if Redis answers but lost X's data, have the routes rebuilt."""
        if self._routes_lost is None:
            return
        try:
            lost = not self.routes.has_generation(relay)
        except RoutingUnavailable:
            return  # down, not emptied: nothing to rebuild until it is back
        if lost:
            self._routes_lost()

    def _extension_candidates(self, count: int = 12) -> list[str]:
        # 9 digits each: the claim uses as many as X's extension length (a
        # prefix of a uniform number is uniform). Never a leading zero.
        low = 10**8
        return [str(low + secrets.randbelow(9 * low)) for _ in range(count)]

    def _exhausted(
        self,
        parties: list[_Sealed],
        anchor: _Sealed,
        candidates: list[str],
        busy: Counter[int],
        *,
        restricted: bool = False,
    ) -> PoolExhausted:
        role = None
        if busy:
            position, _count = busy.most_common(1)[0]
            role = parties[position].role if position < len(parties) else None
        if restricted:
            # The caller named the numbers: say so, not "the pool".
            if not candidates:
                return PoolExhausted(
                    "none of the relay numbers this binding may take is in the pool, active "
                    "and voice-capable",
                    needed=1,
                )
            return PoolExhausted(
                f"none of the {len(candidates)} relay number(s) this binding may take is free "
                "(each already carries one of its parties, is cooling down for it, or is full)",
                role=role,
                needed=1,
            )
        policy = self.policy.geo_policy
        country = regions.place(anchor.e164).country
        if policy == "strict":
            if not candidates:
                return NoNumberInRegion(
                    "no active relay number in the buyer's area (geo policy strict); "
                    "the pool needs at least 1 number there",
                    role=None,
                    needed=1,
                )
            return NoNumberInRegion(
                f"no free relay number in the buyer's area (geo policy strict): all {len(candidates)} "
                "there are taken for these parties or full; the pool needs at least 1 more number there",
                role=None,
                needed=1,
            )
        # nearest never leaves the anchor's country; global goes anywhere.
        where = "the pool" if policy == "global" else f"country {country}"
        scope = "" if policy == "global" else " (geo policy nearest never gives a number of another country)"
        if not candidates:
            return PoolExhausted(
                f"the pool has no active relay number with voice in {where}{scope}; "
                "it needs at least 1 number there",
                needed=1,
            )
        if busy:
            return PoolExhausted(
                f"the pool is exhausted for role {role} in {where}{scope}: every relay number there "
                f"already carries this {role} (or is cooling down for it); it needs at least 1 more number",
                role=role,
                needed=1,
            )
        return PoolExhausted(
            f"the pool is exhausted in {where}{scope}: all {len(candidates)} relay numbers there are at "
            "their binding cap or out of extensions; it needs at least 1 more number",
            needed=1,
        )

    def _release_quietly(
        self, relay: str, binding_id: str, extension: str | None, indexes: list[bytes], owner: str
    ) -> None:
        try:
            self.routes.release(
                relay, binding_id=binding_id, extension=extension, indexes=indexes, owner=owner
            )
        except Exception:  # the sweeper reconciles what this could not undo
            log.warning("could not release claim %s on %s; the sweeper will", binding_id, relay)

    # -- reading -------------------------------------------------------------------

    def _load(self, session: Session, binding_id: str, owner: str | None) -> Binding:
        # Anything that cannot be an id (a NUL byte, say, which PostgreSQL
        # refuses outright) is simply not found.
        binding = session.get(Binding, binding_id) if is_binding_id(binding_id) else None
        if binding is None or (owner is not None and binding.owner != owner):
            raise BindingNotFound(f"no binding {binding_id}")
        return binding

    def get(self, binding_id: str, *, owner: str | None = None) -> BindingView:
        with self.db.session() as session:
            return self._view(self._load(session, binding_id, owner))

    def find(self, *, owner: str | None = None, order_id: str | None = None) -> list[BindingView]:
        with self.db.session() as session:
            query = select(Binding).order_by(Binding.created_at, Binding.id)
            if owner is not None:
                query = query.where(Binding.owner == owner)
            if order_id is not None:
                query = query.where(Binding.order_id == order_id)
            return [self._view(b) for b in session.scalars(query)]

    def page(
        self,
        *,
        owner: str,
        order_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        after: tuple[dt.datetime, str] | None = None,
    ) -> list[BindingView]:
        """An owner's bindings, newest first, ``limit`` at a time.

        ``status`` is what a view shows (active, expired, unbound): a binding
        past its expiry counts as expired before the sweeper marks it.
        ``after`` is the (created_at, id) of the last binding of the previous page.
        """
        now = self._clock()
        query = (
            select(Binding)
            .options(selectinload(Binding.members))
            .where(Binding.owner == owner)
            .order_by(Binding.created_at.desc(), Binding.id.desc())
            .limit(limit)
        )
        if order_id is not None:
            query = query.where(Binding.order_id == order_id)
        if status == "active":
            query = query.where(Binding.status == "active", Binding.expires_at > now)
        elif status == "expired":
            query = query.where(
                or_(Binding.status == "expired", and_(Binding.status == "active", Binding.expires_at <= now))
            )
        elif status is not None:
            query = query.where(Binding.status == status)
        if after is not None:
            created, last_id = after
            query = query.where(
                or_(Binding.created_at < created, and_(Binding.created_at == created, Binding.id < last_id))
            )
        with self.db.session() as session:
            return [self._view(b) for b in session.scalars(query)]

    def _view(self, binding: Binding | NewBinding, *, fallback_used: bool = False) -> BindingView:
        now = self._clock()
        status = binding.status
        if status == "active" and now >= binding.expires_at:
            status = "expired"
        return BindingView(
            id=binding.id,
            owner=binding.owner,
            order_id=binding.order_id,
            mode=binding.mode,  # type: ignore[arg-type]
            relay_number=binding.relay_number,
            extension=binding.extension,
            status=status,
            expires_at=binding.expires_at,
            created_at=binding.created_at,
            roles=[m.role for m in binding.parties],
            allow=("any" if binding.allow_any else "list") if binding.mode == "axe" else None,
            allowed_callers=len(binding.callers),
            fallback_used=fallback_used,
            record=bool(binding.record),
            sms_redact=_redactions(binding.sms_redact),
            sms_media=binding.sms_media,
            delivered_at=binding.delivered_at,
            language=binding.language,
        )

    # -- changing ------------------------------------------------------------------

    def party_indexes(self, session: Session, binding: Binding) -> list[bytes]:
        """The Redis route indexes of a binding's bound parties."""
        bound = binding.parties[:1] if binding.mode == "axe" else binding.parties
        return [member_index(session, self.vault, m.token) for m in bound]

    def extend(
        self,
        binding_id: str,
        *,
        owner: str | None = None,
        ttl: dt.timedelta | None = None,
        expires_at: dt.datetime | None = None,
        actor: str | None = None,
        reason: str = "",
    ) -> BindingView:
        """Give a live binding a new expiry (ttl from now, or an absolute time)."""
        return self.update(
            binding_id, owner=owner, ttl=ttl, expires_at=expires_at, actor=actor, reason=reason
        )

    def update(
        self,
        binding_id: str,
        *,
        owner: str | None = None,
        ttl: dt.timedelta | None = None,
        expires_at: dt.datetime | None = None,
        allow: list[str] | Literal["any"] | None = None,
        delivered: bool = False,
        region: str | None = None,
        actor: str | None = None,
        reason: str = "",
    ) -> BindingView:
        """Change a live binding in one step: a new expiry, a new allow-list
        (axe), and/or "the order was delivered" (it then ends after the
        delivery grace period, and can no longer be extended).

        A new expiry may be earlier than the current one: the compat faces
        keep their vendors' "set the expiry" meaning. :meth:`change` is the
        variant that refuses to shorten unless told to.
        """
        return self.change(
            binding_id,
            owner=owner,
            ttl=ttl,
            expires_at=expires_at,
            allow=allow,
            delivered=delivered,
            region=region,
            actor=actor,
            reason=reason,
        ).view

    def change(
        self,
        binding_id: str,
        *,
        owner: str | None = None,
        ttl: dt.timedelta | None = None,
        extend_by: dt.timedelta | None = None,
        expires_at: dt.datetime | None = None,
        allow_shorten: bool = True,
        allow: list[str] | Literal["any"] | None = None,
        delivered: bool = False,
        region: str | None = None,
        actor: str | None = None,
        reason: str = "",
    ) -> ExpiryChange:
        """Change a live binding in one step, and say what its expiry was.

        The new expiry is at most one of ``ttl`` (from now), ``extend_by``
        (added to the current expiry) or ``expires_at``. When it would be
        earlier than the current one and ``allow_shorten`` is false,
        WouldShorten is raised with nothing changed. Marking the order
        delivered ends it after the delivery grace, whatever ``allow_shorten``
        says: that is what "delivered" means.

        All of it or none: InvalidRequest names the field, BindingNotLive if
        it has ended, RoutingUnavailable if Redis cannot take the change.
        Listeners hear ``binding.updated`` with ``actor``, ``reason`` and
        what changed (the previous expiry included).
        """
        now = self._clock()
        given = [
            name
            for name, v in (
                ("ttl_seconds", ttl),
                ("extend_by_seconds", extend_by),
                ("expires_at", expires_at),
            )
            if v is not None
        ]
        if len(given) > 1:
            raise InvalidRequest(given[0], f"give only one of {', '.join(given)}")
        new_expiry = bool(given)
        if delivered and new_expiry:
            raise InvalidRequest("status", "a delivered order's binding cannot also be extended")
        if extend_by is not None and extend_by <= dt.timedelta(0):
            raise InvalidRequest("extend_by_seconds", "must be positive")
        with self.db.session() as session:
            binding = self._load(session, binding_id, owner)
            if not binding.is_live(now):
                raise BindingNotLive(f"binding {binding_id} has ended; create a new one")
            previous = binding.expires_at
            expires = previous
            if new_expiry:
                if binding.delivered_at is not None:
                    raise InvalidRequest(given[0], "the order was delivered: its binding cannot be extended")
                if extend_by is not None:
                    expires = self._expiry(None, previous + extend_by, now, field="extend_by_seconds")
                else:
                    expires = self._expiry(ttl, expires_at, now)
                if expires < previous and not allow_shorten:
                    raise WouldShorten(current=previous, requested=expires)
            if delivered and binding.delivered_at is None:
                binding.delivered_at = now
                expires = min(expires, now + self.policy.delivery_grace)
            allow_text = None if allow is None else self._replace_allow_list(session, binding, allow, region)
            binding.expires_at = expires
            binding.version += 1
            session.flush()
            self.routes.extend(
                binding.relay_number,
                binding_id=binding.id,
                version=binding.version,
                now=epoch(now),
                expires=epoch(expires),
                extension=binding.extension,
                indexes=self.party_indexes(session, binding),
                allow=allow_text,
            )
            changes: dict[str, object] = {}
            if new_expiry or delivered:
                changes["expires_at"] = _iso(expires)
                changes["previous_expires_at"] = _iso(previous)
            if delivered:
                changes["delivered"] = True
            if allow is not None:
                changes["allow"] = "any" if allow == "any" else len(allow)
            view = self._view(binding)
            self._emit(
                session,
                BindingEvent(
                    type="binding.updated", binding=view, at=now, actor=actor, reason=reason, changes=changes
                ),
            )
            return ExpiryChange(view=view, previous_expires_at=previous)

    def _replace_allow_list(
        self, session: Session, binding: Binding, allow: list[str] | Literal["any"], region: str | None
    ) -> str:
        """Swap an axe binding's allowed callers in SQL; returns the new Redis allow value."""
        if binding.mode != "axe":
            raise InvalidRequest("allow", "only an axe binding has an allow-list")
        if allow != "any":
            if not isinstance(allow, list):
                raise InvalidRequest("allow", 'must be a list of numbers or "any"')
            if len(allow) > MAX_ALLOWED_CALLERS:
                raise InvalidRequest("allow", f"allows at most {MAX_ALLOWED_CALLERS} callers")
        # Other parties of an axe binding are allowed callers by role; they stay.
        kept = [m for m in binding.members if not (m.kind == "caller" and m.role == "caller")]
        if len(kept) != len(binding.members):
            binding.members = kept
            session.flush()  # the old callers' rows go before new ones take their positions
        others = [
            AllowedCaller(index=member_index(session, self.vault, m.token), role=m.role, token=m.token)
            for m in kept
            if m.kind == "caller"
        ]
        if allow == "any":
            binding.allow_any = True
            return allow_value(None)
        normalized = [
            (f"allow[{i}]", self.vault.normalize(raw, field=f"allow[{i}]", region=region))
            for i, raw in enumerate(allow)
        ]
        seen: dict[str, str] = {}
        for field, e164 in normalized:
            if e164 in seen:
                raise InvalidRequest(field, f"is the same number as {seen[e164]}")
            seen[e164] = field
        relays = set(session.scalars(select(RelayNumber.e164).where(RelayNumber.e164.in_(list(seen)))).all())
        party_tokens = {m.token for m in kept}
        callers: list[AllowedCaller] = []
        position = max((m.position for m in kept), default=-1) + 1
        for field, e164 in normalized:
            if e164 in relays:
                raise InvalidRequest(field, "is a relay number of this pool; relay numbers cannot be callers")
            token = self.vault.put_normalized(session, e164).token
            if token in party_tokens:
                raise InvalidRequest(field, "is already a party of this binding")
            callers.append(
                AllowedCaller(index=short_index(self.vault.index_of(e164)), role="caller", token=token)
            )
            binding.members.append(
                BindingMember(position=position, kind="caller", role="caller", token=token)
            )
            position += 1
        binding.allow_any = False
        return allow_value(others + callers)

    def unbind(
        self, binding_id: str, *, owner: str | None = None, actor: str | None = None, reason: str = ""
    ) -> BindingView:
        """End a binding now. Idempotent for a binding that has already ended.

        If Redis cannot be reached the whole unbind fails and nothing
        changes (the caller retries); SQL and Redis never disagree about it.
        """
        now = self._clock()
        with self.db.session() as session:
            binding = self._load(session, binding_id, owner)
            if binding.status != "active":
                return self._view(binding)
            status = "unbound" if now < binding.expires_at else "expired"
            self.end(session, binding, status=status, now=now, actor=actor, reason=reason)
            return self._view(binding)

    def end(
        self,
        session: Session,
        binding: Binding,
        *,
        status: str,
        now: dt.datetime,
        actor: str | None = None,
        reason: str = "",
    ) -> None:
        """Mark ended in SQL and turn its Redis entries into cool-down tombstones.

        Runs inside the caller's transaction: a Redis failure raises
        RoutingUnavailable and the SQL change is rolled back with it.
        """
        ended = min(now, binding.expires_at)
        binding.status = status
        binding.ended_at = ended
        binding.version += 1
        session.flush()
        self.routes.end(
            binding.relay_number,
            binding_id=binding.id,
            version=binding.version,
            ended=epoch(ended),
            mode=binding.mode,
            extension=binding.extension,
            indexes=self.party_indexes(session, binding),
            owner=binding.owner,
        )
        kind: BindingEventType = "binding.expired" if status == "expired" else "binding.unbound"
        self._emit(
            session,
            BindingEvent(type=kind, binding=self._view(binding), at=ended, actor=actor, reason=reason),
        )
        if ended == now:  # it counted as live until now
            self.load_counts.add(binding.relay_number, -1)

    def unbind_party(
        self, session: Session, token: str, *, actor: str | None = None, reason: str = ""
    ) -> int:
        """End every live binding a vault token takes part in (used by erase)."""
        now = self._clock()
        ids = session.scalars(
            select(BindingMember.binding_id).where(BindingMember.token == token).distinct()
        ).all()
        ended = 0
        for binding_id in ids:
            binding = session.get(Binding, binding_id)
            if binding is not None and binding.status == "active":
                self.end(session, binding, status="unbound", now=now, actor=actor, reason=reason)
                ended += 1
        return ended


def _copy_options(req: BindRequest) -> CopyOptions:
    """The options a route copy keeps, as the binding's SQL row has them."""
    redact = None if req.sms_redact is None else ",".join(sorted(req.sms_redact))
    return CopyOptions(record=req.record, sms_redact=redact, sms_media=req.sms_media, language=req.language)
