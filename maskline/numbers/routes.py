"""The routing store: maskline's Lua scripts over one Redis hash per relay number.

Every key a script touches is ``ml:{X}`` for one relay number X, so each
call stays on one hash slot and runs unchanged on Redis Cluster. Redis holds
no party number: blind indexes (truncated HMACs), binding ids and vault
tokens only. The layout is documented in ``lua/common.lua``.

Any Redis failure becomes :class:`RoutingUnavailable`: callers fail closed.
That includes a cluster's own errors (a slot not covered while a primary is
down, a cluster that cannot be reached), which are not RedisErrors.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from maskline.numbers.interfaces import RejectReason, RouteDecision, RoutingUnavailable
from maskline.numbers.owner_limits import OwnerCounts, owner_key
from maskline.numbers.selection import bump_scores, drop_all_markers, drop_markers, keys_of
from maskline.redis_backend import REDIS_ERRORS, is_cluster

# Bytes of the blind index kept in Redis: 96 bits make a collision between
# two parties on one relay number vanishingly unlikely, at 12 bytes a field.
INDEX_BYTES = 12


def route_key(relay_number: str) -> str:
    """The one Redis key about ``relay_number``; ``{...}`` is its hash tag."""
    return f"ml:{{{relay_number}}}"


def extension_lockdown_key(relay_number: str) -> str:
    """Present (with a TTL) while X's open extensions are locked down; set by
    the webhook step script after too many wrong extensions on X."""
    return f"{route_key(relay_number)}:xl"


def epoch(when: dt.datetime) -> int:
    return int(when.timestamp())


def short_index(index: bytes) -> bytes:
    return index[:INDEX_BYTES]


_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
NO_TOKEN = b"\x00" * 15


def base36(value: int) -> str:
    """Expiries travel and rest in base 36: six characters until the year 4453."""
    if value < 0:
        raise ValueError("negative time")
    digits = ""
    while True:
        value, rem = divmod(value, 36)
        digits = _B36[rem] + digits
        if value == 0:
            return digits


def _b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().lower().rstrip("=")


def _unb32(text: str, size: int) -> bytes:
    padded = text.upper() + "=" * (-len(text) % 8)
    raw = base64.b32decode(padded)
    if len(raw) != size:
        raise ValueError("wrong length")
    return raw


def pack_binding_id(binding_id: str) -> bytes:
    """``bd_`` + 16 base32 characters <-> 10 raw bytes, as Redis stores it."""
    if not binding_id.startswith("bd_"):
        raise ValueError(f"not a binding id: {binding_id!r}")
    return _unb32(binding_id[3:], 10)


def unpack_binding_id(raw: bytes) -> str:
    return "bd_" + _b32(raw)


def pack_token(token: str) -> bytes:
    """``pn_`` + 24 base32 characters <-> 15 raw bytes, as Redis stores it."""
    if not token.startswith("pn_"):
        raise ValueError("not a vault token")
    return _unb32(token[3:], 15)


def unpack_token(raw: bytes) -> str:
    return "pn_" + _b32(raw)


def _token_out(value: bytes) -> str:
    # Route entries hold raw tokens; allow-lists and last callers hold text.
    return unpack_token(value) if len(value) == 15 else value.decode()


def routing_prelude() -> str:
    """The layout helpers and ``resolve_route``, for scripts that route in
    the same round trip as their own work (the webhook step script)."""
    package = resources.files("maskline.numbers") / "lua"
    return (package / "common.lua").read_text() + "\n" + (package / "decide.lua").read_text()


def _load(name: str) -> str:
    package = resources.files("maskline.numbers") / "lua"
    prelude = routing_prelude() if name == "resolve" else (package / "common.lua").read_text()
    return prelude + "\n" + (package / f"{name}.lua").read_text()


@dataclass(frozen=True, kw_only=True)
class Party:
    """A party as Redis knows it: truncated blind index, role and vault token."""

    index: bytes
    role: str
    token: str


@dataclass(frozen=True, kw_only=True)
class AllowedCaller:
    index: bytes
    role: str
    token: str


@dataclass(frozen=True, kw_only=True)
class ClaimResult:
    outcome: str  # ok, full, busy, no_extension, short_extensions, owner_limit
    extension: str | None = None
    busy_party: int | None = None  # 0-based position of the busy party
    limit: int | None = None  # owner_limit: the owner's cap


@dataclass(frozen=True, kw_only=True)
class ExtensionLength:
    """How long an axe binding's extension is (see lua/claim.lua).

    ``default``: a relay number's length when it has none stored (the
    deployment's MASKLINE_EXTENSION_DIGITS); ``wanted``: the length the
    binding gives a relay number that carries no live extension; ``least``:
    the shortest live length it accepts (an allow-any binding never goes
    where extensions are short enough to guess).
    """

    default: int
    wanted: int
    least: int = 0


@dataclass(frozen=True, kw_only=True)
class StoredBinding:
    """A binding's routing state, as restore writes it."""

    id: str
    version: int
    active: bool
    expires: int
    mode: str
    extension: str | None
    allow: str
    last_caller: str
    parties: list[Party]


