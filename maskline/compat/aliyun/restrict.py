"""CallRestrict: Alibaba's one-way call restrictions, enforced on the webhook path.

``CONTROL_AX_DISABLE``: A cannot call X. ``CONTROL_BX_DISABLE``: B cannot
call X. Either way the other side still can, and X still calls out to the
restricted party. Only calls: Alibaba's CallRestrict speaks of calls, and
texts are left alone.

Who A and B are, by maskline role:

* BindAxb: A is ``a``, B is ``b``;
* BindAxnExtension: A is the bound ``buyer``, B the one allowed ``caller``
  (PhoneNoB); without PhoneNoB there is no B, and CONTROL_BX_DISABLE is refused;
* BindAxg: A is the bound ``buyer``, B the party ``b`` (PhoneNoB), never a
  number of group G; without PhoneNoB, CONTROL_BX_DISABLE is refused.

The restriction is stored with the subscription (``aliyun_subscriptions``)
and asked by :class:`CallRestrictions`, one of the webhook service's
interceptors, before a call is connected.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from maskline.compat.aliyun.models import AliyunSubscription
from maskline.numbers.models import Binding
from maskline.webhooks.interfaces import StepDecision

log = logging.getLogger(__name__)

AX_DISABLE = "CONTROL_AX_DISABLE"
BX_DISABLE = "CONTROL_BX_DISABLE"
CLEAR = "CONTROL_CLEAR_DISABLE"
RESTRICTIONS = (AX_DISABLE, BX_DISABLE)
# Seconds a subscription's restriction is kept per web process: a change
# made through another process applies to calls within this long.
CACHE_SECONDS = 5.0
MAX_CACHED = 100_000


def restricted_roles(call_restrict: str | None, *, mode: str, group: bool) -> frozenset[str]:
    """The roles that may not call X under ``call_restrict``.

    ``group``: the binding is an AXG one (its B is the party ``b``, not an
    allowed ``caller``, which are G's numbers).
    """
    if call_restrict == AX_DISABLE:
        return frozenset({"a"} if mode == "axb" else {"buyer"})
    if call_restrict == BX_DISABLE:
        return frozenset({"b"} if mode == "axb" or group else {"caller"})
    return frozenset()


class CallRestrictions:
    """``(kind, decision, sid) -> go ahead?`` for :attr:`WebhookService.interceptors`.

    Per binding, what it restricts is looked up once (an indexed query on
    the webhook path's database client) and kept: for good when the binding
    is not this face's (it never becomes one; a dictionary lookup from then
    on), for :data:`CACHE_SECONDS` when it is. An UpdateSubscription
    ``updateCallRestrict`` applies at once in the process that served it
    (it calls :meth:`forget`), and within :data:`CACHE_SECONDS` in any other.

    While no subscription restricts calls at all (asked every
    :data:`CACHE_SECONDS`, an indexed query), every call goes ahead at the
    cost of a clock read: most deployments never use CallRestrict, and then
    the webhook path pays nothing per binding. A restriction set in another
    process applies within :data:`CACHE_SECONDS`, as a change does.

    Fails closed: a lookup that cannot run raises, and the webhook service
    answers a raising interceptor with its apology (no connection). A
    binding whose row is not visible yet (routed in the instant before its
    transaction commits, or a claim whose commit failed) is refused too.
    """

    def __init__(self, *, services: Any, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.services = services
        self._monotonic = monotonic
        self._lock = threading.Lock()
        # binding id -> (until, roles that may not call X)
        self._known: dict[str, tuple[float, frozenset[str]]] = {}
        self._any_until = -math.inf
        self._any = False

    def forget(self, binding_id: str) -> None:
        """Drop what is kept about ``binding_id`` (its restriction changed)."""
        with self._lock:
            self._known.pop(binding_id, None)
            self._any_until = -math.inf  # and ask again whether any restricts

    def _anyone_restricts(self) -> bool:
        now = self._monotonic()
        with self._lock:
            if now < self._any_until:
                return self._any
        with self.services.webhook_backends.db.session() as session:
            found = session.scalar(
                select(AliyunSubscription.binding_id)
                .where(AliyunSubscription.call_restrict.is_not(None))
                .limit(1)
            )
        with self._lock:
            self._any, self._any_until = found is not None, now + CACHE_SECONDS
        return found is not None

    def __call__(self, kind: str, decision: StepDecision, sid: str) -> bool:
        if kind != "call" or not decision.binding_id:
            return True
        try:
            if not self._anyone_restricts():
                return True
            roles = self._roles(decision.binding_id)
        except Exception as exc:
            log.warning("call restriction lookup failed: %s", type(exc).__name__)
            raise
        if roles is None:
            log.info("call on binding %s refused: its row is not visible", decision.binding_id)
            return False
        if decision.from_role in roles:
            log.info("CallRestrict refused a call from %s on %s", decision.from_role, decision.binding_id)
            return False
        return True

    def _roles(self, binding_id: str) -> frozenset[str] | None:
        now = self._monotonic()
        with self._lock:
            hit = self._known.get(binding_id)
            if hit is not None and now < hit[0]:
                return hit[1]
        with self.services.webhook_backends.db.session() as session:
            row = session.execute(
                select(
                    Binding.mode,
                    AliyunSubscription.binding_id,
                    AliyunSubscription.call_restrict,
                    AliyunSubscription.group_id,
                )
                .outerjoin(AliyunSubscription, AliyunSubscription.binding_id == Binding.id)
                .where(Binding.id == binding_id)
            ).first()
        if row is None:
            return None  # not committed (yet): nothing kept, asked again next time
        mode, subscription, call_restrict, group_id = row
        roles = restricted_roles(call_restrict, mode=mode, group=group_id is not None)
        # Not this face's binding: it never becomes one, so kept for good.
        until = math.inf if subscription is None else now + CACHE_SECONDS
        with self._lock:
            if len(self._known) >= MAX_CACHED:
                self._known.clear()
            self._known[binding_id] = (until, roles)
        return roles


def register(app_extensions: dict[str, Any], interceptor: CallRestrictions) -> None:
    """Add the interceptor to the webhook service of this app (if it has one)."""
    hooks = app_extensions.get("maskline.webhooks")
    if hooks is not None:
        hooks.service.interceptors.append(interceptor)
