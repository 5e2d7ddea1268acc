"""Building maskline's services from settings: shared by the app and the CLI.

Start-up checks live here, so the web server and every CLI command refuse
the same bad configurations with the same one-line reasons.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import OperationalError

from config import Settings
from maskline import errors, migrate
from maskline.audit.services import AuditLog
from maskline.clock import Clock, system_clock
from maskline.db import Database
from maskline.vault.interfaces import KeyRingError
from maskline.vault.keyring import KeyRingSource, check_file_permissions
from maskline.vault.normalize import NumberPolicy
from maskline.vault.rotation import check_and_register
from maskline.vault.services import VaultService

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from maskline.admin.accounts import AdminAccounts
    from maskline.admin.management import AccountManagement
    from maskline.admin.reveal import RevealService
    from maskline.audit.alerts import AlertService
    from maskline.events.delivery import Deliverer
    from maskline.events.services import Outbox, OwnerService
    from maskline.fast_sql import FastReader
    from maskline.numbers.owner_limits import OwnerLimitSync
    from maskline.numbers.pool import PoolService
    from maskline.numbers.rebuild import AutoRebuilder
    from maskline.numbers.router import Router
    from maskline.numbers.routes import RouteStore
    from maskline.numbers.services import BindingService
    from maskline.numbers.sweeper import Sweeper

log = logging.getLogger(__name__)


class StartupError(errors.MasklineError):
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
    _numbers: Any = None
    _webhook_backends: Any = None
    _events: Any = None
    _admin: Any = None
    _alerts: Any = None

    @property
    def admin(self) -> AdminServices:
        """Console accounts and the dual-control reveal (no Redis needed)."""
        if self._admin is None:
            self._admin = build_admin(self)
        admin: AdminServices = self._admin
        return admin

    @property
    def redis(self) -> Any:
        """The routing store's client, connected on first use."""
        if self._redis is None:
            from maskline.redis_backend import connect

            self._redis = connect(self.settings.redis_url, instance_path=self.settings.instance_path)
        return self._redis

    @property
    def numbers(self) -> NumbersServices:
        """Pool, bindings, router and sweeper (built on first use: they need Redis).

        A Redis Cluster client asks for the slot map as it is made: while the
        cluster is down, this raises RoutingUnavailable (and is retried on the
        next use), as any routing-store call on a down Redis does.
        """
        if self._numbers is None:
            from maskline.numbers.interfaces import RoutingUnavailable
            from maskline.redis_backend import REDIS_ERRORS

            try:
                self._numbers = build_numbers(self)
            except REDIS_ERRORS as exc:
                raise RoutingUnavailable(f"routing store unavailable: {type(exc).__name__}") from None
        numbers: NumbersServices = self._numbers
        return numbers

    @property
    def events(self) -> EventsServices:
        """The outbox, its delivery and owners' events settings (no Redis needed)."""
        if self._events is None:
            self._events = build_events(self)
        events: EventsServices = self._events
        return events

    @property
    def alerts(self) -> AlertService:
        """Insider-threat and abuse alerts: signals queued, counted and recorded
        by a background thread (built on first use; connects nothing yet)."""
        if self._alerts is None:
            self._alerts = build_alerts(self)
        alerts: AlertService = self._alerts
        return alerts

    @property
    def webhook_backends(self) -> WebhookBackends:
        """Redis, SQL and a router for the webhook path, with short timeouts."""
        if self._webhook_backends is None:
            self._webhook_backends = build_webhook_backends(self)
        backends: WebhookBackends = self._webhook_backends
        return backends

    def close(self) -> None:
        if self._alerts is not None:
            self._alerts.close()  # first: its queue still needs SQL and Redis
        if self._numbers is not None:
            # A rebuild in progress holds a database connection: let it finish.
            self._numbers.rebuilder.join()
            if self._numbers.bind_sql is not None:
                self._numbers.bind_sql.close_all()
        self.db.dispose()
        if self._redis is not None and hasattr(self._redis, "close"):
            self._redis.close()
        if self._webhook_backends is not None:
            self._webhook_backends.close(self)


@dataclass
class NumbersServices:
    routes: RouteStore
    pool: PoolService
    bindings: BindingService
    router: Router
    rebuilder: AutoRebuilder
    sweeper: Sweeper
    owner_limits: OwnerLimitSync
    # The bind path's own psycopg connections (PostgreSQL), closed with the services.
    bind_sql: FastReader | None = None


