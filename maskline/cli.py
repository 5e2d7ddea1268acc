"""The ``maskline`` command: set-up, the server, keys, the vault and the audit log.

Every command reads settings the same way the server does and refuses the
same bad configurations with the same one-line reasons (exit status 1).
Nothing here prints a party number, except ``vault reveal``, which exists to.
"""

from __future__ import annotations

import getpass
import importlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

# Only click at import time: `maskline --help` and every command pay for what
# they use, not for alembic, Flask or twilio (tests/unit/test_cli_lazy.py).
if TYPE_CHECKING:
    from config import Settings
    from maskline.vault import keyring as kr
    from maskline.wiring import Services

F = TypeVar("F", bound=Callable[..., Any])


def _settings() -> Settings:
    from config import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def _services(*, check_schema: bool = True) -> Iterator[Services]:
    from maskline.vault.interfaces import InvalidPhoneNumber, VaultError
    from maskline.wiring import StartupError, build_services

    settings = _settings()
    configure_cli_logging(settings)
    try:
        services = build_services(settings, check_schema=check_schema)
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        yield services
    except (VaultError, InvalidPhoneNumber) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        services.close()


def _default_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def _audit(services: Services, session: Any, action: str, subject: str, data: dict[str, Any]) -> None:
    """A record of this command's change by ``cli:<login>``, in the change's transaction."""
    from maskline.audit.interfaces import AuditEntry

    services.audit.append(
        session, AuditEntry(actor=_default_actor(), action=action, subject=subject, data=data)
    )


