"""``maskline worker``: the periodic jobs of every package, in one loop.

An entry point, beside ``maskline.cli`` and ``maskline.server``: it composes
jobs from numbers, events, compat, the console and the audit chain, so it lives
above all of them (issue 21's layers) rather than inside any one package.
"""

from __future__ import annotations

import time
from typing import Any

import click

from maskline.numbers.interfaces import NumbersError
from maskline.numbers.rebuild import pool_numbers


def _services() -> Any:
    from maskline.cli import _services as build

    return build()


def _idempotency_store(services: Any) -> Any:
    from maskline.api.idempotency import IdempotencyStore

    settings = services.settings
    return IdempotencyStore(
        db=services.db,
        secret=settings.secret_key.encode(),
        clock=services.clock,
        ttl=settings.idempotency_ttl,
    )


@click.command()
@click.option("--interval", default=30.0, show_default=True, help="seconds between runs")
@click.option("--once", is_flag=True, help="run the jobs once and exit")
def worker(interval: float, once: bool) -> None:
    """Run the periodic jobs: sweep, purge, reconcile, vault GC, retention, events, idempotency records,
    signed audit checkpoints."""
    from maskline.cli import _settings
    from maskline.compat.twilio.callbacks import CallbackWorker
    from maskline.preflight import refuse_on_problems

    # Production lists every problem at once, before anything is started.
    refuse_on_problems(_settings(), role="worker")
    with _services() as services:
        numbers = services.numbers
        checkpointer = _checkpointer(services)
        proxy_callbacks = CallbackWorker(services=services)
        while True:
            # Data loss shows up as numbers without a generation marker.
            try:
                lost = [n for n in pool_numbers(services.db) if not numbers.routes.has_generation(n)]
            except NumbersError:
                lost = []
            if lost:
                click.echo(f"routing data missing for {len(lost)} numbers: rebuilding", err=True)
                numbers.rebuilder.trigger(wait=True)
            report = numbers.sweeper.run_once(services.clock())
            click.echo(report.summary())
            click.echo(_pool_loads(services))
            click.echo(services.events.deliverer.deliver_due(services.clock()).summary())
            click.echo(proxy_callbacks.run_once(services.clock()).summary())
            purged = _idempotency_store(services).purge(services.clock())
            click.echo(f"idempotency records purged: {purged}")
            # Lapsed reveal requests and unviewed approvals: expired, audited.
            click.echo(f"reveal requests expired: {services.admin.reveals.expire_due(services.clock())}")
            if checkpointer is not None:
                signed = checkpointer.run_prompted(services.clock())
                click.echo(signed.summary(), err=bool(signed.errors))
            if once:
                return
            _wait_signing_prompted(checkpointer, services.clock, interval)


def _pool_loads(services: Any) -> str:
    """Every region's load, handed to the alerts: ``pool_low`` once each time a
    region passes 80% (see AlertService.pool_loads). A summary line, or why not."""
    from maskline.numbers.load import region_loads

    try:
        now = services.clock()
        with services.db.session() as session:
            loads = region_loads(session, now=now, per_number=services.settings.max_bindings_per_number)
        services.alerts.pool_loads(loads, at=now)
    except Exception as exc:
        return f"pool load: not checked ({type(exc).__name__})"
    low = [load.region for load in loads if load.low]
    return f"pool load: {len(loads)} regions, {len(low)} past 80%" + (f" ({', '.join(low)})" if low else "")


# Seconds between looks for a reveal view or an admin change to sign (see
# Checkpointer.run_prompted): how soon after one a checkpoint covers it.
CHECKPOINT_POLL = 2.0


def _wait_signing_prompted(checkpointer: Any, clock: Any, interval: float) -> None:
    """Wait ``interval`` seconds; meanwhile sign a checkpoint soon after any
    reveal view or admin change, never in the request that made it."""
    deadline = time.monotonic() + interval
    while (remaining := deadline - time.monotonic()) > 0:
        time.sleep(min(CHECKPOINT_POLL, remaining))
        if checkpointer is None:
            continue
        signed = checkpointer.run_prompted(clock())
        if signed.signed is not None or signed.errors:
            click.echo(signed.summary(), err=bool(signed.errors))


def _checkpointer(services: Any) -> Any:
    """The audit checkpointer; production refuses to run the worker without one
    (see Settings.problems), elsewhere the worker says it runs without."""
    from maskline.audit.checkpoints import build_checkpointer
    from maskline.audit.interfaces import CheckpointError

    settings = services.settings
    problems = "; ".join(settings.audit_checkpoint_problems())
    if problems and not settings.is_production:
        click.echo(f"WARNING: audit checkpoints are off: {problems}", err=True)
        return None
    if problems:
        raise click.ClickException(f"refusing to start the worker: {problems}")
    try:
        return build_checkpointer(settings, db=services.db, audit=services.audit, clock=services.clock)
    except CheckpointError as exc:
        raise click.ClickException(f"refusing to start the worker: {exc}") from None
