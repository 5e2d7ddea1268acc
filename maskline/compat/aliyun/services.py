"""AccessKeys (issued, looked up for signature checks) and the nonce store.

An AccessKey carries the owner and scopes of the API key it is mapped onto;
revoking that key (``maskline apikey revoke``) makes the AccessKey inactive.
Its secret is sealed in the vault: an HMAC signature cannot be checked
against a hash.
"""

from __future__ import annotations

import datetime as dt
import secrets
import string
import threading
import time
from collections.abc import Mapping
from typing import Any

from maskline.api.keys import ApiKeyService, KeyInfo, Principal
from maskline.api.models import ApiKey
from maskline.audit.interfaces import AuditEntry
from maskline.audit.services import AuditLog
from maskline.clock import Clock
from maskline.compat.aliyun.interfaces import SECRET_PURPOSE, AuthError, ServiceUnavailable, Throttled
from maskline.compat.aliyun.models import AliyunAccessKey
from maskline.compat.ratelimits import ScopedRateLimits
from maskline.db import Database
from maskline.vault import sealing
from maskline.vault.interfaces import VaultError
from maskline.vault.models import VaultEntry
from maskline.vault.services import VaultService, new_token

ACCESS_KEY_PREFIX = "MLAK"
_ALPHANUMERIC = string.ascii_letters + string.digits


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))


class AccessKeys:
    """Issue AccessKeys and find (principal, secret) for a presented id."""

    def __init__(
        self, *, db: Database, vault: VaultService, audit: AuditLog, clock: Clock, cache_seconds: float = 5.0
    ) -> None:
        self.db = db
        self.vault = vault
        self.audit = audit
        self.clock = clock
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal, str]] = {}
        self._lock = threading.Lock()

    def create(self, *, name: str, owner: str, scopes: list[str], actor: str) -> tuple[str, str, KeyInfo]:
        """(AccessKey id, secret: shown this once, the API key it maps onto).

        The API key is created (and audited) as any other; its own bearer
        secret is thrown away, so the key is usable only through the AccessKey.
        """
        keys = ApiKeyService(db=self.db, clock=self.clock, audit=self.audit)
        _bearer, info = keys.create(name=name, owner=owner, scopes=scopes, actor=actor)
        access_key_id = ACCESS_KEY_PREFIX + _random(20)
        secret = _random(30)
        token = new_token()
        sealed = sealing.seal(self.vault.keys.current(), secret, entry_id=token, purpose=SECRET_PURPOSE)
        with self.db.session() as session:
            session.add(
                VaultEntry(
                    token=token,
                    purpose=SECRET_PURPOSE,
                    kek_version=sealed.kek_version,
                    wrapped_key=sealed.wrapped_key,
                    ciphertext=sealed.ciphertext,
                    created_at=self.clock(),
                )
            )
            session.flush()
            session.add(
                AliyunAccessKey(
                    id=access_key_id, api_key_id=info.id, secret_token=token, created_at=self.clock()
                )
            )
            self.audit.append(
                session,
                AuditEntry(
                    actor=actor,
                    action="aliyun.accesskey.created",
                    subject=access_key_id,
                    data={"api_key": info.id, "owner": info.owner, "scopes": info.scopes},
                ),
            )
        return access_key_id, secret, info

    def lookup(self, access_key_id: str) -> tuple[Principal, str]:
        """The principal and secret of a live AccessKey, else AuthError.

        Cached for ``cache_seconds``: a revocation takes effect within that.
        """
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(access_key_id)
            if hit is not None and now - hit[0] < self._cache_seconds:
                return hit[1], hit[2]
        try:
            with self.db.session() as session:
                row = session.get(AliyunAccessKey, access_key_id)
                if row is None:
                    raise AuthError(
                        "InvalidAccessKeyId.NotFound", "the AccessKey id is not known", status=404
                    )
                key = session.get(ApiKey, row.api_key_id)
                if key is None or key.revoked_at is not None:
                    raise AuthError("InvalidAccessKeyId.Inactive", "the AccessKey is disabled", status=403)
                secret = self.vault.open(session, row.secret_token)
                principal = Principal(key_id=key.id, owner=key.owner, scopes=frozenset(key.scopes.split()))
        except VaultError:
            # A secret that does not open is never a match; the type only, no detail.
            raise AuthError(
                "InvalidAccessKeyId.Inactive", "the AccessKey cannot be used", status=403
            ) from None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[access_key_id] = (now, principal, secret)
        return principal, secret


class NonceStore:
    """Signature nonces seen within the replay window, one Redis key each.

    One key per (AccessKey, nonce), ``SET NX`` with a TTL: atomic, and on a
    single slot, so it runs unchanged on Redis Cluster. The TTL is twice the
    clock skew allowed: a request stamped ``skew`` ahead of the server stays
    acceptable for ``2 * skew`` after it was first seen.
    """

    def __init__(self, *, redis: Any, max_skew: dt.timedelta) -> None:
        self.redis = redis
        self.ttl_ms = max(1000, int(2 * max_skew.total_seconds() * 1000))

    def spend(self, access_key_id: str, nonce: str) -> None:
        """Remember ``nonce``; AuthError if it was used already, fail closed if Redis is down."""
        try:
            fresh = self.redis.set(f"ml:aliyun:nonce:{access_key_id}:{nonce}", b"1", nx=True, px=self.ttl_ms)
        except Exception:
            raise ServiceUnavailable("the nonce store cannot be reached; retry later") from None
        if not fresh:
            raise AuthError("SignatureNonceUsed", "the signature nonce has been used already")


class RateLimits(ScopedRateLimits):
    """Per-AccessKey rate limits, per scope, as /v1 has them (``api_rate_limits``);
    open when the counter store is down (see :mod:`maskline.compat.ratelimits`)."""

    def __init__(self, *, storage_uri: str, limits: Mapping[str, str]) -> None:
        super().__init__(storage_uri=storage_uri, limits=limits, face="aliyun")

    def hit(self, key_id: str, scope: str) -> None:
        """Count one request of ``key_id`` in ``scope``; Throttled past a limit."""
        retry_after = self.retry_after(key_id, scope)
        if retry_after is not None:
            raise Throttled(retry_after=retry_after)
