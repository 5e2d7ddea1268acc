"""CLI for bindings and routing: bind, unbind, route, routes rebuild, bindings, pool.

Output is JSON where a program may read it. No command prints a party number.
Every command that changes bindings or the pool is audited as ``cli:<login>``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import click

from config import SettingsError, parse_duration, parse_sms_redact
from maskline.numbers.interfaces import BindRequest, NumbersError, WouldShorten
from maskline.numbers.pool import PoolImportError, parse_capabilities
from maskline.numbers.rebuild import rebuild_routes
from maskline.vault.interfaces import InvalidPhoneNumber


def _services() -> Any:
    from maskline.cli import _services as build

    return build()


def _duration(value: str, option: str) -> dt.timedelta:
    try:
        return parse_duration(option, value)
    except SettingsError as exc:
        raise click.BadParameter(str(exc)) from None


def _parse_parties(items: tuple[str, ...]) -> dict[str, str]:
    parties: dict[str, str] = {}
    for item in items:
        role, sep, number = item.partition("=")
        if not sep or not role or not number:
            raise click.BadParameter("use ROLE=NUMBER, e.g. buyer=+8613800138000", param_hint="--party")
        if role in parties:
            raise click.BadParameter(f"role {role} given twice", param_hint="--party")
        parties[role] = number
    return parties


def _sms_redact(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    try:
        return parse_sms_redact("--sms-redact", value)
    except SettingsError as exc:
        raise click.BadParameter(str(exc)) from None


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


def _actor() -> str:
    from maskline.cli import _default_actor

    return _default_actor()


def _audit(
    services: Any, session: Any, action: str, subject: str, data: dict[str, Any], reason: str = ""
) -> None:
    """A record of this command's change, in the change's own transaction."""
    from maskline.audit.interfaces import AuditEntry

    services.audit.append(
        session, AuditEntry(actor=_actor(), action=action, subject=subject, reason=reason, data=data)
    )


@click.command()
@click.option("--order", "order_id", required=True, help="the order this binding belongs to")
@click.option("--mode", type=click.Choice(["axb", "axe"]), required=True)
@click.option("--party", "parties", multiple=True, required=True, metavar="ROLE=NUMBER")
@click.option("--allow", "allow", multiple=True, metavar="NUMBER|any", help="allowed callers (axe)")
@click.option("--ttl", default=None, help="lifetime, e.g. 72h (default MASKLINE_DEFAULT_TTL)")
@click.option("--fallback", type=click.Choice(["axe"]), default=None, help="fall back to axe if no axb fits")
@click.option("--owner", default="default", show_default=True)
@click.option("--region", default=None, help="region for numbers written without +country code")
@click.option("--record", is_flag=True, help="record calls (both sides hear an announcement first)")
@click.option(
    "--sms-redact",
    default=None,
    metavar="phones,links|none",
    help="this binding's SMS redaction (default MASKLINE_SMS_REDACT)",
)
@click.option(
    "--sms-media",
    type=click.Choice(["forward", "refuse"]),
    default=None,
    help="this binding's SMS media policy (default MASKLINE_SMS_MEDIA)",
)
@click.option(
    "--language",
    type=click.Choice(["en-US", "zh-CN"]),
    default=None,
    help="the language its callers and texters hear (default MASKLINE_VOICE_LANGUAGE)",
)
def bind(
    order_id: str,
    mode: str,
    parties: tuple[str, ...],
    allow: tuple[str, ...],
    ttl: str | None,
    fallback: str | None,
    owner: str,
    region: str | None,
    record: bool,
    sms_redact: str | None,
    sms_media: str | None,
    language: str | None,
) -> None:
    """Bind an order's parties to a relay number; prints the binding as JSON."""
    allow_value: list[str] | str | None = None
    if allow:
        allow_value = "any" if allow == ("any",) else list(allow)
        if "any" in allow and allow != ("any",):
            raise click.BadParameter("--allow any cannot be mixed with numbers", param_hint="--allow")
    request = BindRequest(
        order_id=order_id,
        mode=mode,  # type: ignore[arg-type]
        parties=_parse_parties(parties),
        owner=owner,
        allow=allow_value,  # type: ignore[arg-type]
        ttl=_duration(ttl, "--ttl") if ttl else None,
        fallback=fallback,  # type: ignore[arg-type]
        region=region,
        record=record,
        sms_redact=_sms_redact(sms_redact),
        sms_media=sms_media,  # type: ignore[arg-type]
        language=language,
        actor=_actor(),
    )
    with _services() as services:
        try:
            view = services.numbers.bindings.bind(request)
        except (NumbersError, InvalidPhoneNumber) as exc:
            raise _fail(exc) from None
    body = view.to_json()
    body["dial"] = {role: view.dial_for(role) for role in view.roles}
    if view.mode == "axe":
        body["dial"]["caller"] = view.dial_for("caller")
    click.echo(json.dumps(body, indent=2))


