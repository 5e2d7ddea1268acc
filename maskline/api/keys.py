"""API keys: created (shown once), listed, revoked, and checked on every request.

A key is ``ml_<id>_<secret>``. Only SHA-256 of the secret is stored. Checks
are cached in memory for a few seconds (a key is checked on every request);
a revocation therefore takes effect within ``cache_seconds``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from maskline import errors
from maskline.api.interfaces import SCOPES
from maskline.api.models import ApiKey
from maskline.audit.interfaces import AuditEntry
from maskline.audit.services import AuditLog
from maskline.clock import Clock
from maskline.db import Database

_KEY = re.compile(r"^ml_([a-z0-9]{12})_([A-Za-z0-9_-]{43})\Z")
_OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,119}\Z")


class KeyRequestInvalid(errors.InputError, ValueError):
    """A key cannot be created as asked (bad owner, name or scope)."""


@dataclass(frozen=True, kw_only=True)
class Principal:
    """Who a request is: the key's id, its owner and its scopes."""

    key_id: str
    owner: str
    scopes: frozenset[str]


@dataclass(frozen=True, kw_only=True)
class KeyInfo:
    id: str
    owner: str
    name: str
    scopes: list[str]
    created_at: dt.datetime
    revoked_at: dt.datetime | None

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "owner": self.owner,
            "name": self.name,
            "scopes": self.scopes,
            "created_at": self.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "revoked_at": self.revoked_at.strftime("%Y-%m-%dT%H:%M:%SZ") if self.revoked_at else None,
        }


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(
        id=row.id,
        owner=row.owner,
        name=row.name,
        scopes=row.scopes.split(),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


class ApiKeyService:
    """Keys of owners. With an ``audit`` log, creating and revoking with an
    ``actor`` appends ``apikey.created`` / ``apikey.revoked`` in the same
    transaction (subject: the key id; never the key or its hash)."""

    def __init__(
        self, *, db: Database, clock: Clock, cache_seconds: float = 5.0, audit: AuditLog | None = None
    ) -> None:
        self.db = db
        self.clock = clock
        self.audit = audit
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def _record(self, session: Session, actor: str | None, action: str, info: KeyInfo, reason: str) -> None:
        if actor is None:
            return
        if self.audit is None:
            raise RuntimeError("this ApiKeyService has no audit log to record the actor in")
        data = {"owner": info.owner, "name": info.name, "scopes": info.scopes}
        self.audit.append(
            session, AuditEntry(actor=actor, action=action, subject=info.id, reason=reason, data=data)
        )

    def create(
        self, *, name: str, owner: str, scopes: list[str], actor: str | None = None, reason: str = ""
    ) -> tuple[str, KeyInfo]:
        """A new key: (the key itself, shown this once; its stored description)."""
        if not _OWNER.match(owner):
            raise KeyRequestInvalid("owner: letters, digits and . _ : - only, at most 120 characters")
        if not name.strip() or len(name) > 120:
            raise KeyRequestInvalid("name: required, at most 120 characters")
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise KeyRequestInvalid(f"scope: choose from {', '.join(SCOPES)}")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        row = ApiKey(
            id=key_id,
            owner=owner,
            name=name.strip(),
            scopes=" ".join(sorted(set(scopes))),
            secret_hash=_digest(secret),
            created_at=self.clock(),
        )
        with self.db.session() as session:
            session.add(row)
            info = _info(row)
            self._record(session, actor, "apikey.created", info, reason)
        return f"ml_{key_id}_{secret}", info

    def list(self, *, owner: str | None = None) -> list[KeyInfo]:
        with self.db.session() as session:
            query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
            if owner is not None:
                query = query.where(ApiKey.owner == owner)
            return [_info(row) for row in session.scalars(query)]

    def revoke(self, key_id: str, *, actor: str | None = None, reason: str = "") -> KeyInfo | None:
        """Revoke a key (idempotent: only the first revocation is recorded);
        None if there is no such key."""
        with self.db.session() as session:
            row = session.get(ApiKey, key_id, with_for_update=True)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = self.clock()
                self._record(session, actor, "apikey.revoked", _info(row), reason)
            info = _info(row)
        with self._lock:
            for cached in [k for k in self._cache if k.startswith(f"{key_id}:")]:
                del self._cache[cached]
        return info

    def authenticate(self, presented: str) -> Principal | None:
        """The principal of a presented key, or None (unknown, wrong or revoked)."""
        match = _KEY.match(presented)
        if match is None:
            return None
        key_id, secret = match.groups()
        digest = _digest(secret)
        now = time.monotonic()
        cache_key = f"{key_id}:{digest}"
        with self._lock:
            hit = self._cache.get(cache_key)
            if hit is not None and now - hit[0] < self._cache_seconds:
                return hit[1]
        with self.db.session() as session:
            row = session.get(ApiKey, key_id)
            principal = None
            if row is not None and row.revoked_at is None and hmac.compare_digest(row.secret_hash, digest):
                principal = Principal(key_id=row.id, owner=row.owner, scopes=frozenset(row.scopes.split()))
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[cache_key] = (now, principal)
        return principal
