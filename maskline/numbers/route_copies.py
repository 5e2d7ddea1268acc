"""Route copies: an axb binding's party numbers, sealed, beside its routes in Redis.

A webhook connect needs the target's number for the TwiML and the binding's
options (recording, SMS redaction and media, language). Kept in Redis with
the routes, they come back in the step script's one reply and the connect
makes no SQL call. One field per binding in a hash beside the relay
number's routes, on the same slot:

    ml:{X}:cp   bid (10 raw bytes) -> sealed copy (maskline.vault.sealing.seal_route)

(A hash of its own: a third field per binding in ml:{X} would push a relay
number's 200 bindings past Redis's listpack limit of 512 fields, and the
hash table costs more than twice the memory.)

whose plaintext is both parties' numbers (BCD, in role order) and the
options (one flags byte and the language); at most 64 bytes, so the hash
stays a listpack. The copy lives exactly as long as the binding is live: a
claim writes it (same round trip as the routes), an end, release or party
replacement deletes it (erasing a party ends its bindings), rotation seals
it again under the new KEK's route key, and a rebuild writes it anew (the
upgrade runs one) -- except for bindings made before the relay number's hash
lost its data: the decision records that refuse replays of their calls went
with it, so their connects keep reading SQL, which knows which calls ended.

Anything missing or not opening means the connect reads SQL as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import Any

from maskline.numbers.routes import INDEX_BYTES, pack_binding_id, route_key, unpack_binding_id
from maskline.redis_backend import REDIS_ERRORS
from maskline.vault import sealing
from maskline.vault.interfaces import VaultIntegrityError
from maskline.vault.keyring import KeyRing

# When a rebuild found the relay number's hash without its generation marker
# (Redis lost its data, the decision records included): epoch seconds.
LOST_FIELD = "lost"
_RECORD, _MEDIA_SET, _MEDIA_REFUSE, _REDACT_SET, _REDACT_PHONES, _REDACT_LINKS = (1, 2, 4, 8, 16, 32)
_REDACTIONS = {"phones": _REDACT_PHONES, "links": _REDACT_LINKS}


def copies_key(relay: str) -> str:
    """The route copies of ``relay``'s bindings (on its slot)."""
    return f"{route_key(relay)}:cp"


def copy_field(binding_id: str) -> bytes:
    """The field of ``binding_id``'s copy in :func:`copies_key` (10 bytes)."""
    return pack_binding_id(binding_id)


@dataclass(frozen=True, kw_only=True)
class CopyOptions:
    """A binding's options as SQL stores them (None: the deployment's)."""

    record: bool
    sms_redact: str | None  # comma list, "" for none
    sms_media: str | None
    language: str | None


def pack_options(o: CopyOptions) -> bytes:
    """One flags byte and the language; ValueError for what it cannot say."""
    flags = _RECORD if o.record else 0
    if o.sms_media is not None:
        if o.sms_media not in ("forward", "refuse"):
            raise ValueError("sms_media")
        flags |= _MEDIA_SET | (_MEDIA_REFUSE if o.sms_media == "refuse" else 0)
    if o.sms_redact is not None:
        flags |= _REDACT_SET
        for name in filter(None, o.sms_redact.split(",")):
            flags |= _REDACTIONS[name]  # KeyError (a ValueError's cousin) on an unknown one
    return bytes([flags]) + (o.language or "").encode()


def unpack_options(raw: bytes) -> CopyOptions:
    if not raw:
        raise VaultIntegrityError("route copy without options")
    flags = raw[0]
    media = None
    if flags & _MEDIA_SET:
        media = "refuse" if flags & _MEDIA_REFUSE else "forward"
    redact = None
    if flags & _REDACT_SET:
        redact = ",".join(name for name, bit in sorted(_REDACTIONS.items()) if flags & bit)
    return CopyOptions(
        record=bool(flags & _RECORD), sms_redact=redact, sms_media=media, language=raw[1:].decode() or None
    )