@click.command()
@click.argument("binding_id")
@click.option("--reason", default="", help="why (recorded in the audit log)")
def unbind(binding_id: str, reason: str) -> None:
    """End a binding now (its relay number then cools down for its parties)."""
    with _services() as services:
        try:
            view = services.numbers.bindings.unbind(binding_id, actor=_actor(), reason=reason.strip())
        except NumbersError as exc:
            raise _fail(exc) from None
    click.echo(json.dumps(view.to_json(), indent=2))


@click.command()
@click.option("--to", "relay", required=True, help="the relay number called")
@click.option("--from", "caller", required=True, help="the caller's number")
@click.option("--digits", default=None, help="extension keyed by the caller")
def route(relay: str, caller: str, digits: str | None) -> None:
    """Print the routing decision as JSON (never a party's number).

    Both numbers may be written in E.164 or, without a country code, in
    MASKLINE_DEFAULT_REGION's national form (e.g. 01065520100 in CN).
    """
    from maskline.vault.normalize import parse_relay

    with _services() as services:
        region = services.settings.default_region
        try:
            relay_e164 = parse_relay(relay, field="--to", region=region)
            # Any valid number may call; whether it reaches anyone is the router's decision.
            caller_e164 = parse_relay(caller, field="--from", region=region)
        except InvalidPhoneNumber as exc:
            raise _fail(exc) from None
        decision = services.numbers.router.resolve(relay_e164, caller_e164, digits)
    click.echo(json.dumps(decision.to_json(), indent=2))


@click.group("routes")
def routes_group() -> None:
    """The Redis routing store."""


@routes_group.command("rebuild")
def routes_rebuild() -> None:
    """Restore every live binding's routes (and cool-downs) from SQL; idempotent."""
    with _services() as services:
        numbers = services.numbers
        report = rebuild_routes(
            db=services.db,
            vault=services.vault,
            routes=numbers.routes,
            cooldown=services.settings.cooldown,
            now=services.clock(),
        )
    click.echo(report.summary())


@click.group("bindings")
def bindings_group() -> None:
    """Bindings: list, show, recordings, extend, sweep."""


@bindings_group.command("list")
@click.option("--order", "order_id", default=None)
@click.option("--owner", default=None)
def bindings_list(order_id: str | None, owner: str | None) -> None:
    """Bindings as JSON lines."""
    with _services() as services:
        for view in services.numbers.bindings.find(owner=owner, order_id=order_id):
            click.echo(json.dumps(view.to_json()))


@bindings_group.command("show")
@click.argument("binding_id")
def bindings_show(binding_id: str) -> None:
    with _services() as services:
        try:
            view = services.numbers.bindings.get(binding_id)
        except NumbersError as exc:
            raise _fail(exc) from None
    click.echo(json.dumps(view.to_json(), indent=2))


@bindings_group.command("recordings")
@click.argument("binding_id")
def bindings_recordings(binding_id: str) -> None:
    """A binding's call recordings as JSON lines: Twilio's sid and URL, never a number."""
    from maskline.webhooks.recordings import recordings_of

    with _services() as services:
        try:
            services.numbers.bindings.get(binding_id)
        except NumbersError as exc:
            raise _fail(exc) from None
        with services.db.session() as session:
            for recording in recordings_of(session, binding_id):
                click.echo(json.dumps(recording.to_json()))


