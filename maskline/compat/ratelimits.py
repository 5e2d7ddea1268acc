"""Per-key rate limits, per scope, for the compatibility faces, as /v1 has
them (``api_rate_limits`` / ``MASKLINE_API_RATE_LIMITS``).

/v1 counts with Flask-Limiter; a face checks its own credentials first (HTTP
Basic, a signature), so it counts here with the ``limits`` library
(Flask-Limiter's own) in the same Redis: fixed windows, one key per (API
key, scope, limit), single-slot, so it runs on Redis Cluster. A counter store
that cannot be reached lets the request through and says so in the log:
limits guard against abuse, while authentication and routing stay
fail-closed.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)


class ScopedRateLimits:
    """``retry_after(key_id, scope)``: count one request; seconds to wait past a limit, else None."""

    def __init__(self, *, storage_uri: str, limits: Mapping[str, str], face: str) -> None:
        from limits import parse_many
        from limits.storage import storage_from_string
        from limits.strategies import FixedWindowRateLimiter

        options: dict[str, Any] = {"key_prefix": f"ml:rl:{face}"} if storage_uri.startswith("redis") else {}
        self.face = face
        self._limiter = FixedWindowRateLimiter(storage_from_string(storage_uri, **options))
        self._limits = {scope: parse_many(value) for scope, value in limits.items()}

    def retry_after(self, key_id: str, scope: str) -> int | None:
        for item in self._limits.get(scope, []):
            try:
                if self._limiter.hit(item, key_id, scope):
                    continue
                reset = self._limiter.get_window_stats(item, key_id, scope).reset_time
            except Exception as exc:
                log.warning("%s rate limit not counted: %s", self.face, type(exc).__name__)
                return None
            return max(1, math.ceil(reset - time.time()))
        return None