class LazyGroup(click.Group):
    """A group whose commands live in other modules, imported when run.

    ``maskline --help`` lists them from their registered help texts, so it
    imports none of them; ``maskline bind ...`` imports maskline.numbers.cli
    only. Commands added with ``@main.command()`` work as in any group.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, tuple[str, str]] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(load_command(self.lazy[cmd_name][0]), cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing, with lazy commands' help from the registry (no import)."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, self._listed_help(ctx, name, limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def _listed_help(self, ctx: click.Context, name: str, limit: int) -> str:
        if name in self.commands:
            return self.commands[name].get_short_help_str(limit)
        # A stand-in with the registered help: click's own shortening, no import.
        return click.Command(name, help=self.lazy[name][1]).get_short_help_str(limit)


def load_command(target: str) -> click.Command:
    """The command at ``"module:attribute"``."""
    module_name, _, attribute = target.partition(":")
    command = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{target} is not a click command")
    return command


def configure_cli_logging(settings: Settings) -> None:
    """stderr gets warnings (stdout is for results, e.g. a token), or what
    MASKLINE_LOG_LEVEL asks for when it is set; the log file, if any, gets
    MASKLINE_LOG_LEVEL (default INFO)."""
    import os

    from maskline.logging_setup import configure_logging

    configure_logging(
        level=settings.log_level,
        log_file=settings.log_file,
        region=settings.default_region,
        console_level=settings.log_level if os.environ.get("MASKLINE_LOG_LEVEL") else "WARNING",
    )


@click.group(cls=LazyGroup)
@click.version_option(package_name="maskline")
def main() -> None:
    """maskline: masked relay numbers in front of an encrypted number vault."""


# -- set-up -------------------------------------------------------------------


@main.command()
def init() -> None:
    """Create the instance folder, a development key ring if none, and the schema."""
    from maskline import migrate
    from maskline.vault import keyring as kr
    from maskline.wiring import StartupError, verify_database

    settings = _settings()
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    if settings.keys_json is None and settings.keys_file and not settings.keys_file.exists():
        if settings.is_production:
            raise click.ClickException(
                f"no key ring at {settings.keys_file}; create one with `maskline keys init` "
                "and store it outside the database host"
            )
        kr.write_keyring_file(settings.keys_file, kr.new_keyring(development=True))
        click.echo(f"created a development key ring at {settings.keys_file} (mode 0600)")
    from maskline.devsetup import ensure_development_token

    if token_file := ensure_development_token(settings):
        click.echo(f"created a development webhook token at {token_file} (mode 0600)")
    with _services(check_schema=False) as services:
        migrate.upgrade(services.db.engine)
        try:
            verify_database(services)
        except StartupError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"database ready: {_safe_url(settings.database_url)}")


def _register_lazy(*entries: tuple[str, str, str]) -> None:
    """Register commands of other modules on ``main``: (name, "module:attribute",
    the first paragraph of its help, for the listing)."""
    lazy = main.lazy
    for name, target, help_text in entries:
        lazy[name] = (target, help_text)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations."""
    from maskline import migrate

    with _services(check_schema=False) as services:
        migrate.upgrade(services.db.engine)
        click.echo(f"schema at {migrate.current_revision(services.db.engine)}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
def serve(host: str, port: int, workers: int) -> None:
    """Run the web server (gunicorn); starts the embedded Redis if none is configured."""
    from maskline.wiring import StartupError

    settings = _settings()
    from maskline.preflight import refuse_on_problems

    # Production lists every problem at once, before anything is started.
    refuse_on_problems(settings, role="web")
    redis_process = None
    if settings.redis_url is None:
        if settings.is_production:
            raise click.ClickException(
                "MASKLINE_REDIS_URL is not set (the embedded Redis is for development)"
            )
        redis_process = _start_embedded_redis(settings)
    if settings.env == "development":
        from maskline.devsetup import serve_banner

        click.echo(serve_banner(settings, host=host, port=port))
    try:
        from maskline.server import run_gunicorn

        run_gunicorn(
            host=host, port=port, workers=workers, metrics_dir=settings.instance_path / "metrics" / str(port)
        )
    except StartupError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if redis_process is not None:
            _stop_embedded_redis(redis_process)


def _start_embedded_redis(settings: Settings) -> subprocess.Popen[bytes]:
    from maskline.redis_backend import read_embedded_server

    process = subprocess.Popen([sys.executable, "-m", "maskline.embedded_redis", str(settings.instance_path)])
    # Wait for *this* server's port file: one left by an earlier server that
    # is still running (or whose pid was reused) must not be mistaken for it.
    for _ in range(400):
        server = read_embedded_server(settings.instance_path)
        if server is not None and server.pid == process.pid:
            # The one notice of the embedded Redis (the processes using it log
            # theirs at DEBUG), unless MASKLINE_LOG_LEVEL asks for errors only.
            if settings.log_level not in ("ERROR", "CRITICAL"):
                click.echo(
                    "WARNING: started the embedded development Redis (fakeredis) "
                    f"on 127.0.0.1:{server.port}; not for production",
                    err=True,
                )
            return process
        if process.poll() is not None:
            break
        time.sleep(0.05)
    _stop_embedded_redis(process)
    raise click.ClickException("the embedded Redis did not start")


def _stop_embedded_redis(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- keys ---------------------------------------------------------------------


@main.group()
def keys() -> None:
    """The key ring: key-encryption keys (kek) and blind-index keys (index)."""


# maskline.vault.keyring.KEY_KINDS, spelled out so that building the command
# imports no crypto (a unit test keeps the two equal).
KEY_KINDS = ("kek", "index")


def _kind_option(func: F) -> F:
    return click.option(
        "--kind",
        type=click.Choice(KEY_KINDS),
        default="kek",
        show_default=True,
        help="kek: wraps data keys; index: blind-index HMAC key",
    )(func)


def _keys_path(settings: Settings) -> Any:
    if settings.keys_json is not None or settings.keys_file is None:
        raise click.ClickException("the key ring comes from MASKLINE_KEYS; change it where it is kept")
    return settings.keys_file


def _register(message: str, action: str, data: dict[str, Any]) -> None:
    """Record new key versions in the database, with an audit record of the
    change, if the database is there to record them."""
    from maskline import migrate
    from maskline.vault import rotation
    from maskline.vault.interfaces import VaultError
    from maskline.wiring import StartupError, build_services

    settings = _settings()
    try:
        services = build_services(settings, check_schema=False)
    except StartupError:
        click.echo(message)
        return
    try:
        if migrate.is_up_to_date(services.db.engine):
            with services.db.session() as session:
                rotation.check_and_register(session, services.keys.refresh())
                _audit(services, session, action, f"keys:{data['kind']}", data)
    except VaultError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        services.close()
    click.echo(message)


@keys.command("init")
def keys_init() -> None:
    """Create a new key ring file (never overwrites one)."""
    from maskline.vault import keyring as kr

    settings = _settings()
    path = _keys_path(settings)
    if path.exists():
        raise click.ClickException(f"{path} exists; a key ring is never overwritten")
    kr.write_keyring_file(path, kr.new_keyring(development=not settings.is_production))
    click.echo(f"created key ring {path} (mode 0600); keep a copy away from the database")


@keys.command("add")
@_kind_option
def keys_add(kind: kr.KeyKind) -> None:
    """Add a new (not yet primary) key version. Load it everywhere, then promote."""
    from maskline.vault import keyring as kr

    path = _keys_path(_settings())
    ring, version = kr.with_added_version(kr.read_keyring_file(path), kind)
    kr.write_keyring_file(path, ring)
    _register(
        f"added {kind} version {version} (not primary yet)", "keys.added", {"kind": kind, "version": version}
    )


@keys.command("promote")
@click.argument("version", type=int)
@_kind_option
def keys_promote(version: int, kind: kr.KeyKind) -> None:
    """Make VERSION the primary key for new work."""
    from maskline.vault import keyring as kr
    from maskline.vault.interfaces import VaultError

    path = _keys_path(_settings())
    try:
        ring = kr.with_primary(kr.read_keyring_file(path), kind, version)
    except VaultError as exc:
        raise click.ClickException(str(exc)) from None
    kr.write_keyring_file(path, ring)
    job = "vault rewrap" if kind == "kek" else "vault reindex"
    _register(
        f"{kind} version {version} is primary; run `maskline {job}` to move old entries",
        "keys.promoted",
        {"kind": kind, "version": version},
    )


@keys.command("rotate")
@_kind_option
def keys_rotate(kind: kr.KeyKind) -> None:
    """Add and promote at once (single-process set-ups)."""
    from maskline.vault import keyring as kr

    path = _keys_path(_settings())
    ring, version = kr.with_added_version(kr.read_keyring_file(path), kind)
    kr.write_keyring_file(path, kr.with_primary(ring, kind, version))
    job = "vault rewrap" if kind == "kek" else "vault reindex"
    _register(
        f"{kind} version {version} added and primary; run `maskline {job}`",
        "keys.rotated",
        {"kind": kind, "version": version},
    )


@keys.command("retire")
@click.argument("version", type=int)
@_kind_option
def keys_retire(version: int, kind: kr.KeyKind) -> None:
    """Remove VERSION from the ring; refused while entries still use it."""
    from maskline.vault import keyring as kr
    from maskline.vault import rotation

    path = _keys_path(_settings())
    with _services() as services:
        ring = kr.without_version(kr.read_keyring_file(path), kind, version)
        totp = services.admin.accounts.second_factors_using(version) if kind == "kek" else 0
        if totp:
            raise click.ClickException(
                f"kek version {version} still protects {totp} admin second-factor secrets; "
                "run `maskline vault rewrap` first"
            )
        from maskline.compat.twilio.credentials import tokens_using

        tokens = tokens_using(services, version) if kind == "kek" else 0
        if tokens:
            raise click.ClickException(
                f"kek version {version} still protects {tokens} Twilio Proxy auth tokens; "
                "run `maskline vault rewrap` first"
            )
        with services.db.session() as session:
            rotation.mark_retired(session, kind, version)
            _audit(services, session, "keys.retired", f"keys:{kind}", {"kind": kind, "version": version})
        kr.write_keyring_file(path, ring)
    click.echo(f"retired {kind} version {version}")


@keys.command("status")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def keys_status(as_json: bool) -> None:
    """Key versions and how many entries each still protects."""
    from maskline.vault import rotation

    with _services() as services, services.db.session() as session:
        rows = rotation.key_status(session, services.keys.current())
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in rows], indent=2))
        return
    click.echo(
        f"{'kind':<6} {'version':>7} {'primary':<7} {'loaded':<6} {'retired':<7} {'entries':>8}  fingerprint"
    )
    for r in rows:
        click.echo(
            f"{r.kind:<6} {r.version:>7} {'yes' if r.primary else '':<7} {'yes' if r.loaded else 'NO':<6} "
            f"{'yes' if r.retired else '':<7} {r.entries:>8}  {r.fingerprint or '-'}"
        )