@dataclass
class AdminServices:
    accounts: AdminAccounts
    reveals: RevealService
    management: AccountManagement


def build_admin(services: Services) -> AdminServices:
    from maskline.admin.accounts import AdminAccounts

    def failed_login(*, account: str, at: dt.datetime) -> None:
        services.alerts.failed_login(account=account, at=at)

    from maskline.admin.lockout import LoginLockouts

    accounts = AdminAccounts(
        db=services.db,
        keys=services.keys,
        audit=services.audit,
        settings=services.settings,
        clock=services.clock,
        on_failed_login=failed_login,
        # Redis is asked only at a login (and never needed: without it the
        # account-wide lockout in SQL applies).
        lockouts=LoginLockouts(
            redis=lambda: services.redis,
            max_failures=services.settings.admin_max_failed_logins,
            lockout=services.settings.admin_lockout,
        ),
    )
    from maskline.admin.reveal import RevealPolicy, RevealService

    def reveal_viewed(*, admin: str, request_id: str, at: dt.datetime) -> None:
        services.alerts.reveal_viewed(admin=admin, request_id=request_id, at=at)

    def reveal_requested(*, admin: str, request_id: str, at: dt.datetime) -> None:
        services.alerts.reveal_requested(admin=admin, request_id=request_id, at=at)

    reveals = RevealService(
        db=services.db,
        vault=services.vault,
        audit=services.audit,
        policy=RevealPolicy.from_settings(services.settings),
        clock=services.clock,
        on_view=reveal_viewed,
        on_request=reveal_requested if services.settings.reveal_notice else None,
    )
    from maskline.admin.management import AccountManagement
    from maskline.api.keys import ApiKeyService

    management = AccountManagement(
        db=services.db,
        audit=services.audit,
        accounts=accounts,
        keys=ApiKeyService(db=services.db, clock=services.clock, audit=services.audit),
        owners=services.events.owners,
        clock=services.clock,
    )
    return AdminServices(accounts=accounts, reveals=reveals, management=management)


@dataclass
class EventsServices:
    outbox: Outbox
    deliverer: Deliverer
    owners: OwnerService


def build_events(services: Services) -> EventsServices:
    from maskline.events.delivery import Deliverer
    from maskline.events.services import Outbox, OwnerService

    settings = services.settings
    # Plain http is for a receiver on this machine, and never in production.
    loopback_http = not settings.is_production
    return EventsServices(
        outbox=Outbox(clock=services.clock),
        deliverer=Deliverer(
            db=services.db,
            allow_loopback_http=loopback_http,
            allow=settings.outbound_allow,
            max_attempts=settings.events_max_attempts,
            clock=services.clock,
            reserved=_reserved_receivers(settings),
        ),
        owners=OwnerService(
            db=services.db,
            clock=services.clock,
            allow_loopback_http=loopback_http,
            allow=settings.outbound_allow,
            audit=services.audit,
            # Built with the numbers services, when set-limits first needs them.
            limits=lambda: services.numbers.owner_limits,
        ),
    )


def _reserved_receivers(settings: Settings) -> dict[str, tuple[str, str]]:
    """maskline's own outbox receivers: alerts, and the Alibaba face's call
    receipts, go to their configured URLs, each signed with its own secret
    (never logged; the owner name is what logs show)."""
    from maskline.audit.interfaces import ALERTS_OWNER
    from maskline.compat.aliyun.interfaces import REPORT_OWNER

    reserved = {}
    if settings.alerts_url and settings.alerts_secret:
        reserved[ALERTS_OWNER] = (settings.alerts_url, settings.alerts_secret)
    if settings.aliyun_report_url and settings.aliyun_report_secret:
        reserved[REPORT_OWNER] = (settings.aliyun_report_url, settings.aliyun_report_secret)
    return reserved


def build_alerts(services: Services) -> AlertService:
    """Alerts are sent through the outbox only when an alerts URL is configured.

    They count on a Redis client like the webhook path's (same server, same
    short ``webhook_backend_timeout``: a hung Redis holds the alerts thread
    that long per batch, and never a request), made here, with its own pool.
    Built here rather than borrowed lazily from ``webhook_backends``, so the
    alerts thread never builds a part of Services while a request thread
    may be building the same part (the loser's client would be collected,
    closing connections in use). An in-process Redis is shared as is.
    """
    from maskline.audit.alerts import AlertService
    from maskline.redis_backend import connect, is_in_process

    settings = services.settings
    shared = settings.redis_url is None and is_in_process(services.redis)
    client = (
        services.redis
        if shared
        else connect(
            settings.redis_url,
            instance_path=settings.instance_path,
            timeout=settings.webhook_backend_timeout,
            quiet=True,
        )
    )
    return AlertService(
        db=services.db,
        redis=lambda: client,
        settings=settings,
        outbox=services.events.outbox if settings.alerts_url and settings.alerts_secret else None,
        clock=services.clock,
        close_redis=not shared,
    )


