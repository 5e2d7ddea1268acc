"""Appending to and verifying the hash-chained audit log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from maskline.audit.chain import (
    GENESIS_HASH,
    canonical_data,
    canonical_parts,
    canonical_record,
    chain_hash,
)
from maskline.audit.interfaces import AuditEntry, AuditError, VerifyResult
from maskline.audit.models import AuditHead, AuditRecord
from maskline.clock import Clock, system_clock
from maskline.redaction import redact_phone_numbers

_HEAD_ID = 1


def _advance_head(connection: Connection) -> tuple[int, str]:
    """Take the next ``seq`` and the hash to chain onto from the head row.

    An upsert (the row is created at the genesis if it is missing: a new
    database, or tables emptied by hand): it takes the row's lock, held until
    the caller's transaction ends, so appends get gapless numbers and commit
    in their order. On SQLite the write takes the database's write lock first,
    so the end of the chain cannot be read by two writers at once.
    """
    table = cast(Table, AuditHead.__table__)
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    statement = (
        insert(table)
        .values(id=_HEAD_ID, seq=1, prev_hash=GENESIS_HASH, hash=GENESIS_HASH)
        .on_conflict_do_update(
            index_elements=[table.c.id], set_={"seq": table.c.seq + 1, "prev_hash": table.c.hash}
        )
        .returning(table.c.seq, table.c.prev_hash)
    )
    seq, prev = connection.execute(statement).one()
    return int(seq), str(prev)


@dataclass(frozen=True)
class PreparedRecord:
    """A record ready to append, but for its ``seq`` (given by the head row)."""

    at: dt.datetime
    actor: str
    action: str
    subject: str
    reason: str
    data: str
    # canonical bytes = (prefix + str(seq) + suffix).encode()
    prefix: str
    suffix: str

    def canonical(self, seq: int) -> bytes:
        return (self.prefix + str(seq) + self.suffix).encode()


def canonical_of(row: AuditRecord) -> bytes:
    """The canonical bytes a record's hash covers (everything but the hashes)."""
    return canonical_record(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        reason=row.reason,
        data=row.data,
    )