# -- vault --------------------------------------------------------------------


@main.group()
def vault() -> None:
    """Sealed party numbers."""


@vault.command("put")
@click.argument("number")
@click.option("--region", help="region for numbers written without +country code, e.g. CN")
def vault_put(number: str, region: str | None) -> None:
    """Store NUMBER sealed and print its token alone."""
    with _services() as services, services.db.session() as session:
        result = services.vault.put(session, number, field="NUMBER", region=region)
        # Audited: put answers whether a number is already a party's (same token).
        _audit(services, session, "vault.put", result.token, {"created": result.created})
    click.echo(result.token)


@vault.command("reveal")
@click.argument("token")
@click.option(
    "--actor",
    required=True,
    help="who is looking (recorded in the audit log); with --request, the admin who requested it",
)
@click.option("--reason", default=None, help="why (recorded in the audit log); not with --request")
@click.option(
    "--request",
    "request_id",
    default=None,
    metavar="ID",
    help="an approved dual-control reveal request for TOKEN, spent as its one view (required in production)",
)
def vault_reveal(token: str, actor: str, reason: str | None, request_id: str | None) -> None:
    """Print the E.164 number behind TOKEN, with an audit record.

    In production only through an approved dual-control reveal request
    (--request ID): the admin who requested it views it, once, within its
    view window. Elsewhere the plain form (--actor, --reason) stays, for operators.
    """
    from maskline.admin.interfaces import AdminError

    if request_id is None:
        # Checked before anything is built: production never opens a number
        # on one person's say-so.
        if _settings().is_production:
            raise click.ClickException(
                "in production, vault reveal needs --request ID (an approved dual-control reveal request)"
            )
        if reason is None or not reason.strip():
            raise click.ClickException("--reason must not be empty")
        with _services() as services, services.db.session() as session:
            number = services.vault.reveal(session, token, actor=actor, reason=reason)
        click.echo(number)
        return
    if reason is not None:
        raise click.ClickException(
            "--reason goes with the plain form: a reveal request carries its own reason"
        )
    with _services() as services:
        try:
            reveals = services.admin.reveals
            number = reveals.view(reveals.identity(actor), request_id, token=token, via=_default_actor())
        except AdminError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(number)


