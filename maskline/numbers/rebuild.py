"""Rebuilding Redis routes from SQL, the source of truth.

``rebuild_routes`` writes, for every pool number, its live bindings and its
cool-down tombstones (bindings ended less than the cool-down ago), then sets
the number's generation marker. It is idempotent, and safe beside live
traffic: each entry carries its binding's version, and Lua refuses to
overwrite a newer one, so a rebuild racing an unbind cannot revive it.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, selectinload

from maskline.clock import Clock
from maskline.db import Database
from maskline.numbers.models import Binding, RelayNumber
from maskline.numbers.route_copies import CopyOptions, RouteCopies, seal_copy
from maskline.numbers.routes import (
    AllowedCaller,
    Party,
    RouteStore,
    StoredBinding,
    allow_value,
    epoch,
    short_index,
)
from maskline.vault import sealing
from maskline.vault.blind_index import primary_index
from maskline.vault.keyring import KeyRing
from maskline.vault.models import VaultEntry
from maskline.vault.services import VaultService

log = logging.getLogger(__name__)


def member_index(session: Session, vault: VaultService, token: str) -> bytes:
    """The truncated primary blind index of a vault entry, as Redis keys it.

    Uses the stored index when it is under the primary index key; during a
    blind-index re-index, computes it from the sealed number instead.
    """
    entry = session.get(VaultEntry, token)
    if entry is None or entry.erased or entry.blind_index is None:
        # An erased party routes nowhere: a random index matches no caller.
        return b"\x00" * 12
    ring = vault.keys.current()
    if entry.index_version == ring.index.primary:
        return short_index(entry.blind_index)
    assert entry.wrapped_key is not None and entry.ciphertext is not None
    e164 = sealing.open_sealed(
        ring, entry.wrapped_key, entry.ciphertext, entry_id=entry.token, purpose=entry.purpose
    )
    return short_index(primary_index(ring, e164)[1])


def pool_numbers(db: Database) -> list[str]:
    """Relay numbers that should have routing data (all but retired ones)."""
    with db.session() as session:
        return list(session.scalars(select(RelayNumber.e164).where(RelayNumber.status != "retired")))


class RoutedNumbers:
    """Whether a relay number should have routes: in the pool and not retired,
    exactly the numbers :func:`rebuild_routes` gives a generation marker.

    Asked only when a number's marker is missing, to tell "Redis lost this
    number's data" (rebuild) from "no number of ours" (route nowhere, and
    rebuild nothing: a rebuild would not give it a marker either, so every
    call to it would start another full rebuild). The hot path never asks.

    One primary-key query per number, remembered either way for
    ``ttl_seconds``: a number Twilio keeps sending by mistake costs one query
    per ``ttl_seconds``, not one per request. At most ``max_entries`` numbers
    are remembered (least recently asked go first).
    """

    def __init__(
        self,
        *,
        db: Database,
        ttl_seconds: float = 30.0,
        max_entries: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._ttl = ttl_seconds
        self._max = max_entries
        self._monotonic = monotonic
        self._known: OrderedDict[str, tuple[bool, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, relay_number: str) -> bool:
        """True if ``relay_number`` should have routes; raises what SQL raises."""
        now = self._monotonic()
        with self._lock:
            known = self._known.get(relay_number)
            if known is not None and now - known[1] < self._ttl:
                self._known.move_to_end(relay_number)
                return known[0]

        def status(connection: Connection) -> str | None:
            return connection.execute(
                select(RelayNumber.status).where(RelayNumber.e164 == relay_number)
            ).scalar_one_or_none()

        routed = self._db.read(status) not in (None, "retired")
        with self._lock:
            self._known[relay_number] = (routed, now)
            self._known.move_to_end(relay_number)
            while len(self._known) > self._max:
                self._known.popitem(last=False)
        return routed


@dataclass(frozen=True, kw_only=True)
class RebuildReport:
    numbers: int
    bindings: int
    written: int

    def summary(self) -> str:
        return (
            f"rebuilt routes for {self.numbers} relay numbers: "
            f"{self.bindings} bindings from SQL, {self.written} written"
        )


def stored_binding(session: Session, vault: VaultService, b: Binding) -> StoredBinding:
    """A binding's routing state (live, or a cool-down tombstone) as restore writes it."""
    parties = b.parties[:1] if b.mode == "axe" else b.parties
    active = b.status == "active"
    expires = b.expires_at if active else min(b.ended_at or b.expires_at, b.expires_at)
    allow = ""
    if b.mode == "axe":
        allow = (
            "*"
            if b.allow_any
            else allow_value(
                [
                    AllowedCaller(index=member_index(session, vault, c.token), role=c.role, token=c.token)
                    for c in b.callers
                ]
            )
        )
    return StoredBinding(
        id=b.id,
        version=b.version,
        active=active,
        expires=epoch(expires),
        mode=b.mode,
        extension=b.extension,
        allow=allow,
        last_caller="",
        parties=[
            Party(index=member_index(session, vault, p.token), role=p.role, token=p.token) for p in parties
        ],
    )