def seal_copy(
    ring: KeyRing, *, relay: str, binding_id: str, numbers: dict[str, str], options: CopyOptions
) -> bytes | None:
    """The sealed copy, or None when the binding has none (more or fewer than
    two parties, options or numbers it cannot hold): connects then read SQL."""
    if len(numbers) != 2:
        return None
    try:
        extra = pack_options(options)
        return sealing.seal_route(ring, relay=relay, binding_id=binding_id, numbers=numbers, extra=extra)
    except (ValueError, KeyError):
        return None


def open_copy(
    ring: KeyRing, sealed: bytes, *, relay: str, binding_id: str, roles: list[str]
) -> tuple[dict[str, str], CopyOptions]:
    """(role -> number, options); VaultIntegrityError on any mismatch."""
    numbers, extra = sealing.open_route(ring, sealed, relay=relay, binding_id=binding_id, roles=roles)
    return numbers, unpack_options(extra)


def _load(name: str) -> str:
    package = resources.files("maskline.numbers") / "lua"
    return (package / "common.lua").read_text() + "\n" + (package / f"{name}.lua").read_text()


class RouteCopies:
    """Writes and rewraps the copies of live bindings (rebuild, rotation)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._put = client.register_script(_load("copies"))

    def put(self, relay: str, copies: list[tuple[str, bytes, bytes]]) -> int:
        """Write (binding id, a party's route index, copy) where that route is
        the binding's and live (never for a binding that ended meanwhile).
        Returns the copies written."""
        args: list[Any] = []
        for binding_id, index, sealed in copies:
            args += [pack_binding_id(binding_id), index, sealed, ""]
        if not args:
            return 0
        return int(self._put(keys=[route_key(relay)], args=args))

    def lost_at(self, relay: str, *, now: int | None) -> int:
        """When ``relay``'s hash last lost its data (0: never seen to), after
        recording ``now`` as that time if given (a rebuild found no marker)."""
        if now is not None:
            self.client.hset(route_key(relay), LOST_FIELD, now)
            return now
        return int(self.client.hget(route_key(relay), LOST_FIELD) or 0)

    def rewrap(self, ring: KeyRing, relays: Iterable[str]) -> tuple[int, int]:
        """Seal every copy not under the primary KEK again under it; copies
        that do not open are deleted (their connects read SQL). Returns
        (resealed, dropped). A copy changed meanwhile is left as it is."""
        primary, resealed, dropped = ring.kek.primary, 0, 0
        for relay in relays:
            held = self.client.hgetall(copies_key(relay))
            if not held:
                continue
            roles: dict[bytes, list[str]] = {}
            for name, value in self.client.hgetall(route_key(relay)).items():
                if len(name) == INDEX_BYTES:
                    roles.setdefault(value[:10], []).append(value[25:].decode().split("|")[3])
            for bid, value in held.items():
                try:
                    if sealing.route_copy_version(value) == primary:
                        continue
                    fresh = sealing.reseal_route(
                        ring, value, relay=relay, binding_id=unpack_binding_id(bid), roles=roles.get(bid, [])
                    )
                except VaultIntegrityError:
                    if self._swap(relay, bid, value, b""):
                        dropped += 1
                    continue
                if self._swap(relay, bid, value, fresh):
                    resealed += 1
        return resealed, dropped

    def _swap(self, relay: str, bid: bytes, old: bytes, new: bytes) -> bool:
        # Compare-and-set in one script call: an end or a new claim wins.
        return bool(self._put(keys=[route_key(relay)], args=[bid, b"", new, old]))

    def count(self, relays: Iterator[str]) -> int:
        """Copies held for ``relays`` (for reports and tests)."""
        try:
            return sum(int(self.client.hlen(copies_key(relay))) for relay in relays)
        except REDIS_ERRORS:
            return 0
