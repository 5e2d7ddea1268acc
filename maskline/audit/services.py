"""Appending to and verifying the hash-chained audit log."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from maskline.audit.chain import GENESIS_HASH, canonical_data, canonical_record, chain_hash
from maskline.audit.interfaces import AuditEntry, AuditError, VerifyResult
from maskline.audit.models import AuditRecord
from maskline.clock import Clock, system_clock
from maskline.redaction import redact_phone_numbers

# Any constant works; it names "the audit chain" among advisory locks.
_PG_ADVISORY_LOCK_KEY = 0x6D61736B_61756474  # "maskaudt"
_MAX_APPEND_ATTEMPTS = 20


class AuditLog:
    """Appends records in the caller's transaction, so an action and its
    audit record commit or roll back together."""

    def __init__(self, *, clock: Clock = system_clock, region: str = "US") -> None:
        self._clock = clock
        self._region = region

    def append(self, session: Session, entry: AuditEntry, *, at: dt.datetime | None = None) -> AuditRecord:
        """Add ``entry`` at the end of the chain and return the stored row.

        Appends are serialized so the chain never forks: PostgreSQL takes a
        transaction-scoped advisory lock; elsewhere a clash on ``seq`` (the
        primary key) is retried against the new end of the chain.
        """
        when = at or self._clock()
        reason = redact_phone_numbers(entry.reason, region=self._region)
        data = canonical_data(entry.data)
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_ADVISORY_LOCK_KEY})
        for _attempt in range(_MAX_APPEND_ATTEMPTS):
            last = session.execute(
                select(AuditRecord.seq, AuditRecord.hash).order_by(AuditRecord.seq.desc()).limit(1)
            ).first()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
            record = AuditRecord(
                seq=seq,
                at=when,
                actor=entry.actor,
                action=entry.action,
                subject=entry.subject,
                reason=reason,
                data=data,
                prev_hash=prev,
                hash=chain_hash(
                    prev,
                    canonical_record(
                        seq=seq,
                        at=when,
                        actor=entry.actor,
                        action=entry.action,
                        subject=entry.subject,
                        reason=reason,
                        data=data,
                    ),
                ),
            )
            try:
                with session.begin_nested():
                    session.add(record)
            except IntegrityError:
                continue  # another writer took this seq; chain onto theirs
            return record
        raise AuditError("could not append to the audit log: too much contention")

    def verify(self, session: Session, *, batch: int = 1000) -> VerifyResult:
        """Walk the chain from the first record; stop at the first break."""
        expected_seq, prev, count = 1, GENESIS_HASH, 0
        last_at: dt.datetime | None = None
        rows = session.execute(
            select(AuditRecord).order_by(AuditRecord.seq).execution_options(yield_per=batch)
        ).scalars()
        for row in rows:
            problem = None
            if row.seq != expected_seq:
                problem = f"sequence gap or reorder: expected record {expected_seq}, found {row.seq}"
            elif row.prev_hash != prev:
                problem = "prev_hash does not match the previous record (deleted or reordered rows)"
            else:
                recomputed = chain_hash(
                    prev,
                    canonical_record(
                        seq=row.seq,
                        at=row.at,
                        actor=row.actor,
                        action=row.action,
                        subject=row.subject,
                        reason=row.reason,
                        data=row.data,
                    ),
                )
                if recomputed != row.hash:
                    problem = "content does not match its hash (edited record)"
            if problem:
                return VerifyResult(ok=False, records=count, first_bad_seq=row.seq, problem=problem)
            expected_seq, prev, count, last_at = row.seq + 1, row.hash, count + 1, row.at
        return VerifyResult(ok=True, records=count, last_hash=prev, last_at=last_at)