def binding_copy(session: Session, vault: VaultService, ring: KeyRing, b: Binding) -> bytes | None:
    """The sealed route copy of an axb binding (None: it gets none, and its
    connects read SQL, e.g. a party's entry no longer opens)."""
    if b.mode != "axb":
        return None
    try:
        numbers = {p.role: vault.open(session, p.token) for p in b.parties}
    except Exception as exc:  # erased meanwhile, integrity: no copy, never a wrong one
        log.warning("no route copy for %s: %s", b.id, type(exc).__name__)
        return None
    options = CopyOptions(
        record=b.record, sms_redact=b.sms_redact, sms_media=b.sms_media, language=b.language
    )
    return seal_copy(ring, relay=b.relay_number, binding_id=b.id, numbers=numbers, options=options)


def rebuild_routes(
    *, db: Database, vault: VaultService, routes: RouteStore, cooldown: dt.timedelta, now: dt.datetime
) -> RebuildReport:
    """Restore every pool number's routes and generation marker from SQL."""
    generation = now.strftime("%Y%m%dT%H%M%S")
    with db.session() as session:
        numbers = session.scalars(select(RelayNumber.e164).where(RelayNumber.status != "retired")).all()
        bindings = session.scalars(
            select(Binding)
            .options(selectinload(Binding.members))
            .where(
                Binding.purged_at.is_(None),
                or_(Binding.status == "active", Binding.ended_at > now - cooldown),
            )
        ).all()
        by_number: dict[str, list[StoredBinding]] = defaultdict(list)
        copies: dict[str, list[tuple[str, bytes, bytes, int]]] = defaultdict(list)
        ring = vault.keys.current()
        for b in bindings:
            stored = stored_binding(session, vault, b)
            by_number[b.relay_number].append(stored)
            sealed = binding_copy(session, vault, ring, b) if stored.active else None
            if sealed is not None:
                copies[b.relay_number].append((b.id, stored.parties[0].index, sealed, epoch(b.created_at)))
    written = 0
    writer = RouteCopies(routes.client)
    for number in sorted(set(numbers) | set(by_number)):
        intact = routes.has_generation(number)
        written += routes.restore(number, by_number.get(number, []), generation=generation, now=epoch(now))
        # After the routes: a copy is written only beside its live route, and
        # only for bindings made since X's hash last lost its data (with it
        # went the records that refuse replays of their calls: those connects
        # keep reading SQL, which knows which calls are over).
        lost = writer.lost_at(number, now=None if intact else epoch(now))
        writer.put(number, [(bid, idx, sealed) for bid, idx, sealed, made in copies[number] if made > lost])
    # The selection sets (relay numbers by place and load) are rebuilt from
    # SQL by the next bind of each country.
    routes.selection_stale()
    if routes.recount_owners is not None:
        try:
            routes.recount_owners()
        except Exception as exc:  # the worker's next pass recounts them
            log.warning("owner counts not recounted after the rebuild: %s", type(exc).__name__)
    report = RebuildReport(
        numbers=len(set(numbers) | set(by_number)), bindings=len(bindings), written=written
    )
    log.info("%s", report.summary())
    return report


class AutoRebuilder:
    """Runs one background rebuild at a time when routing finds its data gone.

    Resolve keeps failing closed (``unavailable``) until the rebuild is done;
    this only makes sure somebody starts it, without stampeding.
    """

    def __init__(
        self, *, db: Database, vault: VaultService, routes: RouteStore, cooldown: dt.timedelta, clock: Clock
    ) -> None:
        self._args = (db, vault, routes, cooldown)
        self._clock = clock
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.runs = 0

    def trigger(self, *, wait: bool = False) -> bool:
        """Start a rebuild unless one is running; True if this call started one."""
        if not self._lock.acquire(blocking=False):
            return False
        self._thread = threading.Thread(target=self._run, name="maskline-rebuild", daemon=True)
        self._thread.start()
        if wait:
            self.join()
        return True

    def join(self) -> None:
        """Wait for the rebuild in progress, if any."""
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        db, vault, routes, cooldown = self._args
        try:
            rebuild_routes(db=db, vault=vault, routes=routes, cooldown=cooldown, now=self._clock())
            self.runs += 1
        except Exception as exc:  # logged and retried on the next trigger
            log.warning("automatic route rebuild failed: %s", type(exc).__name__)
        finally:
            self._lock.release()
