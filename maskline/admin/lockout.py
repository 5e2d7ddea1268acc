"""Console login lockout per (account, client address), in Redis.

A lockout per account alone lets anyone who knows an admin's name keep that
admin out for good: five wrong passwords every 15 minutes. Here wrong
passwords count per account *and* client address (as resolved through
``MASKLINE_TRUSTED_PROXIES``): ``admin_max_failed_logins`` in a row lock that
address out of that account for ``admin_lockout``, while the admin, from
their own address, still logs in. Guessing one account from many addresses
is slowed by the per-address login throttle (Flask-Limiter, in the console's
views) and raises the ``failed_logins`` alert; the password hash (argon2)
and, for security admins, TOTP stand behind it.

One Redis hash per account, ``ml:{admin:<name>}:lockout``, fields
``<address>:n`` (failures in a row) and ``<address>:until`` (epoch seconds),
expiring a day after its last write. ``maskline admin enable NAME`` (or
``unlock``) deletes it: every address may try again at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

# How long the counters of an address that stopped trying are kept.
KEEP = dt.timedelta(days=1)


class LoginLockouts:
    """Failures in a row per (account, client address); Redis errors propagate
    (the caller falls back to the account-wide lockout in SQL)."""

    def __init__(self, *, redis: Callable[[], Any], max_failures: int, lockout: dt.timedelta) -> None:
        self._redis = redis
        self.max_failures = max_failures
        self.lockout = lockout

    @staticmethod
    def key(name: str) -> str:
        return f"ml:{{admin:{name}}}:lockout"

    def locked(self, name: str, client: str, now: dt.datetime) -> bool:
        until = self._redis().hget(self.key(name), f"{client}:until")
        return until is not None and float(until) > now.timestamp()

    def failed(self, name: str, client: str, now: dt.datetime) -> bool:
        """Count a wrong password; True if it locks ``client`` out of ``name`` now."""
        key = self.key(name)
        client_ = self._redis()
        count = int(client_.hincrby(key, f"{client}:n", 1))
        locks = count >= self.max_failures
        if locks:
            until = (now + self.lockout).timestamp()
            client_.hset(key, mapping={f"{client}:n": 0, f"{client}:until": repr(until)})
        client_.expire(key, int(max(KEEP, self.lockout * 2).total_seconds()))
        return locks

    def succeeded(self, name: str, client: str) -> None:
        self._redis().hdel(self.key(name), f"{client}:n", f"{client}:until")

    def unlock(self, name: str) -> None:
        """Lift every address's lockout of ``name`` (an operator's action)."""
        self._redis().delete(self.key(name))
