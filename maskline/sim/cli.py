"""``maskline sim call`` and ``maskline sim sms``: Twilio's side of a call, offline.

stdout carries the result as JSON and nothing else; logs go to stderr, at
WARNING or above unless MASKLINE_LOG_LEVEL asks for less.

The auth token is --auth-token, else MASKLINE_TWILIO_AUTH_TOKEN, else (in
development) the instance folder's token that ``maskline init`` made, the
one ``maskline serve`` uses: so ``sim call --url`` needs no token flag.
"""

from __future__ import annotations

import json
from typing import Any

import click

from maskline.sim.carrier import CarrierSimulator, FlaskTransport, HttpTransport, is_loopback_url
from maskline.sim.lifecycle import CALL_ENDINGS

IN_PROCESS_URL = "http://localhost"


def _simulator(url: str | None, public_url: str | None, allow_remote: bool, auth_token: str | None) -> Any:
    from config import SettingsError, load_settings, with_overrides

    try:
        settings = load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    token = auth_token or getattr(settings, "twilio_auth_token", None)
    if not token:
        raise click.ClickException(
            "no Twilio auth token: run `maskline init` (development makes one in the instance folder), "
            "set MASKLINE_TWILIO_AUTH_TOKEN, or pass --auth-token"
        )
    if url is None:
        from maskline import create_app

        # The in-process app's INFO lines (migrations, route rebuilds) are not
        # what a sim user asked for; DEBUG stays available on request.
        if settings.log_level == "INFO":
            settings = with_overrides(settings, log_level="WARNING")
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
@click.option(
    "--status",
    "ending",
    type=click.Choice(CALL_ENDINGS),
    default="completed",
    show_default=True,
    help="how the called party answers: completed (talks for --duration), busy, no-answer, failed",
)
@click.option("--duration", default=30, show_default=True, type=click.IntRange(0, 4 * 3600), help="seconds")
@_common
def sim_call(
    from_number: str,
    to_number: str,
    digits: tuple[str, ...],
    ending: str,
    duration: int,
    url: str | None,
    public_url: str | None,
    allow_remote: bool,
    auth_token: str | None,
    show_numbers: bool,
) -> None:
    """Play a whole call: the webhooks, then the status callbacks (ringing,
    in-progress, completed with a duration) and, for a recorded binding, the
    recording callback; prints the outcome as JSON."""
    from_number = _e164(from_number, option="--from", allow_withheld=True)
    to_number = _e164(to_number, option="--to")
    simulator = _simulator(url, public_url, allow_remote, auth_token)
    result = simulator.play_call(
        from_number=from_number, to_number=to_number, digits=list(digits), ending=ending, duration=duration
    )
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
    """Send a text and its forwarded message's status callbacks (sent,
    delivered); prints the forwarded message or the refusal, as JSON."""
    from_number = _e164(from_number, option="--from", allow_withheld=True)
    to_number = _e164(to_number, option="--to")
    simulator = _simulator(url, public_url, allow_remote, auth_token)
    result = simulator.play_sms(from_number=from_number, to_number=to_number, body=body)
    click.echo(json.dumps(result.to_json(show_numbers=show_numbers), indent=2))
