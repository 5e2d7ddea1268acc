"""``maskline owner`` and the worker's delivery, as an operator runs them."""

from __future__ import annotations

import json
import re

import pytest

from maskline.events.interfaces import verify
from tests.e2e.conftest import Cli
from tests.receiver import receiving

URL = "https://events.example.com/hook?token=t0k3n"
BUYER, MERCHANT = "+14155550132", "+12125550143"


def _json(cli: Cli, *args: str) -> dict[str, object]:
    body: dict[str, object] = json.loads(cli.out(*args))
    return body


def test_set_events_prints_the_secret_once_and_never_the_query(initialised: Cli) -> None:
    made = initialised.run("owner", "set-events", "shop-a", "--url", URL)
    body = json.loads(made.stdout)
    secret = str(body["events_secret"])
    assert re.fullmatch(r"whsec_[A-Za-z0-9_-]{43}", secret) and "not shown again" in made.stderr
    assert body["events_url"] == "https://events.example.com/hook?…"
    shown = initialised.out("owner", "show", "shop-a")
    assert json.loads(shown)["events_secret"] == "set"
    assert secret not in shown and "t0k3n" not in shown
    assert _json(initialised, "owner", "set-events", "shop-a", "--url", URL)["events_secret"] == "set"
    rotated = _json(initialised, "owner", "set-events", "shop-a", "--url", URL, "--rotate-secret")
    assert str(rotated["events_secret"]).startswith("whsec_") and rotated["events_secret"] != secret


def test_plain_http_to_another_host_is_refused_and_nothing_is_stored(initialised: Cli) -> None:
    refused = initialised.run(
        "owner", "set-events", "shop-a", "--url", "http://events.example.com/", ok=False
    )
    assert "must be https" in refused.stderr and "Traceback" not in refused.stderr
    assert "no owner shop-a" in initialised.run("owner", "show", "shop-a", ok=False).stderr


@pytest.mark.parametrize("url", ["https://169.254.169.254/latest/meta-data/", "https://10.0.0.1/hook"])
def test_an_internal_address_is_refused_with_exit_1(initialised: Cli, url: str) -> None:
    refused = initialised.run("owner", "set-events", "shop-a", "--url", url, ok=False)

    assert refused.returncode == 1 and "the events URL points at a" in refused.stderr
    assert "no owner shop-a" in initialised.run("owner", "show", "shop-a", ok=False).stderr


def test_clear_events_removes_the_url_and_the_secret(initialised: Cli) -> None:
    initialised.run("owner", "set-events", "shop-a", "--url", URL)
    cleared = _json(initialised, "owner", "clear-events", "shop-a")
    assert (cleared["events_url"], cleared["events_secret"]) == (None, None)
    assert "no owner shop-b" in initialised.run("owner", "clear-events", "shop-b", ok=False).stderr


def test_the_worker_delivers_a_signed_event_with_no_number(initialised: Cli) -> None:
    with receiving() as receiver:
        made = _json(initialised, "owner", "set-events", "shop-a", "--url", receiver.url("/events"))
        initialised.run("pool", "add", "+14155550100")
        binding = _json(
            initialised,
            *("bind", "--order", "o-1", "--mode", "axb", "--owner", "shop-a"),
            *("--party", f"buyer={BUYER}", "--party", f"merchant={MERCHANT}"),
        )
        assert "events delivered 1" in initialised.out("worker", "--once")
    [request] = receiver.received
    headers = request.headers
    assert verify(
        str(made["events_secret"]), headers["Maskline-Timestamp"], request.body, headers["Maskline-Signature"]
    )
    event = json.loads(request.body)
    assert (event["type"], event["data"]["binding_id"]) == ("binding.created", binding["id"])
    assert "4155550132" not in request.body.decode() and "2125550143" not in request.body.decode()
    shown = _json(initialised, "owner", "show", "shop-a")
    assert shown["outbox"] == {"pending": 0, "delivered": 1, "failed": 0}