class AuditLog:
    """Appends records in the caller's transaction, so an action and its
    audit record commit or roll back together."""

    def __init__(self, *, clock: Clock = system_clock, region: str = "US") -> None:
        self._clock = clock
        self._region = region

    def append(self, session: Session, entry: AuditEntry, *, at: dt.datetime | None = None) -> AuditRecord:
        """Add ``entry`` at the end of the chain and return the stored row.

        Appends are serialized so the chain never forks: the head row gives
        the ``seq`` and the previous hash and stays locked until the caller's
        transaction ends (see :func:`_advance_head`).
        """
        prepared = self.prepare(entry, at=at)
        connection = session.connection()
        seq, prev = _advance_head(connection)
        digest = chain_hash(prev, prepared.canonical(seq))
        table = cast(Table, AuditHead.__table__)
        connection.execute(update(table).where(table.c.id == _HEAD_ID).values(hash=digest))
        record = AuditRecord(
            seq=seq,
            at=prepared.at,
            actor=prepared.actor,
            action=prepared.action,
            subject=prepared.subject,
            reason=prepared.reason,
            data=prepared.data,
            prev_hash=prev,
            hash=digest,
        )
        session.add(record)
        try:
            session.flush()
        except IntegrityError:
            # The seq is taken: a record was written around the head row, or
            # the head was reset under a live chain. Fail closed.
            raise AuditError("could not append to the audit log: the chain's end moved") from None
        return record

    def prepare(self, entry: AuditEntry, *, at: dt.datetime | None = None) -> PreparedRecord:
        """``entry`` redacted and in canonical form, for a writer that appends
        it in a statement of its own (the bind path, see maskline.audit.append_sql)."""
        when = at or self._clock()
        reason = redact_phone_numbers(entry.reason, region=self._region)
        data = canonical_data(entry.data)
        prefix, suffix = canonical_parts(
            at=when, actor=entry.actor, action=entry.action, subject=entry.subject, reason=reason, data=data
        )
        return PreparedRecord(
            at=when,
            actor=entry.actor,
            action=entry.action,
            subject=entry.subject,
            reason=reason,
            data=data,
            prefix=prefix,
            suffix=suffix,
        )

    def verify(
        self,
        session: Session,
        *,
        batch: int = 1000,
        after: tuple[int, str] | None = None,
        pins: Mapping[int, str] | None = None,
    ) -> VerifyResult:
        """Walk the chain from the first record; stop at the first break.

        ``after=(seq, hash)`` starts from a record already verified (the row
        at ``seq`` must still carry ``hash``); ``pins`` maps seqs to the hashes
        that signed checkpoints saw there: a chain recomputed after an edit
        differs at a pin, and one whose newest rows were deleted ends before
        the last pin.
        """
        pins = pins or {}
        # Read before the walk: every record the head counts has committed
        # by then (appends commit in seq order), so the walk must reach it.
        head = session.execute(select(AuditHead.seq).where(AuditHead.id == _HEAD_ID)).scalar()
        expected_seq, prev, count = 1, GENESIS_HASH, 0
        query = select(AuditRecord).order_by(AuditRecord.seq)
        start: tuple[int, str] | None = None
        if after is not None and after[0] > 0:
            start = after
            expected_seq, prev, count = after[0] + 1, after[1], after[0]
            query = query.where(AuditRecord.seq >= after[0])
        last_at: dt.datetime | None = None
        result = session.execute(query.execution_options(yield_per=batch))
        # yield_per streams through a server-side cursor on PostgreSQL; close
        # it when verify stops early at a break.
        try:
            for row in result.scalars():
                if start is not None:
                    # The record verified before: still there, still the same.
                    seq, known = start
                    start = None
                    if row.seq != seq or row.hash != known:
                        return _broken(count, seq, "differs from when it was last verified (chain rewritten)")
                    last_at = row.at
                    continue
                problem = _problem(row, expected_seq=expected_seq, prev=prev)
                if problem is None and pins.get(row.seq, row.hash) != row.hash:
                    problem = "hash differs from a signed checkpoint's (the chain was recomputed)"
                if problem:
                    return _broken(count, row.seq, problem)
                expected_seq, prev, count, last_at = row.seq + 1, row.hash, count + 1, row.at
        finally:
            result.close()
        if start is not None:
            return _broken(count, start[0], "is missing (the newest records were deleted)")
        if head is not None and head > count:
            return _broken(
                count,
                count + 1,
                f"missing: the chain's head counts {head} records, the chain has {count} "
                "(the newest records were deleted)",
            )
        covered = max(pins, default=0)
        if covered > count:
            return _broken(
                count,
                count + 1,
                f"missing: a signed checkpoint covers {covered} records, the chain has {count} "
                "(the newest records were deleted)",
            )
        return VerifyResult(ok=True, records=count, last_hash=prev, last_at=last_at)

    def records(
        self,
        session: Session,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        batch: int = 1000,
    ) -> Iterator[AuditRecord]:
        """Records with ``since <= at < until``, in chain order, streamed."""
        query = select(AuditRecord).order_by(AuditRecord.seq)
        if since is not None:
            query = query.where(AuditRecord.at >= since)
        if until is not None:
            query = query.where(AuditRecord.at < until)
        result = session.execute(query.execution_options(yield_per=batch))
        try:
            yield from result.scalars()
        finally:
            result.close()


def _broken(records: int, seq: int, problem: str) -> VerifyResult:
    return VerifyResult(ok=False, records=records, first_bad_seq=seq, problem=problem)


def _problem(row: AuditRecord, *, expected_seq: int, prev: str) -> str | None:
    """Why ``row`` does not hold as the record after ``prev``, or None."""
    if row.seq != expected_seq:
        return f"sequence gap or reorder: expected record {expected_seq}, found {row.seq}"
    if row.prev_hash != prev:
        return "prev_hash does not match the previous record (deleted or reordered rows)"
    if chain_hash(prev, canonical_of(row)) != row.hash:
        return "content does not match its hash (edited record)"
    return None
