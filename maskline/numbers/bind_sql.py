"""A bind's SQL on PostgreSQL: one read before the claim, one statement after.

The ORM path of a bind (:meth:`BindingService.bind` through a session) takes
a dozen round trips: the relay-number check, the vault's SELECT and INSERT,
the binding and its members, the owner lookup and outbox row, the audit
chain's end and record, the commit. Here the same rows are written by two
prepared statements over this process's own psycopg connection (see
:class:`maskline.fast_sql.FastReader`), outside SQLAlchemy:

* :data:`LOOKUP` (before the Redis claim, which needs the parties' tokens):
  the vault entries of the bind's numbers, and which of them are relay numbers;
* :data:`WRITE` (after the claim), one statement and so one transaction: new
  vault entries, the binding, its members, the outbox event (only if the
  owner takes events: the owner lookup is inside), the API's answer for an
  Idempotency-Key (:class:`Answer`), and the audit record,
  chained onto the head row in SQL (``sha256``) as its last step, so the
  head's lock is held from there to the commit and no longer.

A statement that fails leaves nothing behind (it was its own transaction);
the caller releases the claim. One that fails because a concurrent bind
stored the same new number first (the member's foreign key finds no entry:
``ON CONFLICT DO NOTHING`` skipped ours) is retried by the caller through the
ORM path, which reuses the other bind's token.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from maskline.audit.chain import GENESIS_HASH
from maskline.audit.services import PreparedRecord
from maskline.fast_sql import FastReader
from maskline.numbers.interfaces import BindingEvent

LOOKUP = (
    "SELECT blind_index, token FROM vault_entries WHERE blind_index = ANY(%s::bytea[]) "
    "UNION ALL SELECT NULL, e164 FROM relay_numbers WHERE e164 = ANY(%s::text[])"
)

# The chained hash, as maskline.audit.chain.chain_hash computes it:
# sha256(prev_hash + canonical record), the record being prefix + seq + suffix.
_HASH = (
    "encode(sha256(convert_to({prev} || %(a_prefix)s::text || {seq}::text || %(a_suffix)s::text, 'UTF8')),"
    " 'hex')"
)
_FIRST_HASH = _HASH.format(prev="%(genesis)s::text", seq="1")
_NEXT_HASH = _HASH.format(prev="h.hash", seq="(h.seq + 1)")

# Only constants are formatted in; every value is a parameter.
WRITE = f"""
WITH vault AS (
    INSERT INTO vault_entries
        (token, purpose, blind_index, index_version, kek_version, wrapped_key, ciphertext, created_at)
    SELECT * FROM unnest(%(v_token)s::text[], %(v_purpose)s::text[], %(v_index)s::bytea[],
        %(v_index_version)s::int[], %(v_kek)s::int[], %(v_wrapped)s::bytea[], %(v_cipher)s::bytea[],
        %(v_created)s::timestamp[])
    ON CONFLICT (blind_index) DO NOTHING
    RETURNING token
), binding AS (
    INSERT INTO bindings (id, owner, order_id, mode, relay_number, extension, allow_any, status,
        expires_at, created_at, version, record, sms_redact, sms_media, language)
    VALUES (%(id)s::text, %(owner)s::text, %(order_id)s::text, %(mode)s::text, %(relay)s::text,
        %(extension)s::text, %(allow_any)s::boolean, 'active', %(expires_at)s::timestamp,
        %(created_at)s::timestamp, 1, %(record)s::boolean, %(sms_redact)s::text, %(sms_media)s::text,
        %(language)s::text)
    RETURNING id
), members AS (
    INSERT INTO binding_members (binding_id, position, kind, role, token)
    SELECT %(id)s::text, * FROM unnest(%(m_position)s::int[], %(m_kind)s::text[], %(m_role)s::text[],
        %(m_token)s::text[])
    RETURNING position
), outbox AS (
    INSERT INTO outbox_events (event_id, owner, type, payload, status, attempts, next_attempt_at, created_at)
    SELECT %(o_event_id)s::text, name, %(o_type)s::text, %(o_payload)s::text, 'pending', 0,
        %(o_at)s::timestamp, %(o_at)s::timestamp
    FROM owners
    WHERE %(o_event_id)s::text IS NOT NULL AND name = %(o_owner)s::text
        AND events_url IS NOT NULL AND events_url <> ''
    RETURNING event_id
), answer AS (
    UPDATE idempotency_records SET status = %(i_status)s::int, response = %(i_response)s::text
    WHERE %(i_key)s::text IS NOT NULL AND owner = %(i_owner)s::text AND key = %(i_key)s::text
        AND request_hash = %(i_hash)s::text AND status = %(i_pending)s::int
    RETURNING 1
), head AS (
    INSERT INTO audit_head AS h (id, seq, prev_hash, hash)
    SELECT 1, 1, %(genesis)s::text, {_FIRST_HASH}
    WHERE %(a_prefix)s::text IS NOT NULL
    ON CONFLICT (id) DO UPDATE SET seq = h.seq + 1, prev_hash = h.hash,
        hash = {_NEXT_HASH}
    RETURNING seq, prev_hash, hash
), audit AS (
    INSERT INTO audit_log (seq, at, actor, action, subject, reason, data, prev_hash, hash)
    SELECT seq, %(a_at)s::timestamp, %(a_actor)s::text, %(a_action)s::text, %(a_subject)s::text,
        %(a_reason)s::text, %(a_data)s::text, prev_hash, hash
    FROM head
    RETURNING seq
)
SELECT (SELECT count(*) FROM vault), (SELECT count(*) FROM members), (SELECT max(seq) FROM audit),
    (SELECT max(event_id) FROM outbox),
    -- An answer to store whose record is no longer pending: divide by zero,
    -- which rolls the whole statement back (see Answer).
    CASE WHEN %(i_key)s::text IS NOT NULL THEN 1 / (SELECT count(*)::int FROM answer) END
