"""``maskline apikey``: create (the key is printed once), list, revoke.

Creating and revoking are audited as ``cli:<login>``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import click

from maskline.api.interfaces import SCOPES
from maskline.api.keys import ApiKeyService, KeyRequestInvalid


@contextlib.contextmanager
def _keys() -> Iterator[ApiKeyService]:
    from maskline.cli import _services

    with _services() as services:
        yield ApiKeyService(db=services.db, clock=services.clock, audit=services.audit)


def _actor() -> str:
    from maskline.cli import _default_actor

    return _default_actor()


@click.group("apikey")
def apikey() -> None:
    """API keys of owners: create, list, revoke. Only a hash of a key is stored."""


@apikey.command("create")
@click.option("--name", required=True, help="what the key is for, e.g. 'order system'")
@click.option("--owner", required=True, help="the platform, merchant or carrier account it belongs to")
@click.option("--scope", "scopes", multiple=True, required=True, type=click.Choice(SCOPES))
@click.option(
    "--style",
    type=click.Choice(["maskline", "twilio", "aliyun"]),
    default="maskline",
    show_default=True,
    help="maskline's own key, or credentials for the Twilio Proxy (account sid + auth token) "
    "or Alibaba Dyplsapi (AccessKey id + secret) face, mapped onto a key of the owner",
)
def create(name: str, owner: str, scopes: tuple[str, ...], style: str) -> None:
    """Create a key and print it once, with its description as JSON."""
    if style != "maskline":
        _create_compat(style, name=name, owner=owner, scopes=list(scopes))
        return
    with _keys() as keys:
        try:
            key, info = keys.create(name=name, owner=owner, scopes=list(scopes), actor=_actor())
        except KeyRequestInvalid as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"key": key, **info.to_json()}, indent=2))
    click.echo("Store the key now: maskline keeps only its hash and cannot show it again.", err=True)


def _create_compat(style: str, *, name: str, owner: str, scopes: list[str]) -> None:
    from maskline.cli import _services

    if style == "twilio":
        from maskline.compat.twilio import credentials
    else:
        from maskline.compat.aliyun import credentials  # type: ignore[no-redef]
    with _services() as services:
        try:
            issued = credentials.create_credentials(
                services, name=name, owner=owner, scopes=scopes, actor=_actor()
            )
        except (KeyRequestInvalid, credentials.NotAvailable) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(issued, indent=2))
    click.echo("Store the secret now: maskline cannot show it again.", err=True)


@apikey.command("list")
@click.option("--owner", default=None)
def list_keys(owner: str | None) -> None:
    """Keys as JSON lines (never the key itself)."""
    with _keys() as keys:
        for info in keys.list(owner=owner):
            click.echo(json.dumps(info.to_json()))


@apikey.command("revoke")
@click.argument("key_id")
@click.option("--reason", default="", help="why (recorded in the audit log)")
def revoke(key_id: str, reason: str) -> None:
    """Revoke a key by its id (the part after ``ml_``); takes effect within seconds."""
    with _keys() as keys:
        info = keys.revoke(key_id, actor=_actor(), reason=reason.strip())
    if info is None:
        raise click.ClickException(f"no API key {key_id}")
    click.echo(json.dumps(info.to_json(), indent=2))
