"""Per-owner caps on live bindings (issue 17: one owner must not hog the pool).

Each owner has a count in Redis, ``ml:{owner:NAME}`` (a hash: ``n`` its live
bindings, ``c`` its own cap when ``maskline owner set-limits`` gave it one;
without ``c`` the deployment's ``MASKLINE_OWNER_MAX_LIVE_BINDINGS`` applies,
0 meaning no cap). SQL stays the truth: ``owners.max_live_bindings`` holds the
cap, and the live bindings are the ``bindings`` rows.

Where the count moves, so that concurrent binds never overshoot the cap:

* on one Redis node, the claim script (``lua/claim.lua``) checks the cap and
  counts the binding in the same step as it claims the relay number: no extra
  round trip; ``end.lua`` and ``release.lua`` count it out the same way;
* on a Redis Cluster the owner's key is on a slot of its own, so a bind first
  takes a place (``lua/owner.lua``: check and increment at once), and gives it
  back if no relay number takes the binding; an end gives it back after it.

Whatever a crash leaves uneven (a claim that died between Redis and SQL, an
orphan released by the sweeper), ``maskline worker`` reconciles from SQL:
:meth:`OwnerCounts.reconcile` sets a count only if nothing moved it since it
was read, so a bind in flight is never wiped out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from importlib import resources
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from maskline.db import Database
from maskline.numbers.interfaces import RoutingUnavailable
from maskline.numbers.models import Binding
from maskline.redis_backend import REDIS_ERRORS

_PREFIX = "ml:{owner:"


def owner_key(owner: str) -> str:
    """The Redis hash of ``owner``'s count; ``{owner:NAME}`` is its hash tag."""
    return f"{_PREFIX}{owner}}}"


def _script(name: str) -> str:
    return (resources.files("maskline.numbers") / "lua" / f"{name}.lua").read_text()


# Sets n to the SQL count only if it still holds what was read before SQL was
# counted (a bind or an end in between wins; the next pass catches up).
_RECONCILE = """
local now = redis.call("HGET", KEYS[1], "n") or "0"
if now ~= ARGV[1] then return 0 end
redis.call("HSET", KEYS[1], "n", ARGV[2])
return 1
"""


class OwnerCounts:
    """The owners' live-binding counts and caps in Redis (see the module docstring)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._take = client.register_script(_script("owner"))
        self._reconcile = client.register_script(_RECONCILE)

    def _fail(self, exc: Exception) -> RoutingUnavailable:
        return RoutingUnavailable(f"routing store unavailable: {type(exc).__name__}")

    def take(self, owner: str, *, default_cap: int) -> int | None:
        """Count one more live binding for ``owner`` unless it is at its cap
        (Redis Cluster only; one node counts in the claim). Returns the cap
        that refused it, or None when counted."""
        try:
            result = self._take(keys=[owner_key(owner)], args=[default_cap])
        except REDIS_ERRORS as exc:
            raise self._fail(exc) from None
        return None if int(result) < 0 else int(result)

    def give_back(self, owner: str) -> None:
        """One live binding fewer for ``owner`` (Redis Cluster only)."""
        try:
            self.client.hincrby(owner_key(owner), "n", -1)
        except REDIS_ERRORS as exc:
            raise self._fail(exc) from None

    def set_cap(self, owner: str, cap: int | None) -> None:
        """``owner``'s own cap (0: none), or None to follow the deployment's."""
        try:
            if cap is None:
                self.client.hdel(owner_key(owner), "c")
            else:
                self.client.hset(owner_key(owner), "c", cap)
        except REDIS_ERRORS as exc:
            raise self._fail(exc) from None

    def counts(self) -> dict[str, int]:
        """Every owner's count as Redis holds it."""
        try:
            out: dict[str, int] = {}
            for key in self.client.scan_iter(match=_PREFIX + "*", count=500):
                name = key.decode() if isinstance(key, bytes) else str(key)
                value = self.client.hget(name, "n")
                out[name[len(_PREFIX) : -1]] = int(value or 0)
            return out
        except REDIS_ERRORS as exc:
            raise self._fail(exc) from None

    def reconcile(self, owner: str, *, read: int, actual: int, cap: int | None) -> bool:
        """Set ``owner``'s count to ``actual`` (from SQL) if it still is ``read``
        (0 when it had none), and its cap to ``cap``; True if the count moved."""
        try:
            self.set_cap(owner, cap)
            if read == actual:
                return False
            return bool(self._reconcile(keys=[owner_key(owner)], args=[read, actual]))
        except REDIS_ERRORS as exc:
            raise self._fail(exc) from None


# Numbers a face holds for an owner outside its bindings (the Twilio face's
# reserved numbers and unpaired participants, the Alibaba face's bought
# numbers): owner -> how many, read in the caller's session.
HeldCounter = Callable[[Session], Mapping[str, int]]
# Owner -> its own cap (None: the deployment's), from the owners table.
CapsLoader = Callable[[Session], Mapping[str, int | None]]


class OwnerLimitSync:
    """Brings the Redis counts back to SQL's truth (``maskline worker``, and
    ``owner set-limits`` for the owner it changes): live bindings plus the
    numbers held for the owner by the faces."""

    def __init__(
        self, *, db: Database, counts: OwnerCounts, caps: CapsLoader, held: Iterable[HeldCounter] = ()
    ) -> None:
        self.db = db
        self.counts = counts
        self._caps = caps
        self.held = list(held)
        # Counts seen above SQL's by the last pass: lowered only when the next
        # pass sees the same (a bind between its claim and its commit is
        # counted in Redis before SQL has its row; it must not be wiped out).
        self._above: dict[str, tuple[int, int]] = {}

    def live(self, session: Session) -> dict[str, int]:
        """Owner -> live bindings and held numbers, from SQL."""
        rows = session.execute(
            select(Binding.owner, func.count()).where(Binding.status == "active").group_by(Binding.owner)
        ).all()
        out: dict[str, int] = {owner: int(n) for owner, n in rows}
        for counter in self.held:
            for owner, n in counter(session).items():
                out[owner] = out.get(owner, 0) + int(n)
        return out

    def reconcile(self, only: str | None = None) -> int:
        """Set every owner's count (or ``only``'s) and cap from SQL; returns
        how many counts moved. A count that moved while SQL was read is left
        for the next pass, and so is one above SQL's until a second pass
        finds it so too (never below what binds in flight hold)."""
        read = self.counts.counts()  # before SQL: see OwnerCounts.reconcile
        with self.db.session() as session:
            actual = self.live(session)
            caps = dict(self._caps(session))
        owners = set(read) | set(actual) | set(caps)
        if only is not None:
            owners &= {only}
            owners.add(only)
        moved = 0
        above: dict[str, tuple[int, int]] = {}
        for owner in sorted(owners):
            seen, truth = read.get(owner, 0), actual.get(owner, 0)
            if seen > truth and self._above.get(owner) != (seen, truth):
                above[owner] = (seen, truth)
                truth = seen  # not yet: only the cap is written
            moved += self.counts.reconcile(owner, read=seen, actual=truth, cap=caps.get(owner))
        self._above = above
        return moved
