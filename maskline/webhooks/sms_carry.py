"""A number split across texts: ``"call me on 138 0013"``, then ``"8000"``.

:class:`SmsCarry` remembers, per (relay number, binding, sender), the
digits of the last run of the sender's previous message, for
:data:`WINDOW` (10 minutes). The next message's first run is joined to them
for the check (:func:`~maskline.webhooks.sms_redaction.is_phone_number`),
whatever text surrounds either; when the joined digits are a phone number,
that first run, which completes the number, is redacted. A message made of
nothing but digits (give or take three characters) that completes nothing
adds them to the carry, so a number sent a few digits at a time is caught
too; a run that was redacted leaves
nothing to carry.

The carried digits are part of a party's number, so they are never stored
in clear: the vault's envelope sealing (AES-256-GCM under a fresh data key
wrapped by the KEK, AAD bound to the Redis key and purpose), in a Redis
string under ``ml:{X}:smscarry:<binding>:<sender>`` (the relay number's
hash tag: the same slot as its routes) with a TTL of the window. The time
the digits were written is sealed with them, so the window is judged on the
clock passed in, not only on the TTL.

A Redis error or a carry that does not open is :class:`BackendUnavailable`:
the caller fails closed, as for any backend it cannot read.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import struct
from collections.abc import Callable
from typing import Any

from maskline.vault.interfaces import VaultIntegrityError
from maskline.vault.keyring import KeyRing
from maskline.vault.sealing import open_sealed, seal
from maskline.webhooks.interfaces import BackendUnavailable
from maskline.webhooks.policy import SmsPolicy
from maskline.webhooks.sms_redaction import (
    MAX_GAP,
    Run,
    apply,
    find_runs,
    is_phone_number,
    link_spans,
    phone_runs,
)

WINDOW = dt.timedelta(minutes=10)
# Digits kept: more than the longest E.164 number, so any number's head fits.
MAX_CARRIED = 15
PURPOSE = "sms-carry"
_LENGTH = struct.Struct(">H")


def _bare(text: str, run: Run) -> bool:
    """Whether ``text`` is ``run`` and at most MAX_GAP other visible characters."""
    outside = (text[: run.start] + text[run.end :]).strip()
    return len(outside) <= MAX_GAP


class SmsCarry:
    """``check(relay, binding_id, sender_index, body, now) -> the body to forward``."""

    def __init__(
        self, *, redis: Any, keyring: Callable[[], KeyRing], region: str, window: dt.timedelta = WINDOW
    ) -> None:
        """``redis``: a redis-py client (cluster or not); ``keyring``: the current key ring
        (e.g. ``KeyRingSource.current``); ``region``: the deployment's, for bindings without one."""
        self._redis = redis
        self._keyring = keyring
        self.region = region
        self.window = window

    @staticmethod
    def key(relay: str, binding_id: str, sender_index: str | bytes) -> str:
        sender = sender_index.hex() if isinstance(sender_index, bytes) else sender_index
        return f"ml:{{{relay}}}:smscarry:{binding_id}:{sender}"

    def check(
        self,
        relay: str,
        binding_id: str,
        sender_index: str | bytes,
        body: str,
        now: dt.datetime,
        *,
        policy: SmsPolicy | None = None,
        region: str | None = None,
    ) -> str:
        """``body`` cleaned as ``policy`` says (default: phones and links), the
        first run also redacted when it completes a number begun in the sender's
        previous messages. Remembers this message's tail for the next one."""
        redact = policy.redact if policy is not None else frozenset({"phones", "links"})
        where = region or self.region
        links = link_spans(body) if "links" in redact else []
        if "phones" not in redact:
            return apply(body, links, [])
        runs = find_runs(body)
        redacted = {(r.start, r.end) for r in phone_runs(body, region=where)}
        if not runs:
            return apply(body, links, redacted)
        key = self.key(relay, binding_id, sender_index)
        carried = self._load(key, now)
        first, last = runs[0], runs[-1]
        joined = False
        if carried and (first.start, first.end) not in redacted:
            joined = True
            if is_phone_number(carried + first.digits, region=where):
                redacted.add((first.start, first.end))
        if (last.start, last.end) in redacted:
            tail = ""
        elif joined and len(runs) == 1 and _bare(body, last):
            # A text that is nothing but digits continues what came before it.
            tail = carried + last.digits
        else:
            tail = last.digits
        self._store(key, tail[-MAX_CARRIED:], now)
        return apply(body, links, redacted)

    # -- the sealed carry ----------------------------------------------------------------

    def _load(self, key: str, now: dt.datetime) -> str:
        try:
            raw = self._redis.get(key)
        except Exception as exc:
            raise BackendUnavailable(f"sms carry: {type(exc).__name__}") from None
        if raw is None:
            return ""
        try:
            blob = base64.b64decode(raw)
            (size,) = _LENGTH.unpack_from(blob)
            wrapped, ciphertext = blob[2 : 2 + size], blob[2 + size :]
            value = json.loads(
                open_sealed(self._keyring(), wrapped, ciphertext, entry_id=key, purpose=PURPOSE)
            )
            digits, written = str(value["d"]), float(value["t"])
        except (VaultIntegrityError, ValueError, KeyError, TypeError, struct.error):
            # Not ours, or tampered with: never a wrong carry, and never a reason to forward unchecked.
            raise BackendUnavailable("sms carry: the stored carry does not open") from None
        if not digits.isdigit() or now.timestamp() - written > self.window.total_seconds():
            return ""
        return digits

    def _store(self, key: str, digits: str, now: dt.datetime) -> None:
        try:
            if not digits:
                self._redis.delete(key)
                return
            plain = json.dumps({"d": digits, "t": now.timestamp()}, separators=(",", ":"))
            sealed = seal(self._keyring(), plain, entry_id=key, purpose=PURPOSE)
            blob = _LENGTH.pack(len(sealed.wrapped_key)) + sealed.wrapped_key + sealed.ciphertext
            self._redis.set(key, base64.b64encode(blob), px=int(self.window.total_seconds() * 1000))
        except Exception as exc:
            raise BackendUnavailable(f"sms carry: {type(exc).__name__}") from None
