"""What a binding's calls and messages get: recording, SMS redaction, media.

The deployment sets the defaults (``MASKLINE_SMS_REDACT``, ``MASKLINE_SMS_MEDIA``);
a binding may carry its own, chosen when it is made. Both are read on the
hot path of every connect, so they are cached per binding for a short while:
a binding's options never change after it is made, the TTL only bounds the
memory kept for bindings that have gone.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import select

from maskline.db import Database
from maskline.numbers.models import Binding
from maskline.webhooks.interfaces import BackendUnavailable
from maskline.webhooks.sms_redaction import LINK_PLACEHOLDER, redact

__all__ = ["LINK_PLACEHOLDER", "BindingOptions", "BindingOptionsCache", "SmsPolicy"]


@dataclass(frozen=True, kw_only=True)
class SmsPolicy:
    """What happens to a message's content: redaction and media."""

    redact: frozenset[str]
    media: str  # forward or refuse

    def clean(self, body: str, *, region: str) -> str:
        """``body`` without the links and phone numbers this policy redacts, read
        after normalising (maskline.webhooks.sms_redaction; docs/sms-redaction.md).
        Numbers split across messages: maskline.webhooks.sms_carry."""
        return redact(body, region=region, phones="phones" in self.redact, links="links" in self.redact)


@dataclass(frozen=True, kw_only=True)
class BindingOptions:
    """One binding's effective options (its own, else the deployment's)."""

    record: bool
    sms: SmsPolicy
    # The binding's relay number: the only caller ID (and SMS sender) a connect may have.
    relay: str


class BindingOptionsCache:
    """``get(binding_id)``: the binding's options, from SQL at most once per ``ttl_seconds``."""

    def __init__(
        self, *, db: Database, default_sms: SmsPolicy, ttl_seconds: float = 60.0, max_entries: int = 10_000
    ) -> None:
        self._db = db
        self.default_sms = default_sms
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[float, BindingOptions]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, binding_id: str) -> BindingOptions:
        """The options of ``binding_id``; BackendUnavailable if SQL cannot say.

        Failing closed matters: not knowing whether to redact or record must
        not forward a message unredacted or connect a call unannounced.
        """
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(binding_id)
            if hit is not None and now - hit[0] < self._ttl:
                self._entries.move_to_end(binding_id)
                return hit[1]
        options = self._load(binding_id)
        with self._lock:
            self._entries[binding_id] = (now, options)
            self._entries.move_to_end(binding_id)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return options

    def _load(self, binding_id: str) -> BindingOptions:
        query = select(Binding.record, Binding.sms_redact, Binding.sms_media, Binding.relay_number).where(
            Binding.id == binding_id
        )
        try:
            row = self._db.read(lambda connection: connection.execute(query).one_or_none())
        except Exception as exc:
            raise BackendUnavailable(f"binding options: {type(exc).__name__}") from None
        if row is None:
            # A route names a binding SQL does not have: never act on it.
            raise BackendUnavailable("binding options: unknown binding")
        record, redact, media, relay = row
        sms = SmsPolicy(
            redact=self.default_sms.redact if redact is None else frozenset(filter(None, redact.split(","))),
            media=self.default_sms.media if media is None else media,
        )
        return BindingOptions(record=bool(record), sms=sms, relay=relay)
