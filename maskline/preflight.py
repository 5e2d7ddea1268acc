"""Every reason a configuration cannot start, found in one run.

``serve`` and ``worker`` in production, and ``maskline check``, list all of
them, one line each naming the setting to change (``MASKLINE_…``), instead
of stopping at the first: an operator fixing a new deployment should not
need five restarts to learn five things.

Only what would stop start-up is listed. A Redis that cannot be reached is
not: the server starts degraded during a Redis outage and rebuilds the
routes when it answers (see :mod:`maskline.server`).
"""

from __future__ import annotations

import sys
from typing import Literal

import click

from config import Settings, SettingsError, load_settings, with_overrides

Role = Literal["web", "worker"]


def _named(setting: str, problem: str) -> str:
    """``problem``, led by the setting it is about unless it starts with one already."""
    return problem if problem.startswith("MASKLINE_") else f"{setting}: {problem}"


def _key_ring_problems(settings: Settings) -> list[str]:
    from maskline.wiring import StartupError, load_keys

    setting = "MASKLINE_KEYS" if settings.keys_json is not None else "MASKLINE_KEYS_FILE"
    try:
        load_keys(settings)
    except StartupError as exc:
        return [_named(setting, str(exc))]
    return []


def _database_problems(settings: Settings) -> list[str]:
    from sqlalchemy.exc import OperationalError

    from maskline import migrate
    from maskline.db import Database

    try:
        db = Database(url=settings.database_url)
    except Exception as exc:  # an unparsable URL or a missing driver
        return [f"MASKLINE_DATABASE_URL cannot be used: {type(exc).__name__}"]
    try:
        if not migrate.is_up_to_date(db.engine):
            return [
                "MASKLINE_DATABASE_URL: the schema is not up to date "
                "(run `maskline init` or `maskline db upgrade`)"
            ]
    except OperationalError as exc:
        # The driver's message can quote the URL with its password: its type only.
        return [f"MASKLINE_DATABASE_URL: the database cannot be reached ({type(exc.orig).__name__})"]
    finally:
        db.engine.dispose()
    return []


def _worker_problems(settings: Settings) -> list[str]:
    key, destination = "MASKLINE_AUDIT_SIGNING_KEY_FILE", "MASKLINE_AUDIT_CHECKPOINT_FILE"
    found = [
        _named(destination if "destination" in p else key, p) for p in settings.audit_checkpoint_problems()
    ]
    if found:
        return found
    from maskline.audit.checkpoints import signing_key_from
    from maskline.audit.interfaces import CheckpointError

    try:
        signing_key_from(settings)
    except CheckpointError as exc:
        return [_named("MASKLINE_AUDIT_SIGNING_KEY_FILE", str(exc))]
    return []


def startup_problems(settings: Settings, *, role: Role = "web") -> list[str]:
    """Why ``settings`` cannot start a ``role`` process: one line per problem, each
    naming a ``MASKLINE_…`` setting; empty if it can start."""
    found = list(settings.problems())
    found += _key_ring_problems(settings)
    # A production database that is SQLite is reported once, by problems().
    if not (settings.is_production and settings.database_url.startswith("sqlite")):
        found += _database_problems(settings)
    if role == "worker" and settings.is_production:
        found += _worker_problems(settings)
    return found


def refuse_on_problems(settings: Settings, *, role: Role) -> None:
    """In production, print every start-up problem to stderr and exit 1 if there is any."""
    if not settings.is_production:
        return  # development and testing keep their one-line refusals and their warnings
    problems = startup_problems(settings, role=role)
    if problems:
        _print(problems)
        sys.exit(1)


def _print(problems: list[str]) -> None:
    # One line per problem and nothing else, each naming its setting, so that
    # a log reader (or a grep for MASKLINE_) sees every one of them.
    for problem in problems:
        click.echo(f"error: {problem}", err=True)


@click.command("check")
@click.option("--production", is_flag=True, help="check as MASKLINE_ENV=production would start")
@click.option(
    "--role",
    type=click.Choice(["web", "worker"]),
    default="worker",
    show_default=True,
    help="web: what `serve` needs; worker: that and the audit checkpoint key",
)
def check(production: bool, role: Role) -> None:
    """List every problem that would stop `serve` or `worker` from starting, and exit 1 if any."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    if production and not settings.is_production:
        settings = with_overrides(settings, env="production")
    problems = startup_problems(settings, role=role)
    if problems:
        _print(problems)
        sys.exit(1)
    click.echo(f"ok: this configuration can start ({settings.env}, {role})")
