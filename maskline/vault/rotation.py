"""Key-ring lifecycle against the data: registry, status, rewrap, re-index.

* The database records each key version's fingerprint. Start-up refuses a
  ring that lacks or contradicts a recorded, unretired version.
* ``rewrap_batch`` moves data keys to the primary KEK; the sealed numbers are
  not touched. It is resumable: each batch picks what is still to do, and a
  row changed concurrently is simply picked up by a later batch.
* ``reindex_batch`` recomputes blind indexes under the primary index key.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from maskline.clock import Clock, system_clock
from maskline.vault import sealing
from maskline.vault.blind_index import primary_index
from maskline.vault.interfaces import KeyRingError, KeyRingMismatch, VaultIntegrityError
from maskline.vault.keyring import KEY_KINDS, KeyKind, KeyRing
from maskline.vault.models import KeyVersion, VaultEntry


def check_and_register(session: Session, ring: KeyRing, *, clock: Clock = system_clock) -> list[str]:
    """Compare ``ring`` with the recorded fingerprints, then record new versions.

    Raises :class:`KeyRingMismatch` naming the first missing or different
    key. Returns a line for each version newly registered.
    """
    recorded = {(kv.kind, kv.version): kv for kv in session.scalars(select(KeyVersion))}
    for (kind, version), kv in sorted(recorded.items()):
        if kv.retired_at is not None:
            continue
        versions = ring.keys(kind).versions  # type: ignore[arg-type]
        if version not in versions:
            raise KeyRingMismatch(
                f"the key ring lacks {kind} version {version} (fingerprint {kv.fingerprint}), "
                "which the database relies on; load the right key ring"
            )
        if ring.fingerprint(kind, version) != kv.fingerprint:  # type: ignore[arg-type]
            raise KeyRingMismatch(
                f"{kind} version {version} in the key ring is not the key the database "
                f"recorded (fingerprint {kv.fingerprint}); load the right key ring"
            )
    added = []
    for kind in KEY_KINDS:
        for version in sorted(ring.keys(kind).versions):
            fingerprint = ring.fingerprint(kind, version)
            known = recorded.get((kind, version))
            if known is None:
                if _register_new(session, kind, version, fingerprint, clock=clock):
                    added.append(f"registered {kind} version {version}")
            elif known.retired_at is not None and (
                known.fingerprint != fingerprint or version == ring.keys(kind).primary
            ):
                # A retired number back in use: `keys add` after retiring the
                # newest version reuses its number for a new key, or a retired
                # version was promoted again. Record it afresh, or it would be
                # listed as retired and never checked at start-up.
                if _entries_using(session, kind, version) and known.fingerprint != fingerprint:
                    raise KeyRingMismatch(
                        f"{kind} version {version} in the key ring is not the retired key "
                        f"(fingerprint {known.fingerprint}) that entries still use; load the right key ring"
                    )
                known.fingerprint = fingerprint
                known.retired_at = None
                known.registered_at = clock()
                added.append(f"registered {kind} version {version} again")
    return added


def _register_new(session: Session, kind: str, version: int, fingerprint: str, *, clock: Clock) -> bool:
    """Record a version; False if another process recorded the same key first."""
    try:
        with session.begin_nested():
            session.add(
                KeyVersion(kind=kind, version=version, fingerprint=fingerprint, registered_at=clock())
            )
    except IntegrityError:
        # Processes starting together after `keys add` race to register the
        # version; the loser checks the winner's row like any recorded one.
        theirs = session.get(KeyVersion, (kind, version), populate_existing=True)
        if theirs is None or theirs.fingerprint != fingerprint:
            raise KeyRingMismatch(
                f"{kind} version {version} was registered at the same time with a different key; "
                "load the right key ring"
            ) from None
        return False
    return True


def _entries_using(session: Session, kind: str, version: int) -> int:
    column = VaultEntry.kek_version if kind == "kek" else VaultEntry.index_version
    return int(session.execute(select(func.count()).where(column == version)).scalar_one())


@dataclass(frozen=True, kw_only=True)
class VersionStatus:
    kind: KeyKind
    version: int
    primary: bool
    loaded: bool
    retired: bool
    entries: int
    fingerprint: str | None


def key_status(session: Session, ring: KeyRing) -> list[VersionStatus]:
    """Every known version of each kind, and how many live entries use it."""
    counts: dict[tuple[str, int], int] = {}
    for kind, column in (("kek", VaultEntry.kek_version), ("index", VaultEntry.index_version)):
        rows = session.execute(select(column, func.count()).where(column.is_not(None)).group_by(column)).all()
        for version, n in rows:
            if version is not None:
                counts[(kind, int(version))] = int(n)
    recorded = {(kv.kind, kv.version): kv for kv in session.scalars(select(KeyVersion))}
    result = []
    for kind in KEY_KINDS:
        ks = ring.keys(kind)
        known = (
            set(ks.versions) | {v for (k, v) in recorded if k == kind} | {v for (k, v) in counts if k == kind}
        )
        for version in sorted(known):
            kv = recorded.get((kind, version))
            result.append(
                VersionStatus(
                    kind=kind,
                    version=version,
                    primary=version == ks.primary,
                    loaded=version in ks.versions,
                    retired=bool(kv and kv.retired_at),
                    entries=counts.get((kind, version), 0),
                    fingerprint=kv.fingerprint if kv else None,
                )
            )
    return result


def rewrap_batch(
    session: Session, ring: KeyRing, *, batch: int = 500, failed: list[str] | None = None
) -> int:
    """Re-wrap up to ``batch`` data keys under the primary KEK; returns how many.

    An entry that fails verification is skipped and its token appended to
    ``failed`` (later batches pass over it), so one damaged row cannot stop
    a rotation; the caller reports it.
    """
    primary = ring.kek.primary
    skip = failed if failed is not None else []
    rows = session.execute(
        select(VaultEntry.token, VaultEntry.purpose, VaultEntry.wrapped_key, VaultEntry.kek_version)
        .where(
            VaultEntry.kek_version.is_not(None),
            VaultEntry.kek_version != primary,
            VaultEntry.token.not_in(skip),
        )
        .order_by(VaultEntry.token)
        .limit(batch)
    ).all()
    done = 0
    for token, purpose, wrapped, _old_version in rows:
        if wrapped is None:
            continue  # erased since the select
        try:
            new_wrapped = sealing.rewrap(ring, wrapped, entry_id=token, purpose=purpose)
        except VaultIntegrityError:
            skip.append(token)
            continue
        # Compare-and-set on the old wrapped key: a concurrent erase or rewrap
        # wins, and this row is left for the next batch to look at again.
        result = session.execute(
            update(VaultEntry)
            .where(VaultEntry.token == token, VaultEntry.wrapped_key == wrapped)
            .values(wrapped_key=new_wrapped, kek_version=primary)
            .execution_options(synchronize_session=False)
        )
        done += result.rowcount or 0  # type: ignore[attr-defined]
    return done


def reindex_batch(
    session: Session, ring: KeyRing, *, batch: int = 500, failed: list[str] | None = None
) -> int:
    """Recompute up to ``batch`` blind indexes under the primary index key.

    Entries that fail verification are skipped and listed in ``failed``.
    """
    primary = ring.index.primary
    skip = failed if failed is not None else []
    rows = session.execute(
        select(VaultEntry.token, VaultEntry.purpose, VaultEntry.wrapped_key, VaultEntry.ciphertext)
        .where(
            VaultEntry.index_version.is_not(None),
            VaultEntry.index_version != primary,
            VaultEntry.token.not_in(skip),
        )
        .order_by(VaultEntry.token)
        .limit(batch)
    ).all()
    done = 0
    for token, purpose, wrapped, ciphertext in rows:
        if wrapped is None or ciphertext is None:
            continue  # erased since the select
        try:
            e164 = sealing.open_sealed(ring, wrapped, ciphertext, entry_id=token, purpose=purpose)
        except VaultIntegrityError:
            skip.append(token)
            continue
        version, index = primary_index(ring, e164)
        result = session.execute(
            update(VaultEntry)
            .where(VaultEntry.token == token, VaultEntry.ciphertext == ciphertext)
            .values(blind_index=index, index_version=version)
            .execution_options(synchronize_session=False)
        )
        done += result.rowcount or 0  # type: ignore[attr-defined]
    return done


def remaining(session: Session, ring: KeyRing, kind: KeyKind) -> int:
    column = VaultEntry.kek_version if kind == "kek" else VaultEntry.index_version
    primary = ring.keys(kind).primary
    return int(
        session.execute(select(func.count()).where(column.is_not(None), column != primary)).scalar_one()
    )


def mark_retired(session: Session, kind: KeyKind, version: int, *, clock: Clock = system_clock) -> None:
    """Record that ``version`` is gone; refused while any entry still uses it."""
    still = _entries_using(session, kind, version)
    if still:
        raise KeyRingError(
            f"{kind} version {version} still protects {still} entries; "
            f"run `maskline vault {'rewrap' if kind == 'kek' else 'reindex'}` first"
        )
    kv = session.get(KeyVersion, (kind, version))
    if kv is not None:
        kv.retired_at = clock()