@bindings_group.command("extend")
@click.argument("binding_id")
@click.option("--ttl", required=True, help="new lifetime from now, e.g. 24h")
@click.option("--reason", default="", help="why (recorded in the audit log)")
@click.option(
    "--allow-shorten", is_flag=True, help="accept a new expiry earlier than the current one (never silent)"
)
def bindings_extend(binding_id: str, ttl: str, reason: str, allow_shorten: bool) -> None:
    """Give a live binding a new lifetime from now; refused if that is earlier
    than its current expiry, unless --allow-shorten."""
    with _services() as services:
        try:
            change = services.numbers.bindings.change(
                binding_id,
                ttl=_duration(ttl, "--ttl"),
                allow_shorten=allow_shorten,
                actor=_actor(),
                reason=reason.strip(),
            )
        except WouldShorten as exc:
            raise click.ClickException(
                f"nothing changed: {ttl} from now ({_iso(exc.requested)}) is earlier than the current "
                f"expiry ({_iso(exc.current)}); add --allow-shorten to shorten it"
            ) from None
        except NumbersError as exc:
            raise _fail(exc) from None
    body = change.view.to_json()
    body["previous_expires_at"] = _iso(change.previous_expires_at)
    click.echo(json.dumps(body, indent=2))


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@bindings_group.command("sweep")
@click.option(
    "--grace", default=5.0, show_default=True, help="seconds before a Redis-only claim is an orphan"
)
def bindings_sweep(grace: float) -> None:
    """Expire, purge cooled tombstones, reconcile Redis with SQL, collect the vault."""
    with _services() as services:
        report = services.numbers.sweeper.run_once(services.clock(), orphan_grace=grace)
    click.echo(report.summary())
    if report.errors:
        raise click.ClickException("; ".join(report.errors))


@click.group("pool")
def pool_group() -> None:
    """The relay-number pool."""


@pool_group.command("add")
@click.argument("numbers", nargs=-1, required=True)
@click.option("--capabilities", default="voice,sms", show_default=True, help="voice, sms or voice,sms")
def pool_add(numbers: tuple[str, ...], capabilities: str) -> None:
    """Add relay numbers (all or none)."""
    with _services() as services:
        try:
            voice, sms = parse_capabilities(capabilities, field="--capabilities")
            with services.db.session() as session:
                added = services.numbers.pool.add(session, list(numbers), voice=voice, sms=sms)
                data = {"numbers": [r.e164 for r in added], "voice": voice, "sms": sms}
                _audit(services, session, "pool.added", "pool", data)
        except NumbersError as exc:
            raise _fail(exc) from None
    click.echo(f"added {len(added)} number(s): {', '.join(r.e164 for r in added)}")


@pool_group.command("import")
@click.argument("csv_file", type=click.File("r", encoding="utf-8"))
def pool_import(csv_file: Any) -> None:
    """Add numbers from a CSV (number[,capabilities][,status]); bad rows are listed, none applied."""
    try:
        text = csv_file.read()
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{csv_file.name} is not UTF-8 text (byte {exc.start})") from None
    with _services() as services:
        try:
            with services.db.session() as session:
                added = services.numbers.pool.import_csv(session, text)
                # The file by digest (it may hold thousands of numbers); the
                # pool itself says which numbers are in it.
                data = {"count": len(added), "sha256": hashlib.sha256(text.encode()).hexdigest()}
                _audit(services, session, "pool.imported", "pool", data)
        except PoolImportError as exc:
            for line, message in exc.problems:
                click.echo(f"line {line}: {message}", err=True)
            raise click.ClickException(f"{len(exc.problems)} bad row(s); nothing was imported") from None
        except NumbersError as exc:
            raise _fail(exc) from None
    click.echo(f"imported {len(added)} number(s)")


@pool_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def pool_list(as_json: bool) -> None:
    """Numbers, region, capabilities, status and live bindings."""
    with _services() as services, services.db.session() as session:
        entries = services.numbers.pool.entries(session, now=services.clock())
    if as_json:
        click.echo(json.dumps([e.to_json() for e in entries], indent=2))
        return
    click.echo(f"{'number':<16} {'country':<7} {'area':<16} {'caps':<9} {'status':<8} {'live':>5}")
    for e in entries:
        caps = ",".join(c for c in ("voice", "sms") if getattr(e, c))
        click.echo(
            f"{e.e164:<16} {e.country:<7} {e.area[:16]:<16} {caps:<9} {e.status:<8} {e.live_bindings:>5}"
        )


