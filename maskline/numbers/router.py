"""Routing decisions: who does a call or message to a relay number reach?

The caller is recognised by blind index only (an HMAC computed in memory);
the decision takes one Redis round trip. Anything that prevents a decision
is a reject with reason ``unavailable``: routing fails closed.

A relay number without a generation marker is either a pool number whose
routes Redis lost (``unavailable``, and a rebuild from SQL starts) or no
number of the pool at all (``not_pool_number``: a rebuild would not give it
a marker, so it starts none).
"""

from __future__ import annotations

import datetime as dt
import logging
import re

import phonenumbers

from maskline.clock import Clock, system_clock
from maskline.db import Database
from maskline.numbers.interfaces import RouteDecision, RoutingUnavailable
from maskline.numbers.rebuild import AutoRebuilder, RoutedNumbers
from maskline.numbers.routes import RouteStore, epoch, short_index
from maskline.vault.services import VaultService

log = logging.getLogger(__name__)

_EXTENSION = re.compile(r"[0-9]{1,8}\Z")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")


class Router:
    """Resolves (relay number, caller, extension) to a :class:`RouteDecision`."""

    def __init__(
        self,
        *,
        db: Database,
        vault: VaultService,
        routes: RouteStore,
        rebuilder: AutoRebuilder | None = None,
        routed: RoutedNumbers | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.db = db
        self.vault = vault
        self.routes = routes
        self.rebuilder = rebuilder
        # Asked over this router's own SQL client (the webhook path's has short timeouts).
        self.routed = routed if routed is not None else RoutedNumbers(db=db)
        self._clock = clock

    def caller_index(self, caller: str) -> bytes | None:
        """The truncated blind index of a caller, or None if it is no valid number.

        Twilio sends callers in E.164 already; such a caller is indexed as it
        is, without a second parse (a third of a connect's Python time). If
        it is not a valid number, its index matches no party: every party
        was normalized (and validated) when it was bound.
        """
        if _E164.fullmatch(caller):
            return short_index(self.vault.index_of(caller))
        try:
            e164 = self.vault.normalize(caller, field="caller")
        except Exception:
            return None  # anonymous, withheld or malformed caller ids match nobody
        return short_index(self.vault.index_of(e164))

    def resolve(
        self,
        relay_number: str,
        caller: str,
        extension: str | None = None,
        now: dt.datetime | None = None,
        *,
        caller_index: bytes | None = None,
    ) -> RouteDecision:
        """Where a call from ``caller`` to ``relay_number`` goes; never raises.

        ``caller_index`` is :meth:`caller_index` of ``caller``, for callers
        that have already computed it.
        """
        when = now or self._clock()
        relay = _relay_e164(relay_number)
        if relay is None:
            return self._reject("no_binding")
        if extension is not None and not _EXTENSION.fullmatch(extension):
            return self._reject("bad_extension")
        try:
            decision = self.routes.resolve(
                relay,
                caller_index=caller_index if caller_index is not None else self.caller_index(caller),
                extension=extension or None,
                now=epoch(when),
            )
        except RoutingUnavailable:
            return self._reject("unavailable")
        except Exception as exc:  # fail closed on anything unexpected, and say so
            log.warning("routing failed closed: %s", type(exc).__name__)
            return self._reject("unavailable")
        if decision.action == "reject":
            if decision.reason == "unavailable":
                return self.without_marker(relay)
            return decision
        if decision.extra.get("remember_caller") and decision.binding_id:
            self.remember(relay, decision.binding_id, caller)
        return decision

    def without_marker(self, relay: str) -> RouteDecision:
        """Redis answers but holds no generation marker for ``relay``."""
        try:
            routed = self.routed(relay)
        except Exception as exc:  # cannot tell: fail closed, and let the rebuild find out
            log.warning("pool lookup failed: %s", type(exc).__name__)
            routed = True
        if not routed:
            # Misdirected traffic (say, an account number pointed at maskline):
            # a rebuild would not give it a marker, so it would start one per call.
            return self._reject("not_pool_number")
        if self.rebuilder is not None:
            self.rebuilder.trigger()  # one at a time; resolve fails closed until it is done
        return self._reject("unavailable")

    def remember(self, relay: str, binding_id: str, caller: str) -> None:
        """An open extension's caller becomes who the bound party calls back."""
        try:
            with self.db.session() as session:
                token = self.vault.put(session, caller, field="caller").token
            self.routes.remember_caller(relay, binding_id=binding_id, role="caller", token=token)
        except Exception as exc:  # the call still connects; only the call-back is lost
            log.warning("could not remember the caller of %s: %s", binding_id, type(exc).__name__)

    @staticmethod
    def _reject(reason: str) -> RouteDecision:
        return RouteDecision.reject(reason)  # type: ignore[arg-type]


def _relay_e164(number: str) -> str | None:
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
