"""The audit chain's head, checked at a cost that does not grow with the chain.

The console checks the chain on every view of its audit page; walking all
of it made each view slower as the chain grew (seconds within a day at a
busy bind rate). This check starts from the newest signed checkpoint
instead: the record at the checkpoint's seq must still carry the hash the
checkpoint signed (so everything before it is as signed, unless the signing
key is stolen), and only the records written since are walked, which the
worker keeps few (it signs every ``audit_checkpoint_interval``, and soon
after every admin change).

Bounded in every case: when there is no readable checkpoint, or the newest
is more than ``tail`` records behind, only the newest ``tail`` records are
checked against each other, and the result says it is not anchored to a
signature. The full walk, against every checkpoint, stays in the command
line (``maskline audit verify --checkpoints``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config import Settings
from maskline.audit.checkpoints import Checkpoint, FileDestination, PublicKey, signing_key_from
from maskline.audit.interfaces import CheckpointError
from maskline.audit.models import AuditRecord
from maskline.audit.services import AuditLog

# Records the console reads at most when no checkpoint anchors the check.
TAIL = 1000


@dataclass(frozen=True, kw_only=True)
class HeadCheck:
    """What the console says about the chain."""

    ok: bool
    records: int  # the chain's length, as its newest seq says
    checked: int  # records walked by this check
    # The signed checkpoint the walk started from; None: the newest ``checked``
    # records were checked against each other only.
    checkpoint: Checkpoint | None = None
    first_bad_seq: int | None = None
    problem: str | None = None
    # Why no checkpoint anchors the check (none configured, none yet, too old).
    unanchored_because: str | None = None


def newest_checkpoint(path: Path | None, key: PublicKey | None) -> tuple[Checkpoint | None, str | None]:
    """The checkpoint file's newest checkpoint if ``key`` signed it, else why not.

    Reads only the file's end (see :meth:`FileDestination.last`). A last line
    that does not verify is a problem, not a reason to fall back quietly.
    """
    if path is None or key is None:
        return None, "no checkpoint file or key configured"
    last = FileDestination(path).last()
    if last is None:
        return None, "no checkpoint yet"
    if last.key_id != key.key_id or not key.verifies(last):
        raise BadCheckpoint("the newest checkpoint's signature does not verify with the configured key")
    return last, None


class BadCheckpoint(Exception):
    """The newest checkpoint is not signed by the configured key."""


def check_head(
    session: Session,
    audit: AuditLog,
    checkpoint: Checkpoint | None,
    *,
    tail: int = TAIL,
    unanchored_because: str | None = None,
) -> HeadCheck:
    """Check the records after ``checkpoint`` (a signature already checked),
    or the newest ``tail`` records when there is none or it is further behind."""
    head = int(session.scalar(select(func.max(AuditRecord.seq))) or 0)
    if checkpoint is not None and head - checkpoint.seq > tail:
        unanchored_because = f"the newest checkpoint is {head - checkpoint.seq} records behind"
        checkpoint = None
    if checkpoint is not None:
        result = audit.verify(session, after=(checkpoint.seq, checkpoint.hash) if checkpoint.seq else None)
        # A record at the checkpoint's seq that is gone or differs is a break
        # (verify's ``after``); otherwise the records since were walked.
        walked = max(result.records - checkpoint.seq, 0)
    else:
        start = max(head - tail, 0)
        after = None
        if start > 0:
            row = session.get(AuditRecord, start)
            if row is None:
                return HeadCheck(
                    ok=False,
                    records=head,
                    checked=0,
                    first_bad_seq=start,
                    problem="is missing (sequence gap)",
                    unanchored_because=unanchored_because,
                )
            after = (start, row.hash)
        result = audit.verify(session, after=after)
        walked = result.records - start
    return HeadCheck(
        ok=result.ok,
        records=head,
        checked=walked,
        checkpoint=checkpoint,
        first_bad_seq=result.first_bad_seq,
        problem=result.problem,
        unanchored_because=None if checkpoint is not None else unanchored_because,
    )


def console_check(session: Session, audit: AuditLog, settings: Settings, *, tail: int = TAIL) -> HeadCheck:
    """The check the console runs on each view of its audit page: from the
    configured checkpoint file's newest checkpoint, checked with the public
    half of the configured signing key (as ``maskline audit verify`` does)."""
    key: PublicKey | None = None
    why: str | None = None
    if settings.audit_signing_key_file is not None or settings.audit_signing_key is not None:
        try:
            key = signing_key_from(settings).public
        except CheckpointError:
            why = "the signing key cannot be read"
    checkpoint: Checkpoint | None = None
    if why is None:
        try:
            checkpoint, why = newest_checkpoint(settings.audit_checkpoint_file, key)
        except BadCheckpoint as exc:
            head = int(session.scalar(select(func.max(AuditRecord.seq))) or 0)
            return HeadCheck(ok=False, records=head, checked=0, problem=str(exc))
    return check_head(session, audit, checkpoint, tail=tail, unanchored_because=why)