def _set_status(number: str, status: str, reason: str) -> None:
    with _services() as services:
        try:
            with services.db.session() as session:
                row = services.numbers.pool.set_status(session, number, status, now=services.clock())
                e164 = row.e164
                action = {"locked": "pool.locked", "active": "pool.unlocked"}.get(status, "pool.retired")
                _audit(services, session, action, e164, {"status": status}, reason=reason.strip())
        except NumbersError as exc:
            raise _fail(exc) from None
    click.echo(f"{e164} is {status}")


_reason_option = click.option("--reason", default="", help="why (recorded in the audit log)")


@pool_group.command("lock")
@click.argument("number")
@_reason_option
def pool_lock(number: str, reason: str) -> None:
    """No new bindings on NUMBER; existing ones keep working."""
    _set_status(number, "locked", reason)


@pool_group.command("unlock")
@click.argument("number")
@_reason_option
def pool_unlock(number: str, reason: str) -> None:
    """NUMBER takes new bindings again."""
    _set_status(number, "active", reason)


@pool_group.command("unlock-extensions")
@click.argument("number")
@click.option("--reason", required=True, help="why (recorded in the audit log)")
def pool_unlock_extensions(number: str, reason: str) -> None:
    """Lift NUMBER's extension lockdown before it runs out (audited).

    A lockdown follows many wrong extensions on one number from any callers:
    until it ends, only allow-listed callers and callers an open extension
    already knows get through.
    """
    from maskline.numbers.interfaces import RoutingUnavailable
    from maskline.numbers.pool import parse_relay_number

    if not reason.strip():
        raise click.BadParameter("say why the lockdown is lifted", param_hint="--reason")
    with _services() as services:
        try:
            e164 = parse_relay_number(number, field="NUMBER", region=services.settings.default_region)
            left = services.numbers.routes.extension_lockdown_left(e164)
            lifted = services.numbers.routes.lift_extension_lockdown(e164)
        except (NumbersError, RoutingUnavailable) as exc:
            raise _fail(exc) from None
        with services.db.session() as session:
            data = {"was_locked_down": lifted, "seconds_left": left}
            _audit(services, session, "pool.extensions_unlocked", e164, data, reason=reason.strip())
    click.echo(f"{e164}: extension lockdown lifted" if lifted else f"{e164} had no extension lockdown")


@pool_group.command("retire")
@click.argument("number")
@_reason_option
def pool_retire(number: str, reason: str) -> None:
    """Take NUMBER out of the pool; refused while it has live bindings."""
    _set_status(number, "retired", reason)


@pool_group.command("sync-twilio")
@click.option("--dry-run", is_flag=True, help="report what would change; change nothing")
def pool_sync_twilio(dry_run: bool) -> None:
    """Point each pool number's voice, SMS and status-callback URLs at MASKLINE_PUBLIC_URL.

    Retired numbers are left alone. Exits 1 with one line if Twilio refuses.
    """
    from maskline.twilio_rest import NumberUrls, TwilioError, TwilioNotConfigured, make_client, sync_numbers

    with _services() as services:
        settings = services.settings
        if not settings.public_url:
            raise click.ClickException("MASKLINE_PUBLIC_URL is not set: the webhook URLs are built from it")
        try:
            client = make_client(settings)
        except TwilioNotConfigured as exc:
            raise _fail(exc) from None
        with services.db.session() as session:
            entries = services.numbers.pool.entries(session, now=services.clock())
        try:
            report = sync_numbers(
                client,
                [e.e164 for e in entries if e.status != "retired"],
                NumberUrls.for_public_url(settings.public_url),
                dry_run=dry_run,
                region=settings.default_region,
            )
        except TwilioError as exc:
            raise click.ClickException(f"Twilio: {exc.summary()}") from None
        if report.updated and not dry_run:
            # Twilio's side has changed already: the record follows it.
            with services.db.session() as session:
                data = {"updated": list(report.updated), "public_url": settings.public_url}
                _audit(services, session, "pool.twilio_synced", "pool", data)
    verb = "would update" if dry_run else "updated"
    for number in report.updated:
        click.echo(f"{number} {verb}")
    for number in report.correct:
        click.echo(f"{number} already correct")
    for number in report.missing:
        click.echo(f"{number} is not in the Twilio account", err=True)
    click.echo(
        f"{len(report.updated)} {verb}, {len(report.correct)} already correct, "
        f"{len(report.missing)} missing from the account"
    )


COMMANDS = [bind, unbind, route, routes_group, bindings_group, pool_group]
