"""Building maskline's services from settings: shared by the app and the CLI.

Start-up checks live here, so the web server and every CLI command refuse
the same bad configurations with the same one-line reasons.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import OperationalError

from config import Settings
from maskline import migrate
from maskline.audit.services import AuditLog
from maskline.clock import Clock, system_clock
from maskline.db import Database
from maskline.vault.interfaces import KeyRingError
from maskline.vault.keyring import KeyRingSource, check_file_permissions
from maskline.vault.normalize import NumberPolicy
from maskline.vault.rotation import check_and_register
from maskline.vault.services import VaultService

log = logging.getLogger(__name__)


class StartupError(Exception):
    """maskline must not start; the message is one line saying why."""


@dataclass
class Services:
    """Everything a request or a command needs, built once per process."""

    settings: Settings
    db: Database
    keys: KeyRingSource
    vault: VaultService
    audit: AuditLog
    clock: Clock
    _redis: Any = None

    @property
    def redis(self) -> Any:
        """The routing store's client, connected on first use."""
        if self._redis is None:
            from maskline.redis_backend import connect

            self._redis = connect(self.settings.redis_url, instance_path=self.settings.instance_path)
        return self._redis

    def close(self) -> None:
        self.db.dispose()


def load_keys(settings: Settings) -> KeyRingSource:
    """The key ring source, or StartupError with a one-line reason."""
    try:
        source = KeyRingSource(
            path=settings.keys_file if settings.keys_json is None else None,
            text=settings.keys_json,
            reload_seconds=settings.keyring_reload_seconds,
        )
    except KeyRingError as exc:
        raise StartupError(str(exc)) from None
    if settings.is_production:
        if source.current().development:
            raise StartupError(
                "the key ring is a development key ring; "
                "production needs one made with MASKLINE_ENV=production"
            )
        if source.path is not None and (problem := check_file_permissions(source.path)):
            raise StartupError(problem)
    return source


def build_services(settings: Settings, *, clock: Clock = system_clock, check_schema: bool = True) -> Services:
    """Wire the services; with ``check_schema``, verify the database and key ring agree."""
    problems = settings.problems()
    if problems:
        raise StartupError("refusing to start in production: " + "; ".join(problems))
    keys = load_keys(settings)
    db = Database(url=settings.database_url)
    audit = AuditLog(clock=clock, region=settings.default_region)
    policy = NumberPolicy(
        default_region=settings.default_region,
        allowed_countries=settings.allowed_countries,
        refused_types=settings.refused_number_types,
    )
    vault = VaultService(keys=keys, policy=policy, audit=audit, clock=clock)
    services = Services(settings=settings, db=db, keys=keys, vault=vault, audit=audit, clock=clock)
    if check_schema:
        verify_database(services)
    return services


def verify_database(services: Services) -> None:
    """Schema up to date, and the key ring is the one the data was sealed with."""
    try:
        if not migrate.is_up_to_date(services.db.engine):
            raise StartupError(
                "the database schema is not up to date (run `maskline init` or `maskline db upgrade`)"
            )
        with services.db.session() as session:
            for line in check_and_register(session, services.keys.current(), clock=services.clock):
                log.info("key ring: %s", line)
    except KeyRingError as exc:
        raise StartupError(str(exc)) from None
    except OperationalError as exc:
        raise StartupError(f"the database cannot be reached: {type(exc.orig).__name__}") from None
