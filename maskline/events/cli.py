"""``maskline owner``: create and list owners, where an owner's events go
(set-events, show, clear-events), and its cap on live bindings (set-limits).

The events secret is printed once, when it is made; afterwards ``show`` says
only whether one is set. URLs are shown without their query string. Changes
are audited as ``cli:<login>``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import click

from maskline.events.interfaces import EventsError
from maskline.events.services import OwnerService


@contextlib.contextmanager
def _owners() -> Iterator[OwnerService]:
    from maskline.cli import _services

    with _services() as services:
        try:
            yield services.events.owners
        except EventsError as exc:
            raise click.ClickException(str(exc)) from None


def _actor() -> str:
    from maskline.cli import _default_actor

    return _default_actor()


@click.group("owner")
def owner() -> None:
    """Owners: create, list, their limits, and the URL maskline POSTs signed events to."""


@owner.command("create")
@click.argument("name")
def create(name: str) -> None:
    """Create the owner NAME (API keys and bindings belong to an owner)."""
    with _owners() as owners:
        info = owners.create(name, actor=_actor())
    click.echo(json.dumps(info.to_json(), indent=2))


@owner.command("list")
def list_owners() -> None:
    """Every owner as JSON lines: events URL (without query), secret set or not, outbox."""
    with _owners() as owners:
        for info in owners.list_owners():
            click.echo(json.dumps(info.to_json()))


@owner.command("set-events")
@click.argument("name")
@click.option("--url", required=True, help="https URL that receives the events (http: loopback, development)")
@click.option("--rotate-secret", is_flag=True, help="make a new signing secret (the old one stops working)")
def set_events(name: str, url: str, rotate_secret: bool) -> None:
    """Send NAME's events to URL; prints the signing secret once, when it is made."""
    with _owners() as owners:
        info, secret = owners.set_events(name, url=url, rotate_secret=rotate_secret, actor=_actor())
    body = info.to_json()
    if secret is not None:
        body["events_secret"] = secret
    click.echo(json.dumps(body, indent=2))
    if secret is not None:
        click.echo("Store the secret now: it signs every event and is not shown again.", err=True)


@owner.command("show")
@click.argument("name")
def show(name: str) -> None:
    """NAME's events URL (without query), whether a secret is set, and its outbox."""
    with _owners() as owners:
        info = owners.show(name)
    click.echo(json.dumps(info.to_json(), indent=2))


@owner.command("clear-events")
@click.argument("name")
def clear_events(name: str) -> None:
    """Stop sending NAME events: URL and secret are removed, pending events fail."""
    with _owners() as owners:
        info = owners.clear_events(name, actor=_actor())
    click.echo(json.dumps(info.to_json(), indent=2))


@owner.command("set-limits")
@click.argument("name")
@click.option(
    "--max-live-bindings",
    type=click.IntRange(min=0),
    help="live bindings (and numbers held for it) NAME may have at once; 0: no cap",
)
@click.option(
    "--default",
    "use_default",
    is_flag=True,
    help="follow MASKLINE_OWNER_MAX_LIVE_BINDINGS again (NAME's own cap goes)",
)
def set_limits(name: str, max_live_bindings: int | None, use_default: bool) -> None:
    """Cap NAME's live bindings; at the cap a bind gets 409 owner_limit_reached."""
    if (max_live_bindings is None) == (not use_default):
        raise click.UsageError("give --max-live-bindings N or --default (one of them)")
    with _owners() as owners:
        info = owners.set_limits(name, max_live_bindings=max_live_bindings, actor=_actor())
    click.echo(json.dumps(info.to_json(), indent=2))