"""  # noqa: S608


class Raced(Exception):
    """A concurrent bind stored one of this bind's new numbers first (or took
    its binding id): nothing was stored."""


class DatabaseUnavailable(Exception):
    """PostgreSQL could not be reached, or refused the statement for its state
    (a timeout, a shutdown): nothing was stored."""


class OutcomeUnknown(DatabaseUnavailable):
    """The connection was lost during the write: it may have committed."""


@dataclass(frozen=True)
class OutboxRow:
    """An event for an owner, queued only if the owner takes events."""

    event_id: str
    owner: str
    type: str
    payload: str
    at: dt.datetime


class AnswerNotPending(Exception):
    """The Idempotency-Key's record was no longer pending (another request
    with the key answered or took it over): nothing was stored."""


@dataclass(frozen=True)
class Answer:
    """An API answer stored with the binding, as ``IdempotencyStore.complete``
    does in the ORM path: the (owner, key) record must still be pending with
    this request's fingerprint, or the bind stores nothing."""

    owner: str
    key: str
    fingerprint: str
    pending: int
    status: int
    response: str


@dataclass(frozen=True)
class CreatedRecords:
    """What else a new binding writes in its transaction (the listeners' part)."""

    audit: PreparedRecord | None
    outbox: OutboxRow | None


@dataclass(frozen=True)
class Written:
    """What :meth:`BindWriter.write` stored besides the binding."""

    vault_entries: int
    audit_seq: int | None
    event_id: str | None


def _naive(when: dt.datetime) -> dt.datetime:
    """The stored form of maskline.db.UTCDateTime: naive UTC."""
    return when.astimezone(dt.UTC).replace(tzinfo=None)