def allow_value(callers: list[AllowedCaller] | None) -> str:
    """The a:<bid> value: ``*`` for an open extension, else idx=role=token entries."""
    if callers is None:
        return "*"
    return ";".join(f"{c.index.hex()}={c.role}={c.token}" for c in callers)


class RouteStore:
    """maskline's Lua scripts, registered once per client."""

    SCRIPTS = ("claim", "end", "extend", "release", "resolve", "restore")

    # Scripts that change how many live bindings X carries, and so X's score
    # in the selection sets (see maskline.numbers.selection).
    SCORED = frozenset({"claim", "end", "release"})

    def __init__(self, client: Any) -> None:
        self.client = client
        self._scripts = {name: client.register_script(_load(name)) for name in self.SCRIPTS}
        # One node: the scripts move X's selection scores and the owner's
        # count in the same call. A cluster keeps those keys on other slots:
        # a call of their own moves them.
        self._cluster = is_cluster(client)
        self.owners = OwnerCounts(client)
        # Set by wiring: recounts the owners' live bindings and caps from SQL,
        # which a rebuild runs after the routes (a Redis that lost its data,
        # or the embedded one, empty at every start, lost them too).
        self.recount_owners: Callable[[], object] | None = None

    def _run(self, name: str, relay_number: str, args: list[Any], *, owner: str | None = None) -> Any:
        keys = [route_key(relay_number)]
        if name in self.SCORED and not self._cluster:
            keys += keys_of(relay_number)
            if owner is not None:
                keys.append(owner_key(owner))
        try:
            return self._scripts[name](keys=keys, args=args)
        except REDIS_ERRORS as exc:
            raise RoutingUnavailable(f"routing store unavailable: {type(exc).__name__}") from None

    def _rescore(self, relay_number: str, delta: int) -> None:
        if self._cluster:
            bump_scores(self.client, relay_number, delta)

    # -- pool ------------------------------------------------------------------

    def register_number(self, relay_number: str, *, generation: str = "1") -> None:
        """Mark X's hash as present (the generation marker), keeping any data."""
        try:
            self.client.hsetnx(route_key(relay_number), "g", generation)
        except REDIS_ERRORS as exc:
            raise RoutingUnavailable(f"routing store unavailable: {type(exc).__name__}") from None
        self.pool_changed(relay_number)

    def pool_changed(self, relay_number: str) -> None:
        """X joined the pool or changed status: the selection sets of its
        country are built again from SQL by the next bind there."""
        try:
            drop_markers(self.client, relay_number)
        except REDIS_ERRORS as exc:
            raise RoutingUnavailable(f"routing store unavailable: {type(exc).__name__}") from None

    def selection_stale(self) -> None:
        """Every selection set is built again from SQL (after a rebuild)."""
        try:
            drop_all_markers(self.client)
        except REDIS_ERRORS as exc:
            raise RoutingUnavailable(f"routing store unavailable: {type(exc).__name__}") from None

    def lift_extension_lockdown(self, relay_number: str) -> bool:
        """End X's extension lockdown early; True if there was one."""
        try:
            return bool(self.client.delete(extension_lockdown_key(relay_number)))
        except REDIS_ERRORS as exc:
            raise RoutingUnavailable(f"routing store unavailable: {type(exc).__name__}") from None

    def extension_lockdown_left(self, relay_number: str) -> int:
        """Seconds X's extension lockdown has left (0: none)."""
        try:
            return max(0, int(self.client.ttl(extension_lockdown_key(relay_number))))
        except REDIS_ERRORS as exc:
            raise RoutingUnavailable(f"routing store unavailable: {type(exc).__name__}") from None

    def has_generation(self, relay_number: str) -> bool:
        try:
            return bool(self.client.hexists(route_key(relay_number), "g"))
        except REDIS_ERRORS as exc:
            raise RoutingUnavailable(f"routing store unavailable: {type(exc).__name__}") from None

    # -- bindings --------------------------------------------------------------

    def claim(
        self,
        relay_number: str,
        *,
        binding_id: str,
        version: int,
        expires: int,
        mode: str,
        parties: list[Party],
        allow: str = "",
        extension_candidates: list[str] | None = None,
        now: int,
        cooldown: int,
        cap: int,
        owner: str | None = None,
        owner_cap: int = 0,
        length: ExtensionLength | None = None,
        copy: bytes | None = None,
    ) -> ClaimResult:
        """Atomically put a binding on X, or say why X cannot take it.

        With ``owner``, the binding counts against the owner's cap
        (``owner_cap`` unless it has one of its own; 0: none), checked in the
        same step: ``owner_limit`` when it is reached. Extension candidates
        are 9 digits; X's length (``length``) decides how many are used.
        ``copy``: the binding's sealed route copy for X (route_copies.py),
        written with its routes.
        """
        if owner is not None and self._cluster:
            limit = self.owners.take(owner, default_cap=owner_cap)
            if limit is not None:
                return ClaimResult(outcome="owner_limit", limit=limit)
        try:
            result = self._claim(
                relay_number,
                binding_id=binding_id,
                version=version,
                expires=expires,
                mode=mode,
                parties=parties,
                allow=allow,
                extension_candidates=extension_candidates,
                now=now,
                cooldown=cooldown,
                cap=cap,
                owner=owner,
                owner_cap=owner_cap,
                length=length,
                copy=copy,
            )
        except BaseException:
            if owner is not None and self._cluster:
                self._give_back(owner)
            raise
        if owner is not None and self._cluster and result.outcome != "ok":
            self._give_back(owner)
        return result

    def _give_back(self, owner: str) -> None:
        with contextlib.suppress(RoutingUnavailable):  # else the sweeper reconciles the count
            self.owners.give_back(owner)

    def _claim(
        self,
        relay_number: str,
        *,
        binding_id: str,
        version: int,
        expires: int,
        mode: str,
        parties: list[Party],
        allow: str,
        extension_candidates: list[str] | None,
        now: int,
        cooldown: int,
        cap: int,
        owner: str | None,
        owner_cap: int,
        length: ExtensionLength | None,
        copy: bytes | None,
    ) -> ClaimResult:
        args: list[Any] = [
            now,
            cooldown,
            cap,
            pack_binding_id(binding_id),
            version,
            base36(expires),
            mode,
            allow,
            ",".join(extension_candidates or []),
            len(parties),
        ]
        for p in parties:
            args += [p.index, p.role, pack_token(p.token)]
        length = length or ExtensionLength(default=4, wanted=4)
        args += [owner_cap, length.default, length.wanted, length.least]
        if copy:
            args.append(copy)
        result = [_text(x) for x in self._run("claim", relay_number, args, owner=owner)]
        if result[0] == "unavailable":
            raise RoutingUnavailable(f"routing store lost its data for {relay_number}; rebuild needed")
        if result[0] == "ok":
            self._rescore(relay_number, +1)
            return ClaimResult(outcome="ok", extension=result[1] or None)
        if result[0] == "busy":
            return ClaimResult(outcome="busy", busy_party=int(result[1]) - 1)
        if result[0] == "owner_limit":
            return ClaimResult(outcome="owner_limit", limit=int(result[1]))
        return ClaimResult(outcome=result[0])

    def end(
        self,
        relay_number: str,
        *,
        binding_id: str,
        version: int,
        ended: int,
        mode: str,
        extension: str | None,
        indexes: list[bytes],
        owner: str | None = None,
    ) -> bool:
        """Turn a binding's entries into cool-down tombstones; True if it was live
        (then, with ``owner``, it no longer counts against the owner's cap)."""
        args: list[Any] = [
            pack_binding_id(binding_id),
            version,
            ended,
            base36(ended),
            mode,
            extension or "",
            *indexes,
        ]
        was_live = bool(self._run("end", relay_number, args, owner=owner))
        if was_live:
            self._rescore(relay_number, -1)
            if owner is not None and self._cluster:
                self._give_back(owner)
        return was_live

    def extend(
        self,
        relay_number: str,
        *,
        binding_id: str,
        version: int,
        now: int,
        expires: int,
        extension: str | None,
        indexes: list[bytes],
        allow: str | None = None,
    ) -> int:
        """New expiry (and with ``allow``, a new allow-list value) for a live
        binding; returns the entries updated, 0 if Redis holds it not live."""
        args: list[Any] = [
            pack_binding_id(binding_id),
            version,
            now,
            base36(expires),
            extension or "",
            "0" if allow is None else "1",
            allow or "",
            *indexes,
        ]
        return int(self._run("extend", relay_number, args))

    def release(
        self,
        relay_number: str,
        *,
        binding_id: str,
        extension: str | None,
        indexes: list[bytes],
        owner: str | None = None,
    ) -> int:
        """Delete a binding's entries (failed claim, or cool-down over).

        ``owner``: the owner of a live claim being undone (a bind whose SQL
        write failed), which then no longer counts against its cap."""
        args: list[Any] = [pack_binding_id(binding_id), extension or "", *indexes]
        removed = int(self._run("release", relay_number, args, owner=owner))
        if removed and owner is not None and self._cluster:
            self._give_back(owner)
        return removed

    def restore(self, relay_number: str, bindings: list[StoredBinding], *, generation: str, now: int) -> int:
        """Write X's bindings from SQL (idempotent) and set its generation marker."""
        args: list[Any] = [generation, now, len(bindings)]
        for b in bindings:
            args += [
                pack_binding_id(b.id),
                b.version,
                "a" if b.active else "e",
                base36(b.expires),
                b.mode,
                b.extension or "",
                b.allow,
                b.last_caller,
                len(b.parties),
            ]
            for p in b.parties:
                args += [p.index, p.role, pack_token(p.token)]
        return int(self._run("restore", relay_number, args))

    def remember_caller(self, relay_number: str, *, binding_id: str, role: str, token: str) -> None:
        """Record the most recent caller of an open-extension binding."""
        try:
            field = b"l" + pack_binding_id(binding_id)
            self.client.hset(route_key(relay_number), field, f"{role}={token}")
        except REDIS_ERRORS as exc:
            raise RoutingUnavailable(f"routing store unavailable: {type(exc).__name__}") from None

    # -- routing ---------------------------------------------------------------

    def resolve(
        self, relay_number: str, *, caller_index: bytes | None, extension: str | None, now: int
    ) -> RouteDecision:
        """One round trip: where does a call from this caller to X go?"""
        idx = caller_index or b""
        args: list[Any] = [now, idx, idx.hex(), extension or ""]
        result = [
            x if isinstance(x, bytes) else str(x).encode() for x in self._run("resolve", relay_number, args)
        ]
        if result[0] == b"connect":
            return RouteDecision(
                action="connect",
                binding_id=unpack_binding_id(result[1]),
                from_role=result[2].decode(),
                target_role=result[3].decode(),
                target_token=_token_out(result[4]),
                extra={"remember_caller": "1"} if result[5] else {},
            )
        reason: RejectReason = result[1].decode()  # type: ignore[assignment]
        return RouteDecision.reject(reason, binding_id=unpack_binding_id(result[2]) if result[2] else None)

    def fields(self, relay_number: str) -> dict[bytes, bytes]:
        """Every field of X's hash (for tests, dumps and the sweeper)."""
        try:
            return dict(self.client.hgetall(route_key(relay_number)))
        except REDIS_ERRORS as exc:
            raise RoutingUnavailable(f"routing store unavailable: {type(exc).__name__}") from None

    def entries(self, relay_number: str) -> tuple[bool, dict[str, list[bytes]], dict[str, str]]:
        """(has generation marker, binding id -> route indexes, binding id -> extension)."""
        fields = self.fields(relay_number)
        routes: dict[str, list[bytes]] = {}
        extensions: dict[str, str] = {}
        for name, value in fields.items():
            if len(name) == INDEX_BYTES:
                routes.setdefault(unpack_binding_id(value[:10]), []).append(name)
            elif name.startswith(b"x"):
                extensions[unpack_binding_id(value[:10])] = name[1:].decode()
        return b"g" in fields, routes, extensions


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
