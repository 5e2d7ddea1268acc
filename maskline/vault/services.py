"""The vault: put, look up, open, reveal and erase sealed party numbers.

Every method takes the caller's SQLAlchemy session, so a put or an erase
commits together with whatever the caller is doing (a binding, an audit
record) or not at all.
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, null, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import Executable

from maskline.audit.interfaces import AuditEntry
from maskline.audit.services import AuditLog
from maskline.clock import Clock, system_clock
from maskline.redaction import redact_phone_numbers
from maskline.vault import sealing
from maskline.vault.blind_index import all_indexes, primary_index
from maskline.vault.interfaces import (
    PARTY_NUMBER,
    PutResult,
    VaultEntryErased,
    VaultEntryNotFound,
    VaultError,
    VaultIntegrityError,
)
from maskline.vault.keyring import KeyRingSource
from maskline.vault.models import VaultEntry
from maskline.vault.normalize import NumberPolicy

log = logging.getLogger(__name__)

TOKEN_PREFIX = "pn_"  # noqa: S105 (a prefix, not a secret)

# Called with (session, token) inside the erase transaction; the numbers
# package registers one to unbind the party's live bindings.
EraseListener = Callable[[Session, str], object]


def new_token() -> str:
    """An opaque, unguessable token (120 random bits)."""
    return TOKEN_PREFIX + base64.b32encode(secrets.token_bytes(15)).decode().lower()


class VaultService:
    """The vault over SQL, a key ring and a number policy."""

    def __init__(
        self,
        *,
        keys: KeyRingSource,
        policy: NumberPolicy,
        audit: AuditLog,
        clock: Clock = system_clock,
    ) -> None:
        self.keys = keys
        self.policy = policy
        self.audit = audit
        self._clock = clock
        self._erase_listeners: list[EraseListener] = []

    def on_erase(self, listener: EraseListener) -> None:
        """Run ``listener`` in the same transaction as every erase."""
        self._erase_listeners.append(listener)

    # -- storing and finding -------------------------------------------------

    def normalize(self, raw_number: object, *, field: str = "number", region: str | None = None) -> str:
        return self.policy.normalize(raw_number, field=field, region=region)

    def put(
        self, session: Session, raw_number: object, *, field: str = "number", region: str | None = None
    ) -> PutResult:
        """Seal and store a number; the same person always gets the same token."""
        e164 = self.normalize(raw_number, field=field, region=region)
        return self.put_normalized(session, e164)

    def put_normalized(self, session: Session, e164: str) -> PutResult:
        ring = self.keys.current()
        existing = self._find(session, e164)
        if existing is not None:
            return PutResult(token=existing, created=False)
        token = new_token()
        index_version, index = primary_index(ring, e164)
        sealed = sealing.seal(ring, e164, entry_id=token, purpose=PARTY_NUMBER)
        entry = VaultEntry(
            token=token,
            purpose=PARTY_NUMBER,
            blind_index=index,
            index_version=index_version,
            kek_version=sealed.kek_version,
            wrapped_key=sealed.wrapped_key,
            ciphertext=sealed.ciphertext,
            created_at=self._clock(),
        )
        try:
            with session.begin_nested():
                session.add(entry)
        except IntegrityError:
            # A concurrent put of the same number won the unique index; its
            # token is the one token for this person.
            raced = self._find(session, e164)
            if raced is None:
                raise VaultError("could not store the number; please retry") from None
            return PutResult(token=raced, created=False)
        return PutResult(token=token, created=True)

    def put_many_normalized(self, session: Session, numbers: Sequence[str]) -> list[PutResult]:
        """:meth:`put_normalized` for several numbers at once, in one result per
        number (same order): one SELECT, and for numbers not yet stored one
        ``INSERT ... ON CONFLICT (blind_index) DO NOTHING``, instead of a
        SELECT, a savepoint and an INSERT per number.

        The same guarantees as one put at a time: an entry found under any
        loaded index version (mid re-index) is reused, an erased entry (no
        index left) is not, and a concurrent put of the same number that wins
        the unique index gives its token to this one too.
        """
        unique = list(dict.fromkeys(numbers))
        if not unique:
            return []
        ring = self.keys.current()
        # Every loaded index version of each number, so an entry not yet
        # re-indexed is still found.
        wanted = {index: e164 for e164 in unique for index in all_indexes(ring, e164).values()}
        found = self._find_many(session, wanted)
        results: dict[str, PutResult] = {e164: PutResult(token=found[e164], created=False) for e164 in found}
        missing = [e164 for e164 in unique if e164 not in found]
        if missing:
            now = self._clock()
            rows = []
            for e164 in missing:
                token = new_token()
                index_version, index = primary_index(ring, e164)
                sealed = sealing.seal(ring, e164, entry_id=token, purpose=PARTY_NUMBER)
                rows.append(
                    {
                        "token": token,
                        "purpose": PARTY_NUMBER,
                        "blind_index": index,
                        "index_version": index_version,
                        "kek_version": sealed.kek_version,
                        "wrapped_key": sealed.wrapped_key,
                        "ciphertext": sealed.ciphertext,
                        "created_at": now,
                    }
                )
            by_token = dict(zip((row["token"] for row in rows), missing, strict=True))
            inserted = session.execute(self._insert_new(session), rows).scalars().all()
            for token in inserted:
                results[by_token[token]] = PutResult(token=token, created=True)
            raced = [e164 for e164 in missing if e164 not in results]
            if raced:
                # A concurrent put of the same number won the unique index
                # (PostgreSQL waited for it to commit): its token is the one
                # token for this person.
                again = self._find_many(
                    session, {index: e164 for e164 in raced for index in all_indexes(ring, e164).values()}
                )
                if len(again) != len(raced):
                    raise VaultError("could not store the number; please retry")
                results.update({e164: PutResult(token=token, created=False) for e164, token in again.items()})
        return [results[e164] for e164 in numbers]

    def indexes_of(self, numbers: Sequence[str]) -> dict[bytes, str]:
        """Every loaded blind index of each number (index -> number): a lookup
        by these finds an entry not yet re-indexed too."""
        ring = self.keys.current()
        return {index: e164 for e164 in numbers for index in all_indexes(ring, e164).values()}

    def new_entry(self, e164: str) -> dict[str, Any]:
        """The row of a new vault entry for ``e164`` (sealed, with a new token),
        for a writer that inserts it in a statement of its own with
        ``ON CONFLICT (blind_index) DO NOTHING``, as :meth:`put_many_normalized` does."""
        ring = self.keys.current()
        token = new_token()
        index_version, index = primary_index(ring, e164)
        sealed = sealing.seal(ring, e164, entry_id=token, purpose=PARTY_NUMBER)
        return {
            "token": token,
            "purpose": PARTY_NUMBER,
            "blind_index": index,
            "index_version": index_version,
            "kek_version": sealed.kek_version,
            "wrapped_key": sealed.wrapped_key,
            "ciphertext": sealed.ciphertext,
            "created_at": self._clock(),
        }

    def _find_many(self, session: Session, indexes: dict[bytes, str]) -> dict[str, str]:
        """number -> token for the numbers stored under any of ``indexes`` (index -> number)."""
        rows = (
            session.connection()
            .execute(
                select(VaultEntry.blind_index, VaultEntry.token).where(
                    VaultEntry.blind_index.in_(list(indexes))
                )
            )
            .all()
        )
        return {indexes[index]: token for index, token in rows if index is not None}

    @staticmethod
    def _insert_new(session: Session) -> Executable:
        """An INSERT (run with many rows: one statement) that skips rows whose
        blind index is taken, returning the tokens it did insert."""
        # maskline runs on PostgreSQL or SQLite (3.35+), which both have
        # ON CONFLICT ... DO NOTHING and RETURNING. Core, not the ORM: nothing
        # of these rows is needed in the session.
        table = cast(Table, VaultEntry.__table__)
        if session.get_bind().dialect.name == "postgresql":
            return (
                postgresql.insert(table)
                .on_conflict_do_nothing(index_elements=["blind_index"])
                .returning(table.c.token)
            )
        return (
            sqlite.insert(table)
            .on_conflict_do_nothing(index_elements=["blind_index"])
            .returning(table.c.token)
        )

    def lookup(
        self, session: Session, raw_number: object, *, field: str = "number", region: str | None = None
    ) -> str | None:
        """The token of a stored number, or None. Stores nothing."""
        return self._find(session, self.normalize(raw_number, field=field, region=region))

    def _find(self, session: Session, e164: str) -> str | None:
        indexes = list(all_indexes(self.keys.current(), e164).values())
        return session.execute(
            select(VaultEntry.token).where(VaultEntry.blind_index.in_(indexes)).limit(1)
        ).scalar_one_or_none()

    def index_of(self, e164: str) -> bytes:
        """The primary blind index of a normalized number (for routing keys)."""
        return primary_index(self.keys.current(), e164)[1]

    # -- opening -------------------------------------------------------------

    def _entry(self, session: Session, token: str) -> VaultEntry:
        if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX):
            raise VaultEntryNotFound("no vault entry has that token")
        entry = session.get(VaultEntry, token)
        if entry is None:
            raise VaultEntryNotFound(f"no vault entry has token {token}")
        if entry.erased:
            raise VaultEntryErased(token, entry.erased_at)
        return entry

    def open(self, session: Session, token: str) -> str:
        """The E.164 number behind ``token``; for the router's TwiML and for
        :meth:`reveal`. Never returns a wrong number: anything that does not
        verify raises :class:`VaultIntegrityError`."""
        entry = self._entry(session, token)
        return self._unseal(token, entry.purpose, entry.wrapped_key, entry.ciphertext)

    def open_readonly(self, connection: Connection, token: str) -> str:
        """:meth:`open` for the webhook hot path: the same checks and errors,
        through one Core SELECT of the columns it needs on ``connection``
        (no ORM identity map, no unit of work). It only reads."""
        number = self.open_readonly_unless(connection, token, unless=None)
        assert number is not None
        return number

    def open_readonly_unless(
        self, connection: Connection, token: str, *, unless: ColumnElement[Any] | None
    ) -> str | None:
        """:meth:`open_readonly`, or None if the scalar SQL expression
        ``unless`` (read in the same statement: one round trip, not two) is
        not NULL, e.g. "the call this number is for has ended"."""
        if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX):
            raise VaultEntryNotFound("no vault entry has that token")
        gate = unless if unless is not None else null()
        row = connection.execute(
            select(
                VaultEntry.purpose,
                VaultEntry.wrapped_key,
                VaultEntry.ciphertext,
                VaultEntry.erased_at,
                gate,
            ).where(VaultEntry.token == token)
        ).one_or_none()
        if row is None:
            raise VaultEntryNotFound(f"no vault entry has token {token}")
        purpose, wrapped_key, ciphertext, erased_at, stop = row
        if stop is not None:
            return None
        if erased_at is not None:
            raise VaultEntryErased(token, erased_at)
        return self._unseal(token, purpose, wrapped_key, ciphertext)

    def open_row(
        self,
        token: str,
        *,
        purpose: str,
        wrapped_key: bytes | None,
        ciphertext: bytes | None,
        erased_at: object,
    ) -> str:
        """The number of a vault row read elsewhere (the webhook path's one
        prepared statement): the same checks and errors as :meth:`open`."""
        if erased_at is not None:
            raise VaultEntryErased(token, erased_at)  # type: ignore[arg-type]
        return self._unseal(
            token,
            purpose,
            None if wrapped_key is None else bytes(wrapped_key),
            None if ciphertext is None else bytes(ciphertext),
        )

    def _unseal(self, token: str, purpose: str, wrapped_key: bytes | None, ciphertext: bytes | None) -> str:
        if wrapped_key is None or ciphertext is None:
            raise VaultIntegrityError(f"vault entry {token} has no sealed value")
        ring = self.keys.current()
        version = sealing.wrapped_key_version(wrapped_key)
        if version not in ring.kek.versions:
            # Another process may have added a key this one has not loaded yet.
            ring = self.keys.refresh()
        # The AAD binds the ciphertext to this token: a row whose sealed value
        # was copied from another entry does not verify.
        return sealing.open_sealed(ring, wrapped_key, ciphertext, entry_id=token, purpose=purpose)

    def reveal(self, session: Session, token: str, *, actor: str, reason: str) -> str:
        """Open a number for a person, with an audit record in the same transaction."""
        if not reason or not reason.strip():
            raise VaultError("a reason is required to reveal a number")
        if not actor or not actor.strip():
            raise VaultError("an actor is required to reveal a number")
        number = self.open(session, token)
        self.audit.append(
            session,
            AuditEntry(actor=actor.strip(), action="vault.reveal", subject=token, reason=reason.strip()),
        )
        log.info("vault entry %s revealed by %s", token, actor)
        return number

    # -- erasing -------------------------------------------------------------

    def erase(self, session: Session, token: str, *, actor: str, reason: str) -> None:
        """Destroy the wrapped data key, the ciphertext and the index; keep a
        tombstone. Live bindings of the party are unbound by listeners."""
        if not reason or not reason.strip():
            raise VaultError("a reason is required to erase a number")
        entry = self._entry(session, token)
        # Listeners first: they still need the entry (e.g. its blind index,
        # to end the party's routes) before it is destroyed.
        for listener in self._erase_listeners:
            listener(session, token)
        entry.wrapped_key = None
        entry.ciphertext = None
        entry.blind_index = None
        entry.kek_version = None
        entry.index_version = None
        entry.erased_at = self._clock()
        entry.erased_by = actor
        entry.erase_reason = self.audit_reason(reason)
        self.audit.append(
            session, AuditEntry(actor=actor, action="vault.erase", subject=token, reason=reason.strip())
        )
        log.info("vault entry %s erased by %s", token, actor)

    def audit_reason(self, reason: str) -> str:
        return redact_phone_numbers(reason.strip(), region=self.policy.default_region)
