"""``Idempotency-Key``: a retried POST gets the first answer, never a second binding.

A key is claimed before the request is handled (a pending row), so two
concurrent requests with one key cannot both run: the second gets 409. A
success is stored with the response; anything else releases the key, so a
retry after, say, an exhausted pool is tried again. Records are kept for
``ttl`` and purged by the worker.

Binding creation stores its answer with :meth:`complete`, in the binding's
own transaction: the answer exists if and only if the binding committed.
That makes a retry exactly-once even when the database dies around the
commit (committed, but the client saw a 503: the retry replays it). A key
left pending by such a request, which could not release it, is taken over
by its retry (``take_over_pending``); should the first one still be running,
whichever completes first wins and the other's binding is rolled back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from maskline.api.interfaces import Conflict
from maskline.api.models import IdempotencyRecord
from maskline.clock import Clock
from maskline.db import Database

PENDING = 0
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Replay:
    status: int
    body: dict[str, Any]


class IdempotencyStore:
    def __init__(self, *, db: Database, secret: bytes, clock: Clock, ttl: dt.timedelta) -> None:
        self.db = db
        # Domain-separated from every other use of the secret.
        self._key = hmac.new(secret, b"maskline idempotency v1", hashlib.sha256).digest()
        self.clock = clock
        self.ttl = ttl

    def fingerprint(self, method: str, path: str, body: bytes) -> str:
        """HMAC of the request: the body carries party numbers, so never a plain hash."""
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for part in (method.encode(), path.encode(), body):
            mac.update(len(part).to_bytes(8, "big"))
            mac.update(part)
        return mac.hexdigest()

    def begin(
        self, owner: str, key: str, fingerprint: str, *, take_over_pending: bool = False
    ) -> Replay | None:
        """Claim ``key`` for this request, or return the stored answer to replay.

        Raises Conflict if the key was used with a different request, or a
        request with it is still being handled (unless ``take_over_pending``:
        for requests that :meth:`complete` their answer atomically).
        """
        now = self.clock()
        try:
            with self.db.session() as session:
                row = session.get(IdempotencyRecord, (owner, key))
                if row is not None and row.created_at <= now - self.ttl:
                    session.delete(row)  # expired: the key is free again
                    session.flush()
                    row = None
                if row is None:
                    session.add(
                        IdempotencyRecord(
                            owner=owner,
                            key=key,
                            request_hash=fingerprint,
                            status=PENDING,
                            response="",
                            created_at=now,
                        )
                    )
                    session.flush()
                    return None
                if not hmac.compare_digest(row.request_hash, fingerprint):
                    raise Conflict("this Idempotency-Key was used with a different request")
                if row.status == PENDING and take_over_pending:
                    return None
                if row.status == PENDING:
                    raise Conflict("a request with this Idempotency-Key is still being handled; retry later")
                return Replay(row.status, json.loads(row.response))
        except IntegrityError:
            raise Conflict(
                "a request with this Idempotency-Key is still being handled; retry later"
            ) from None

    def complete(
        self, session: Session, owner: str, key: str, fingerprint: str, status: int, body: dict[str, Any]
    ) -> None:
        """Store the answer in ``session``'s transaction (the change's own).

        Raises Conflict, rolling the change back, if the key is no longer
        pending: another request with it has answered (or given it up).
        """
        result = session.execute(
            update(IdempotencyRecord)
            .where(
                IdempotencyRecord.owner == owner,
                IdempotencyRecord.key == key,
                IdempotencyRecord.request_hash == fingerprint,
                IdempotencyRecord.status == PENDING,
            )
            .values(status=status, response=json.dumps(body, sort_keys=True))
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict("another request with this Idempotency-Key was handled meanwhile; retry")

    def finish(self, owner: str, key: str, status: int, body: dict[str, Any]) -> None:
        """Store a success to replay; release the key after anything else.

        A completed record is left as it is: its answer is the one to replay.
        """
        with self.db.session() as session:
            row = session.get(IdempotencyRecord, (owner, key))
            if row is None or row.status != PENDING:
                return
            if 200 <= status < 300:
                row.status = status
                row.response = json.dumps(body, sort_keys=True)
            else:
                session.delete(row)

    def purge(self, now: dt.datetime) -> int:
        """Delete records older than the TTL (the worker's job)."""
        with self.db.session() as session:
            result = session.execute(
                delete(IdempotencyRecord).where(IdempotencyRecord.created_at <= now - self.ttl)
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]
