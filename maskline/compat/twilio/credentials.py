"""Twilio-style credentials: an account sid and auth token over an API key.

``maskline apikey create --style twilio`` makes an ordinary scoped API key of
the owner (audited as ``apikey.created``; its own ``ml_`` secret is thrown
away) and an account sid (``AC`` + 32 hex) with a random auth token mapped
onto it (audited as ``apikey.twilio_credentials``). Only SHA-256 of the token
is stored. The key's owner and scopes are the credentials' owner and scopes;
``maskline apikey revoke <key id>`` revokes the credentials.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from typing import Any

from sqlalchemy import func, select

# The AAD purpose of a sealed auth token: it opens as nothing else.
from maskline import errors
from maskline.api.keys import ApiKeyService, Principal
from maskline.api.models import ApiKey
from maskline.audit.interfaces import AuditEntry
from maskline.compat.twilio.interfaces import new_sid
from maskline.compat.twilio.models import TwilioCredential
from maskline.db import Database
from maskline.vault import sealing

TOKEN_PURPOSE = "twilio-auth-token"  # noqa: S105 (a label, not a secret)

_ACCOUNT_SID = re.compile(r"^AC[0-9a-f]{32}\Z")
_TOKEN = re.compile(r"^[0-9a-f]{32}\Z")


class NotAvailable(errors.Unavailable):
    """This face cannot issue credentials (kept for the CLI's error handling)."""


def open_token(services: Any, account_sid: str) -> str | None:
    """The auth token of live credentials, unsealed to sign a callback; None
    if they are gone or revoked (their callbacks are then not signed, so not sent)."""
    with services.db.session() as session:
        row = session.execute(
            select(TwilioCredential, ApiKey.revoked_at)
            .join(ApiKey, ApiKey.id == TwilioCredential.key_id)
            .where(TwilioCredential.account_sid == account_sid)
        ).one_or_none()
    if row is None or row[1] is not None:
        return None
    credential = row[0]
    return sealing.open_sealed(
        services.keys.current(),
        credential.token_wrapped_key,
        credential.token_ciphertext,
        entry_id=account_sid,
        purpose=TOKEN_PURPOSE,
    )


def rewrap_tokens(services: Any) -> int:
    """Re-wrap every sealed auth token under the primary KEK (``maskline vault rewrap``):
    without it, retiring an old KEK would leave callbacks unsigned."""
    ring = services.keys.current()
    primary = ring.kek.primary
    done = 0
    with services.db.session() as session:
        rows = session.scalars(select(TwilioCredential).where(TwilioCredential.token_kek_version != primary))
        for row in rows:
            row.token_wrapped_key = sealing.rewrap(
                ring, row.token_wrapped_key, entry_id=row.account_sid, purpose=TOKEN_PURPOSE
            )
            row.token_kek_version = primary
            done += 1
    return done


def tokens_using(services: Any, kek_version: int) -> int:
    """How many sealed auth tokens a KEK version still protects (``keys retire`` refuses if any)."""
    with services.db.session() as session:
        count = session.scalar(
            select(func.count())
            .select_from(TwilioCredential)
            .where(TwilioCredential.token_kek_version == kek_version)
        )
    return int(count or 0)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_credentials(
    services: Any, *, name: str, owner: str, scopes: list[str], actor: str
) -> dict[str, Any]:
    """Issue credentials mapped onto a scoped API key of ``owner``; the auth
    token is in the returned JSON this once. KeyRequestInvalid on a bad
    owner, name or scope (nothing is created)."""
    keys = ApiKeyService(db=services.db, clock=services.clock, audit=services.audit)
    _key, info = keys.create(name=name, owner=owner, scopes=scopes, actor=actor, reason="twilio credentials")
    account_sid = new_sid("account")
    # 32 hex characters, as Twilio's auth tokens: 128 random bits.
    token = secrets.token_hex(16)
    sealed = sealing.seal(services.keys.current(), token, entry_id=account_sid, purpose=TOKEN_PURPOSE)
    try:
        with services.db.session() as session:
            session.add(
                TwilioCredential(
                    account_sid=account_sid,
                    key_id=info.id,
                    token_hash=_digest(token),
                    token_wrapped_key=sealed.wrapped_key,
                    token_ciphertext=sealed.ciphertext,
                    token_kek_version=sealed.kek_version,
                    created_at=services.clock(),
                )
            )
            services.audit.append(
                session,
                AuditEntry(
                    actor=actor,
                    action="apikey.twilio_credentials",
                    subject=info.id,
                    data={"owner": owner, "account_sid": account_sid},
                ),
            )
    except Exception:
        keys.revoke(info.id, actor=actor, reason="twilio credentials could not be stored")
        raise
    return {
        "account_sid": account_sid,
        "auth_token": token,
        "key_id": info.id,
        "owner": info.owner,
        "name": info.name,
        "scopes": info.scopes,
        "created_at": info.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


class CredentialChecker:
    """Checks HTTP Basic credentials; cached for a few seconds like API keys."""

    def __init__(self, *, db: Database, cache_seconds: float = 5.0) -> None:
        self.db = db
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def authenticate(self, account_sid: str, token: str) -> Principal | None:
        """The principal of the credentials, or None (unknown, wrong, revoked)."""
        if not _ACCOUNT_SID.match(account_sid) or not _TOKEN.match(token):
            return None
        digest = _digest(token)
        now = time.monotonic()
        cache_key = f"{account_sid}:{digest}"
        with self._lock:
            hit = self._cache.get(cache_key)
            if hit is not None and now - hit[0] < self._cache_seconds:
                return hit[1]
        with self.db.session() as session:
            row = session.execute(
                select(TwilioCredential.token_hash, ApiKey)
                .join(ApiKey, ApiKey.id == TwilioCredential.key_id)
                .where(TwilioCredential.account_sid == account_sid)
            ).one_or_none()
            principal = None
            if row is not None:
                stored, key = row
                if key.revoked_at is None and hmac.compare_digest(stored, digest):
                    principal = Principal(
                        key_id=key.id, owner=key.owner, scopes=frozenset(key.scopes.split())
                    )
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[cache_key] = (now, principal)
        return principal
