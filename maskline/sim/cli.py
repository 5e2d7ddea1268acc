"""``maskline sim call`` and ``maskline sim sms``: Twilio's side of a call, offline."""

from __future__ import annotations

import json
from typing import Any

import click

from maskline.sim.carrier import CarrierSimulator, FlaskTransport, HttpTransport, is_loopback_url

IN_PROCESS_URL = "http://localhost"


def _simulator(url: str | None, public_url: str | None, allow_remote: bool, auth_token: str | None) -> Any:
    from config import load_settings

    settings = load_settings()
    token = auth_token or getattr(settings, "twilio_auth_token", None)
    if not token:
        raise click.ClickException(
            "no Twilio auth token: set MASKLINE_TWILIO_AUTH_TOKEN or pass --auth-token"
        )
    if url is None:
        from maskline import create_app

        app = create_app(settings)
        transport: Any = FlaskTransport(app)
        base = public_url or getattr(settings, "public_url", None) or IN_PROCESS_URL
    else:
        if not allow_remote and not is_loopback_url(url):
            raise click.ClickException(f"{url} is not a loopback address; pass --allow-remote to use it")
        transport = HttpTransport(url)
        # Twilio signs the public URL it called, which need not be --url.
        base = public_url or getattr(settings, "public_url", None) or url
    return CarrierSimulator(transport=transport, auth_token=token, public_url=base)


def _e164(raw: str, *, option: str, allow_withheld: bool = False) -> str:
    """A number as Twilio would send it: E.164, read in the deployment's region.

    ``allow_withheld`` keeps a caller id that is no number at all
    (``anonymous``, ``restricted``): carriers send those, and so may the simulator.
    """
    from config import load_settings
    from maskline.vault.interfaces import InvalidPhoneNumber
    from maskline.vault.normalize import parse_relay

    if allow_withheld and raw.strip().isalpha():
        return raw.strip()
    try:
        return parse_relay(raw, field=option, region=load_settings().default_region)
    except InvalidPhoneNumber as exc:
        raise click.BadParameter(exc.reason, param_hint=option) from None


def _common(func: Any) -> Any:
    for option in reversed(
        [
            click.option("--url", default=None, help="a running maskline (default: an in-process app)"),
            click.option("--public-url", default=None, help="the URL Twilio calls, which it signs"),
            click.option("--allow-remote", is_flag=True, help="allow a --url that is not loopback"),
            click.option("--auth-token", default=None, help="default: MASKLINE_TWILIO_AUTH_TOKEN"),
            click.option("--show-numbers", is_flag=True, help="print dialed numbers unmasked"),
        ]
    ):
        func = option(func)
    return func


@click.group()
def sim() -> None:
    """The carrier simulator: play Twilio against maskline."""


@sim.command("call")
@click.option("--from", "from_number", required=True)
@click.option("--to", "to_number", required=True, help="the relay number")
@click.option("--digits", multiple=True, help="keys pressed at each prompt, in order")
@_common
def sim_call(
    from_number: str,
    to_number: str,
    digits: tuple[str, ...],
    url: str | None,
    public_url: str | None,
    allow_remote: bool,
    auth_token: str | None,
    show_numbers: bool,
) -> None:
    """Place a call; prints what Twilio would do, as JSON."""
    from_number = _e164(from_number, option="--from", allow_withheld=True)
    to_number = _e164(to_number, option="--to")
    simulator = _simulator(url, public_url, allow_remote, auth_token)
    result = simulator.call(from_number=from_number, to_number=to_number, digits=list(digits))
    click.echo(json.dumps(result.to_json(show_numbers=show_numbers), indent=2))


@sim.command("sms")
@click.option("--from", "from_number", required=True)
@click.option("--to", "to_number", required=True, help="the relay number")
@click.option("--body", required=True)
@_common
def sim_sms(
    from_number: str,
    to_number: str,
    body: str,
    url: str | None,
    public_url: str | None,
    allow_remote: bool,
    auth_token: str | None,
    show_numbers: bool,
) -> None:
    """Send a text; prints the forwarded message or the refusal, as JSON."""
    from_number = _e164(from_number, option="--from", allow_withheld=True)
    to_number = _e164(to_number, option="--to")
    simulator = _simulator(url, public_url, allow_remote, auth_token)
    result = simulator.sms(from_number=from_number, to_number=to_number, body=body)
    click.echo(json.dumps(result.to_json(show_numbers=show_numbers), indent=2))