@vault.command("erase")
@click.argument("token")
@click.option("--reason", required=True, help="why (e.g. the erasure request's reference)")
@click.option("--actor", default=None, help="who erases (default: cli:<login>)")
def vault_erase(token: str, reason: str, actor: str | None) -> None:
    """Destroy the number behind TOKEN; a tombstone remains."""
    if not reason.strip():
        raise click.ClickException("--reason must not be empty")
    with _services() as services, services.db.session() as session:
        services.vault.erase(session, token, actor=actor or _default_actor(), reason=reason)
    click.echo(f"erased {token}")


def _batched(label: str, step: Callable[[Services, int, list[str]], int], batch: int) -> None:
    total, failed = 0, list[str]()
    with _services() as services:
        while True:
            before = len(failed)
            done = step(services, batch, failed)
            total += done
            if done == 0 and len(failed) == before:
                break
            click.echo(f"{label} {total} so far")
    click.echo(f"{label} {total} entries")
    if failed:
        for token in failed:
            click.echo(f"failed verification, left as it was: {token}", err=True)
        raise click.ClickException(f"{len(failed)} entries failed verification (listed above)")


@vault.command("rewrap")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 100_000))
def vault_rewrap(batch: int) -> None:
    """Re-wrap data keys under the primary KEK, in batches (resumable, online)."""

    from maskline.vault import rotation

    def step(services: Services, size: int, failed: list[str]) -> int:
        with services.db.session() as session:
            return rotation.rewrap_batch(session, services.keys.refresh(), batch=size, failed=failed)

    _batched("re-wrapped", step, batch)
    # Console accounts' TOTP secrets are sealed under the same KEKs: a few
    # rows, done at once, so that retiring the old KEK locks no admin out.
    with _services() as services:
        moved = services.admin.accounts.rewrap_second_factors()
        from maskline.compat.twilio.credentials import rewrap_tokens

        tokens = rewrap_tokens(services)
    click.echo(f"re-wrapped {moved} admin second-factor secrets")
    click.echo(f"re-wrapped {tokens} Twilio Proxy auth tokens")