@dataclass
class WebhookBackends:
    """The same Redis and SQL servers as everything else, through clients whose
    timeouts are ``webhook_backend_timeout``: a hung backend costs a caller
    that long, then an apology, instead of Twilio's own timeout and error."""

    redis: Any
    db: Database
    router: Router
    # The connect path's one prepared statement (psycopg, no SQLAlchemy).
    fast_sql: FastReader

    def close(self, services: Services) -> None:
        self.fast_sql.close()
        if self.db is not services.db:
            self.db.dispose()
        if self.redis is not services._redis and hasattr(self.redis, "close"):
            self.redis.close()


def build_webhook_backends(services: Services) -> WebhookBackends:
    """Short-timeout clients; an in-process Redis or SQLite is shared as is."""
    from maskline.fast_sql import FastReader
    from maskline.numbers.router import Router
    from maskline.numbers.routes import RouteStore
    from maskline.redis_backend import connect, is_in_process

    settings = services.settings
    timeout = settings.webhook_backend_timeout
    numbers = services.numbers  # builds (and, in-process, fills) the shared Redis first
    if is_in_process(services.redis):
        redis_client = services.redis
    else:
        redis_client = connect(
            settings.redis_url, instance_path=settings.instance_path, timeout=timeout, quiet=True
        )
    db = services.db
    if db.dialect == "postgresql":
        db = Database(url=settings.database_url, statement_timeout=timeout)
    router = Router(
        db=db,
        vault=services.vault,
        routes=RouteStore(redis_client),
        # A rebuild is background work over the normal clients: it may take
        # longer than any one webhook is allowed to.
        rebuilder=numbers.rebuilder,
        clock=services.clock,
    )
    fast_sql = FastReader(db=db, timeout=timeout)
    return WebhookBackends(redis=redis_client, db=db, router=router, fast_sql=fast_sql)


def build_numbers(services: Services) -> NumbersServices:
    """The numbers package's services over this process's Redis and SQL."""
    from maskline.numbers.pool import PoolService, live_counts
    from maskline.numbers.rebuild import AutoRebuilder
    from maskline.numbers.router import Router
    from maskline.numbers.routes import RouteStore
    from maskline.numbers.selection import RelaySelection
    from maskline.numbers.services import BindingPolicy, BindingService
    from maskline.numbers.sweeper import Sweeper

    settings = services.settings
    routes = RouteStore(services.redis)
    bindings = BindingService(
        db=services.db,
        vault=services.vault,
        routes=routes,
        selection=RelaySelection(services.redis, counts=live_counts),
        policy=BindingPolicy(
            cap=settings.max_bindings_per_number,
            extension_digits=settings.extension_digits,
            open_extension_digits=settings.open_extension_digits,
            owner_max_live=settings.owner_max_live_bindings,
            cooldown=settings.cooldown,
            default_ttl=settings.default_ttl,
            delivery_grace=settings.delivery_grace,
            max_ttl=settings.max_ttl,
            geo_policy=settings.geo_policy,
        ),
        clock=services.clock,
    )
    # Binding events go to the outbox in the binding's own transaction.
    bindings.on_event(services.events.outbox.on_binding_event)
    # API keys' binding bursts and distinct buyers (queued after commit, no SQL).
    bindings.on_event(services.alerts.on_binding_event)
    rebuilder = AutoRebuilder(
        db=services.db, vault=services.vault, routes=routes, cooldown=settings.cooldown, clock=services.clock
    )
    bindings.when_routes_lost(rebuilder.trigger)
    router = Router(
        db=services.db, vault=services.vault, routes=routes, rebuilder=rebuilder, clock=services.clock
    )
    owner_limits = _owner_limit_sync(services, routes)
    routes.recount_owners = owner_limits.reconcile
    sweeper = Sweeper(
        db=services.db,
        vault=services.vault,
        routes=routes,
        bindings=bindings,
        cooldown=settings.cooldown,
        retention=settings.retention,
        vault_gc_grace=settings.vault_gc_grace,
        owner_limits=owner_limits,
    )
    pool = PoolService(clock=services.clock, routes=routes, default_region=settings.default_region)
    numbers = NumbersServices(
        routes=routes,
        pool=pool,
        bindings=bindings,
        router=router,
        rebuilder=rebuilder,
        sweeper=sweeper,
        owner_limits=owner_limits,
    )
    from maskline.redis_backend import is_in_process

    if is_in_process(services.redis):
        # An in-process Redis starts empty: SQL is the source of truth, so
        # this process rebuilds its routes before it routes anything.
        from maskline.numbers.rebuild import rebuild_routes

        rebuild_routes(
            db=services.db,
            vault=services.vault,
            routes=routes,
            cooldown=settings.cooldown,
            now=services.clock(),
        )
    # Keep this listener the last one registered: its append takes the audit
    # chain's lock (on PostgreSQL held to commit), so the later in the
    # binding's transaction it runs, the shorter concurrent binds wait on it.
    from maskline.audit.listeners import BindingAuditor

    auditor = BindingAuditor(audit=services.audit)
    bindings.on_event(auditor.on_binding_event)
    if services.db.dialect == "postgresql":
        # Binds in one statement on PostgreSQL; its records stand for the
        # three listeners above (outbox, alerts, audit).
        from maskline.fast_sql import FastReader
        from maskline.numbers.bind_sql import BindWriter, CreatedRecords

        outbox = services.events.outbox
        numbers.bind_sql = FastReader(db=services.db, timeout=None)
        bindings.use_writer(
            BindWriter(
                sql=numbers.bind_sql,
                records=lambda event: CreatedRecords(
                    audit=auditor.prepared(event), outbox=outbox.binding_row(event)
                ),
                committed=services.alerts.binding_committed,
            )
        )
    return numbers