class BindWriter:
    """The two statements of a bind, and the listeners' records for them.

    ``records(event)`` gives the audit record and outbox event that the
    registered binding listeners would write for ``event``; ``committed(event,
    members)`` runs once the statement has committed (what listeners queue
    after a commit, e.g. alert signals). See :meth:`BindingService.use_writer`.
    """

    def __init__(
        self,
        *,
        sql: FastReader,
        records: Callable[[BindingEvent], CreatedRecords],
        committed: Callable[[BindingEvent, Sequence[tuple[str, str]]], None],
    ) -> None:
        if not sql.postgres:
            raise ValueError("the bind writer is PostgreSQL's; SQLite binds through the ORM")
        self._sql = sql
        self.records = records
        self.committed = committed

    def lookup(self, indexes: Sequence[bytes], numbers: Sequence[str]) -> tuple[dict[bytes, str], set[str]]:
        """(blind index -> token of the stored entries, which ``numbers`` are relay numbers)."""
        import psycopg

        tokens: dict[bytes, str] = {}
        relays: set[str] = set()
        try:
            found = self._sql.rows(LOOKUP, (list(indexes), list(numbers)))
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(type(exc).__name__) from exc
        for index, value in found:
            if index is None:
                relays.add(value)
            else:
                tokens[bytes(index)] = value
        return tokens, relays

    def write(
        self,
        *,
        binding: dict[str, Any],
        members: Sequence[tuple[int, str, str, str]],
        vault_rows: Sequence[dict[str, Any]],
        records: CreatedRecords,
        answer: Answer | None = None,
    ) -> Written:
        """Store everything in one statement (one transaction). Raises Raced
        (nothing stored) on a unique or foreign-key clash, OutcomeUnknown if
        the connection was lost, DatabaseUnavailable if the server refused it,
        else what the driver raises; all but OutcomeUnknown stored nothing."""
        audit, outbox = records.audit, records.outbox
        params: dict[str, Any] = {
            "v_token": [r["token"] for r in vault_rows],
            "v_purpose": [r["purpose"] for r in vault_rows],
            "v_index": [r["blind_index"] for r in vault_rows],
            "v_index_version": [r["index_version"] for r in vault_rows],
            "v_kek": [r["kek_version"] for r in vault_rows],
            "v_wrapped": [r["wrapped_key"] for r in vault_rows],
            "v_cipher": [r["ciphertext"] for r in vault_rows],
            "v_created": [_naive(r["created_at"]) for r in vault_rows],
            "id": binding["id"],
            "owner": binding["owner"],
            "order_id": binding["order_id"],
            "mode": binding["mode"],
            "relay": binding["relay_number"],
            "extension": binding["extension"],
            "allow_any": binding["allow_any"],
            "expires_at": _naive(binding["expires_at"]),
            "created_at": _naive(binding["created_at"]),
            "record": binding["record"],
            "sms_redact": binding["sms_redact"],
            "sms_media": binding["sms_media"],
            "language": binding["language"],
            "m_position": [m[0] for m in members],
            "m_kind": [m[1] for m in members],
            "m_role": [m[2] for m in members],
            "m_token": [m[3] for m in members],
            "o_event_id": outbox.event_id if outbox else None,
            "o_owner": outbox.owner if outbox else None,
            "o_type": outbox.type if outbox else None,
            "o_payload": outbox.payload if outbox else None,
            "o_at": _naive(outbox.at) if outbox else None,
            "i_owner": answer.owner if answer else None,
            "i_key": answer.key if answer else None,
            "i_hash": answer.fingerprint if answer else None,
            "i_pending": answer.pending if answer else None,
            "i_status": answer.status if answer else None,
            "i_response": answer.response if answer else None,
            "genesis": GENESIS_HASH,
            "a_prefix": audit.prefix if audit else None,
            "a_suffix": audit.suffix if audit else None,
            "a_at": _naive(audit.at) if audit else None,
            "a_actor": audit.actor if audit else None,
            "a_action": audit.action if audit else None,
            "a_subject": audit.subject if audit else None,
            "a_reason": audit.reason if audit else None,
            "a_data": audit.data if audit else None,
        }
        import psycopg

        try:
            row = self._sql.write(WRITE, params)
        except psycopg.errors.IntegrityError as exc:
            raise Raced(type(exc).__name__) from exc
        except psycopg.errors.DivisionByZero as exc:
            if answer is None:
                raise
            raise AnswerNotPending(type(exc).__name__) from exc
        except psycopg.OperationalError as exc:
            if self._sql.connected:
                # The server refused the statement (e.g. a timeout): rolled back.
                raise DatabaseUnavailable(type(exc).__name__) from exc
            raise OutcomeUnknown(type(exc).__name__) from exc
        assert row is not None  # a SELECT of aggregates has one row
        vault_entries, _members, audit_seq, event_id, _answered = row
        return Written(vault_entries=int(vault_entries), audit_seq=audit_seq, event_id=event_id)
