"""Background jobs of the numbers package, run by ``maskline worker``.

* sweep: active bindings past their expiry become ``expired`` in SQL and
  tombstones in Redis;
* purge: tombstones whose cool-down is over leave Redis;
* reconcile: SQL rows without routes get them; Redis claims without a SQL row
  (an allocation that died halfway) are released;
* owner limits: each owner's count of live bindings in Redis is brought back
  to SQL's (see maskline.numbers.owner_limits);
* vault GC: entries no binding uses are deleted after a grace period;
* retention: parties with no binding for the retention period are erased,
  with an audit record each.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, delete, exists, func, or_, select
from sqlalchemy.orm import selectinload

from maskline.db import Base, Database
from maskline.numbers.models import Binding, BindingMember, RelayNumber
from maskline.numbers.owner_limits import OwnerLimitSync
from maskline.numbers.rebuild import stored_binding
from maskline.numbers.routes import RouteStore, epoch
from maskline.numbers.services import BindingService
from maskline.vault.models import VaultEntry
from maskline.vault.services import VaultService

log = logging.getLogger(__name__)

SWEEP_BATCH = 500


@dataclass
class SweepReport:
    expired: int = 0
    purged: int = 0
    restored: int = 0
    orphans_released: int = 0
    vault_collected: int = 0
    retention_erased: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"expired {self.expired}, purged {self.purged}, restored {self.restored}, "
            f"orphans released {self.orphans_released}, vault collected {self.vault_collected}, "
            f"erased for retention {self.retention_erased}"
        )


def _vault_references() -> list[Any]:
    """One "a row refers to this vault entry" test per column with a foreign
    key to it: binding members, and whatever else keeps a token (an
    AccessKey's sealed secret in maskline.compat, say). None is collected."""
    import maskline.models  # noqa: F401 (every table on Base.metadata, so none is missed)

    token = VaultEntry.__table__.c.token
    return [
        exists().where(fk.parent == VaultEntry.token)
        for table in Base.metadata.sorted_tables
        for fk in table.foreign_keys
        if fk.column is token
    ]


class Sweeper:
    def __init__(
        self,
        *,
        db: Database,
        vault: VaultService,
        routes: RouteStore,
        bindings: BindingService,
        cooldown: dt.timedelta,
        retention: dt.timedelta,
        vault_gc_grace: dt.timedelta,
        owner_limits: OwnerLimitSync | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.db = db
        self.vault = vault
        self.routes = routes
        self.bindings = bindings
        self.cooldown = cooldown
        self.retention = retention
        self.vault_gc_grace = vault_gc_grace
        self.owner_limits = owner_limits
        self._sleep = sleep

    def run_once(self, now: dt.datetime, *, orphan_grace: float = 5.0) -> SweepReport:
        report = SweepReport()
        jobs: list[tuple[str, Callable[[], None]]] = [
            ("sweep", lambda: self.sweep_expired(now, report)),
            ("purge", lambda: self.purge_cooled(now, report)),
            ("reconcile", lambda: self.reconcile(now, report, grace=orphan_grace)),
            ("owner-limits", self._reconcile_owners),
            ("vault-gc", lambda: self.collect_vault(now, report)),
            ("retention", lambda: self.enforce_retention(now, report)),
        ]
        for name, job in jobs:
            try:
                job()
            except Exception as exc:  # one failing job must not stop the others
                log.warning("worker job %s failed: %s", name, type(exc).__name__)
                report.errors.append(f"{name}: {type(exc).__name__}")
        return report

    def _reconcile_owners(self) -> None:
        if self.owner_limits is not None:
            self.owner_limits.reconcile()

    def sweep_expired(self, now: dt.datetime, report: SweepReport) -> None:
        while True:
            with self.db.session() as session:
                batch = session.scalars(
                    select(Binding)
                    .options(selectinload(Binding.members))
                    .where(Binding.status == "active", Binding.expires_at <= now)
                    .limit(SWEEP_BATCH)
                ).all()
                for binding in batch:
                    self.bindings.end(session, binding, status="expired", now=now)
                report.expired += len(batch)
            if len(batch) < SWEEP_BATCH:
                return

    def purge_cooled(self, now: dt.datetime, report: SweepReport) -> None:
        with self.db.session() as session:
            batch = session.scalars(
                select(Binding)
                .options(selectinload(Binding.members))
                .where(
                    Binding.status != "active",
                    Binding.purged_at.is_(None),
                    Binding.ended_at <= now - self.cooldown,
                )
                .limit(SWEEP_BATCH * 4)
            ).all()
            for binding in batch:
                self.routes.release(
                    binding.relay_number,
                    binding_id=binding.id,
                    extension=binding.extension,
                    indexes=self.bindings.party_indexes(session, binding),
                )
                binding.purged_at = now
            report.purged += len(batch)

    def reconcile(self, now: dt.datetime, report: SweepReport, *, grace: float) -> None:
        """SQL rows with no routes get them; Redis claims with no SQL row go."""
        with self.db.session() as session:
            numbers = session.scalars(select(RelayNumber.e164)).all()
            live = session.scalars(
                select(Binding)
                .options(selectinload(Binding.members))
                .where(Binding.status == "active", Binding.expires_at > now)
            ).all()
            live_by_number: dict[str, list[Binding]] = {}
            for b in live:
                live_by_number.setdefault(b.relay_number, []).append(b)
            live_ids = {b.id for b in live}
            # (relay number, binding id, party indexes, extension) in Redis only
            suspects: list[tuple[str, str, list[bytes], str | None]] = []
            for number in numbers:
                has_generation, present, extensions = self.routes.entries(number)
                if not has_generation:
                    continue  # lost data: that is a rebuild's job, not ours
                missing = [b for b in live_by_number.get(number, []) if b.id not in present]
                if missing:
                    stored = [stored_binding(session, self.vault, b) for b in missing]
                    report.restored += self.routes.restore(
                        number, stored, generation=now.strftime("%Y%m%dT%H%M%S"), now=epoch(now)
                    )
                suspects += [
                    (number, bid, indexes, extensions.get(bid))
                    for bid, indexes in present.items()
                    if bid not in live_ids
                ]
            # Ended bindings cooling down have SQL rows: only claims with no
            # row at all can be orphans, and only they are worth waiting for.
            known: set[str] = set()
            ids = sorted({bid for _, bid, _, _ in suspects})
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                known.update(session.scalars(select(Binding.id).where(Binding.id.in_(chunk))).all())
            suspects = [s for s in suspects if s[1] not in known]
        if not suspects:
            return
        # A claim is written to Redis a moment before its SQL row commits:
        # only what still has no SQL row after the grace period is an orphan.
        self._sleep(grace)
        with self.db.session() as session:
            for number, bid, indexes, extension in suspects:
                if session.get(Binding, bid) is not None:
                    continue  # committed meanwhile, or ended: purge's job
                self.routes.release(number, binding_id=bid, extension=extension, indexes=indexes)
                report.orphans_released += 1
                log.info("released orphan claim %s on %s", bid, number)

    def collect_vault(self, now: dt.datetime, report: SweepReport) -> None:
        with self.db.session() as session:
            result = session.execute(
                delete(VaultEntry)
                .where(
                    VaultEntry.erased_at.is_(None),
                    VaultEntry.created_at < now - self.vault_gc_grace,
                    ~or_(*_vault_references()),
                )
                .execution_options(synchronize_session=False)
            )
            report.vault_collected += result.rowcount or 0  # type: ignore[attr-defined]

    def enforce_retention(self, now: dt.datetime, report: SweepReport) -> None:
        """Erase parties whose last binding ended more than the retention ago."""
        last_activity = (
            select(
                BindingMember.token,
                func.max(func.coalesce(Binding.ended_at, Binding.expires_at)).label("last"),
                func.sum(case((Binding.status == "active", 1), else_=0)).label("active"),
            )
            .join(Binding, Binding.id == BindingMember.binding_id)
            .group_by(BindingMember.token)
            .subquery()
        )
        with self.db.session() as session:
            tokens = session.scalars(
                select(last_activity.c.token)
                .join(VaultEntry, VaultEntry.token == last_activity.c.token)
                .where(
                    VaultEntry.erased_at.is_(None),
                    last_activity.c.last < now - self.retention,
                    last_activity.c.active == 0,
                )
                .limit(SWEEP_BATCH)
            ).all()
            for token in tokens:
                self.vault.erase(
                    session,
                    token,
                    actor="worker",
                    reason=f"retention period of {self.retention.days} days without a binding ended",
                )
            report.retention_erased += len(tokens)


__all__ = ["SweepReport", "Sweeper"]
