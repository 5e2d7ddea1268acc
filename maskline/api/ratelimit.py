"""/v1's per-key rate limits, per scope: one Redis call per request, no Flask-Limiter.

Flask-Limiter's per-request machinery (filters, exemption scopes, context
proxies, header injection) cost a bind about a tenth of its web CPU, for a
counter the storage already answers in one round trip. This counts the same
way with the ``limits`` library Flask-Limiter itself uses, in the same Redis:
fixed windows, one key per (API key, scope, limit) -- the key Flask-Limiter
wrote for a shared scope limit, ``LIMITER/ml:rl/key:<id>/<scope>/<limit>`` --
so a counter survives the upgrade. With the Redis storage of
:mod:`maskline.limiter_storage` a hit and its window's reset come back
together: one call per limit.

The answer keeps Flask-Limiter's ``X-RateLimit-Limit``, ``-Remaining`` and
``-Reset`` headers (of the breached limit, else of the smallest window). A
counter store that cannot be reached lets the request through and says so in
the log: limits guard against abuse, while authentication and routing stay
fail-closed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)
# Flask-Limiter's key_prefix for /v1, the first part of each counter's key.
_PREFIX = "ml:rl"


@dataclass(frozen=True)
class Window:
    """One limit's state after this request's hit."""

    limit: Any  # limits.RateLimitItem
    remaining: int
    reset_at: int  # epoch seconds, as X-RateLimit-Reset
    breached: bool

    def headers(self, *, retry_after: str | None) -> dict[str, str]:
        """The ``X-RateLimit-*`` headers, and ``Retry-After`` where the answer
        has one (a 429 or 503): the later of it and this window's reset."""
        out = {
            "X-RateLimit-Limit": str(self.limit.amount),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }
        if retry_after is not None:
            now = time.time()
            until = self.reset_at
            if retry_after.isdigit():
                until = max(until, math.ceil(now + int(retry_after)))
            out["Retry-After"] = str(max(1, math.ceil(until - now)))
        return out

    def describe(self) -> str:
        """The breached limit in words ("2 per 1 minute"), as the 429 says it."""
        return str(self.limit)


class ScopeLimits:
    """``hit(key, scope)``: count one request against the scope's limits."""

    def __init__(self, *, storage_uri: str, limits: Mapping[str, str]) -> None:
        from limits import parse_many
        from limits.storage import storage_from_string
        from limits.strategies import FixedWindowRateLimiter

        self._limiter = FixedWindowRateLimiter(storage_from_string(storage_uri))
        # Smallest window first, as Flask-Limiter evaluated them.
        self._limits = {scope: sorted(parse_many(value)) for scope, value in limits.items()}

    def hit(self, key: str, scope: str) -> Window | None:
        """The window to report (the first breached, which ends the count as
        Flask-Limiter's did, else the smallest), or None: no limit for the
        scope, or the store is down."""
        shown: Window | None = None
        for item in self._limits.get(scope, []):
            try:
                allowed = self._limiter.hit(item, _PREFIX, key, scope)
                stats = self._limiter.get_window_stats(item, _PREFIX, key, scope)
            except Exception as exc:
                log.warning("api rate limit not counted: %s", type(exc).__name__)
                return None
            window = Window(item, stats.remaining, int(stats.reset_time + 1), breached=not allowed)
            if not allowed:
                return window
            if shown is None:
                shown = window
        return shown
