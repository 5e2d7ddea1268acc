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

Click-to-call cannot be rolled back: Twilio rings the phone. Its request
marks the key ``STARTED`` (:meth:`start`) in the transaction of the audit
record written just before it asks Twilio, and a Twilio answer that may
have come after the call was placed (a read timeout) is kept as the key's
answer, not released. A key whose request died (the database went away
before it could answer) is judged after ``PENDING_LEASE``, longer than any
request runs: still ``PENDING``, no call was asked for, so a retry takes it
over; ``STARTED``, the call may have been placed, so a retry is told so
(409) and never rings again under that key.
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

from maskline.api.interfaces import IdempotencyKeyInUse, IdempotencyKeyReused
from maskline.api.models import IdempotencyRecord
from maskline.clock import Clock
from maskline.db import Database
from maskline.numbers.bind_sql import Answer

PENDING = 0
# Pending, and the request's side effect (a Twilio call) may have begun.
STARTED = 1
MAX_KEY_LENGTH = 255
# Longer than any request runs (gunicorn's 30 s worker timeout; Twilio's
# REST calls time out after 10 s): a key pending for longer was abandoned.
PENDING_LEASE = dt.timedelta(minutes=2)

_STILL_HANDLED = "a request with this Idempotency-Key is still being handled; retry later"


@dataclass(frozen=True)
class Replay:
    status: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Lease:
    """A request's hold on a key: ``since`` tells it from a later taker's."""

    owner: str
    key: str
    since: dt.datetime


def _still_pending(session: Session, lease: Lease, **values: Any) -> bool:
    """Set ``values`` on the key if it is still pending under ``lease``
    (compare-and-set: of two requests racing for it, one wins)."""
    result = session.execute(
        update(IdempotencyRecord)
        .where(
            IdempotencyRecord.owner == lease.owner,
            IdempotencyRecord.key == lease.key,
            IdempotencyRecord.status == PENDING,
            IdempotencyRecord.created_at == lease.since,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


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
    ) -> Replay | Lease:
        """Claim ``key`` for this request (a :class:`Lease`), or return the
        stored answer to replay.

        Raises Conflict if the key was used with a different request, or a
        request with it is still being handled (unless ``take_over_pending``:
        for requests that :meth:`complete` their answer atomically), or one
        that died after :meth:`start` may have done what it was asked.
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
                    return Lease(owner, key, now)
                if not hmac.compare_digest(row.request_hash, fingerprint):
                    raise IdempotencyKeyReused("this Idempotency-Key was used with a different request")
                if row.status == PENDING and take_over_pending:
                    return Lease(owner, key, row.created_at)
                abandoned = row.created_at <= now - PENDING_LEASE
                if row.status == PENDING and abandoned:
                    return self._take_over(session, row, now)
                if row.status == STARTED and abandoned:
                    raise IdempotencyKeyInUse(
                        "the first request with this Idempotency-Key stopped after asking Twilio for the "
                        "call, so it may have been placed; send a new Idempotency-Key to place another"
                    )
                if row.status in (PENDING, STARTED):
                    raise IdempotencyKeyInUse(_STILL_HANDLED)
                return Replay(row.status, json.loads(row.response))
        except IntegrityError:
            raise IdempotencyKeyInUse(
                "a request with this Idempotency-Key is still being handled; retry later"
            ) from None

    @staticmethod
    def _take_over(session: Session, row: IdempotencyRecord, now: dt.datetime) -> Lease:
        """Claim an abandoned pending key; of two retries at once, one wins.

        The stamp moves to ``now`` only where it is still the one read, so
        the dead request (should it wake) can no longer :meth:`start` it.
        """
        if not _still_pending(session, Lease(row.owner, row.key, row.created_at), created_at=now):
            raise IdempotencyKeyInUse(_STILL_HANDLED)
        return Lease(row.owner, row.key, now)

    def start(self, session: Session, lease: Lease) -> None:
        """Mark the key ``STARTED`` in ``session``'s transaction, the one written
        just before an effect that cannot be undone. Conflict (rolling that
        transaction back) if the key is no longer this request's."""
        if not _still_pending(session, lease, status=STARTED):
            raise IdempotencyKeyInUse(
                "another request with this Idempotency-Key took it over; nothing was done"
            )

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
            raise IdempotencyKeyInUse(
                "another request with this Idempotency-Key was handled meanwhile; retry"
            )

    @staticmethod
    def answer(owner: str, key: str, fingerprint: str, status: int, body: dict[str, Any]) -> Answer:
        """What :meth:`complete` stores, for a bind that stores it in its own
        statement (maskline.numbers.bind_sql), with the same condition."""
        return Answer(
            owner=owner,
            key=key,
            fingerprint=fingerprint,
            pending=PENDING,
            status=status,
            response=json.dumps(body, sort_keys=True),
        )

    def finish(self, lease: Lease, status: int, body: dict[str, Any], *, keep: bool = False) -> None:
        """Store a success (or, with ``keep``, an answer after which the
        request may have had its effect) to replay; release the key after
        anything else.

        A completed record is left as it is: its answer is the one to replay;
        so is a key another request has taken over since.
        """
        with self.db.session() as session:
            row = session.get(IdempotencyRecord, (lease.owner, lease.key))
            if row is None or row.status not in (PENDING, STARTED) or row.created_at != lease.since:
                return
            if 200 <= status < 300 or keep:
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