def _owner_limit_sync(services: Services, routes: RouteStore) -> OwnerLimitSync:
    """Owners' caps from the owners table, and what the faces hold for them
    outside bindings (reserved numbers, unpaired participants, bought
    numbers), counted against their caps by the reconcile."""
    from sqlalchemy import func, select

    from maskline.api.models import Owner
    from maskline.compat.aliyun.models import AliyunPoolNumber
    from maskline.compat.twilio.models import ProxyParticipant, ProxyPhoneNumber, ProxyService, ProxySession
    from maskline.numbers.owner_limits import OwnerLimitSync as Sync

    def caps(session: Session) -> dict[str, int | None]:
        return {name: cap for name, cap in session.execute(select(Owner.name, Owner.max_live_bindings))}

    def twilio_reserved(session: Session) -> dict[str, int]:
        rows = session.execute(
            select(ProxyService.owner, func.count())
            .join(ProxyPhoneNumber, ProxyPhoneNumber.service_sid == ProxyService.sid)
            .where(ProxyPhoneNumber.is_reserved.is_(True))
            .group_by(ProxyService.owner)
        )
        return {owner: int(n) for owner, n in rows}

    def twilio_unpaired(session: Session) -> dict[str, int]:
        # A participant waiting for its session's second one holds a place.
        rows = session.execute(
            select(ProxySession.owner, func.count())
            .join(ProxyParticipant, ProxyParticipant.session_sid == ProxySession.sid)
            .where(ProxySession.binding_id.is_(None), ProxySession.status == "open")
            .group_by(ProxySession.owner)
        )
        return {owner: int(n) for owner, n in rows}

    def aliyun_bought(session: Session) -> dict[str, int]:
        rows = session.execute(
            select(AliyunPoolNumber.owner, func.count(func.distinct(AliyunPoolNumber.e164))).group_by(
                AliyunPoolNumber.owner
            )
        )
        return {owner: int(n) for owner, n in rows}

    return Sync(
        db=services.db,
        counts=routes.owners,
        caps=caps,
        held=[twilio_reserved, twilio_unpaired, aliyun_bought],
    )


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
    # Erasing a party ends its live bindings, in the erase's transaction.
    vault.on_erase(lambda session, token: services.numbers.bindings.unbind_party(session, token))
    if check_schema:
        try:
            verify_database(services)
        except StartupError:
            services.close()
            raise
        from maskline.redis_backend import is_in_process

        if settings.redis_url is None and is_in_process(services.redis):
            # Build (and so rebuild from SQL) now, not lazily inside some
            # caller's transaction, where SQLite's write lock would block it.
            _ = services.numbers
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