@vault.command("reindex")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 100_000))
def vault_reindex(batch: int) -> None:
    """Recompute blind indexes under the primary index key, in batches."""

    from maskline.vault import rotation

    def step(services: Services, size: int, failed: list[str]) -> int:
        with services.db.session() as session:
            return rotation.reindex_batch(session, services.keys.refresh(), batch=size, failed=failed)

    _batched("re-indexed", step, batch)


# -- the other packages' commands, loaded when run ----------------------------

_register_lazy(
    # Each package's command, as "module:attribute", with its help text for
    # `maskline --help` (tests/unit/test_cli_lazy.py keeps these equal to the
    # commands' own).
    (
        "bind",
        "maskline.numbers.cli:bind",
        "Bind an order's parties to a relay number; prints the binding as JSON.",
    ),
    (
        "unbind",
        "maskline.numbers.cli:unbind",
        "End a binding now (its relay number then cools down for its parties).",
    ),
    ("route", "maskline.numbers.cli:route", "Print the routing decision as JSON (never a party's number)."),
    ("routes", "maskline.numbers.cli:routes_group", "The Redis routing store."),
    ("bindings", "maskline.numbers.cli:bindings_group", "Bindings: list, show, recordings, extend, sweep."),
    (
        "worker",
        "maskline.worker:worker",
        "Run the periodic jobs: sweep, purge, reconcile, vault GC, retention, events, idempotency records, "
        "signed audit checkpoints.",
    ),
    ("pool", "maskline.numbers.cli:pool_group", "The relay-number pool."),
    ("sim", "maskline.sim.cli:sim", "The carrier simulator: play Twilio against maskline."),
    ("apikey", "maskline.api.cli:apikey", "API keys of owners: create, list, revoke."),
    (
        "owner",
        "maskline.events.cli:owner",
        "Owners: create, list, their limits, and the URL maskline POSTs signed events to.",
    ),
    ("admin", "maskline.admin.cli:admin", "Admin console accounts."),
    (
        "demo",
        "maskline.demo:demo",
        "One order's story on a throwaway instance: bind, calls, a stranger, the end, the dumps.",
    ),
    ("audit", "maskline.audit.cli:audit", "The hash-chained audit log and its signed checkpoints."),
    ("aliyun", "maskline.compat.aliyun.cli:aliyun", "The Alibaba Cloud Dyplsapi face."),
)

from maskline.preflight import check as _check  # noqa: E402

main.add_command(_check)


if __name__ == "__main__":  # pragma: no cover
    main()
