"""Helpers for the Twilio Proxy face's tests: the app served on a loopback
port for the SDK, credentials of an owner, and a fake Twilio that also takes
``Messages.json`` (what a MessageInteraction sends through)."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from twilio.rest import Client
from werkzeug.serving import make_server

from maskline import services_of
from maskline.compat import twilio_client
from maskline.compat.twilio.credentials import create_credentials
from tests.local_http import POLL_INTERVAL, serving
from tests.twilio_server import PREFIX, FakeTwilio, _handler, error_body

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


@contextlib.contextmanager
def app_serving(app: Flask) -> Iterator[str]:
    """Serve ``app`` (in this process, on a thread) on a free loopback port; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


@dataclass(frozen=True)
class Credentials:
    account_sid: str
    auth_token: str
    key_id: str

    def client(self, base_url: str) -> Client:
        return twilio_client(base_url, self.account_sid, self.auth_token)


def credentials(app: Flask, owner: str, scopes: list[str] | None = None) -> Credentials:
    issued = create_credentials(
        services_of(app),
        name="proxy",
        owner=owner,
        scopes=scopes or ["bindings:write", "bindings:read", "calls:write"],
        actor="cli:test",
    )
    return Credentials(issued["account_sid"], issued["auth_token"], issued["key_id"])


@dataclass
class FakeTwilioMessages(FakeTwilio):
    """:class:`FakeTwilio` plus ``POST Messages.json``."""

    messages: list[dict[str, Any]] = field(default_factory=list)

    def handle(self, method: str, path: str, query: dict[str, str], form: dict[str, str]) -> tuple[int, Any]:
        if path == f"{PREFIX}{self.account_sid}/Messages.json" and method == "POST":
            for name, code in (("To", 21211), ("From", 21212)):
                if not _E164.match(form.get(name, "")):
                    return 400, error_body(400, code, f"The '{name}' number is not a valid phone number.")
            sid = self._next_sid("SM")
            message = {
                "sid": sid,
                "account_sid": self.account_sid,
                "to": form["To"],
                "from": form["From"],
                "body": form.get("Body", ""),
                "status": "queued",
                "direction": "outbound-api",
                "uri": f"{PREFIX}{self.account_sid}/Messages/{sid}.json",
            }
            self.messages.append({**message, "form": form})
            return 201, message
        return super().handle(method, path, query, form)


@contextlib.contextmanager
def twilio_with_messages(auth_token: str) -> Iterator[FakeTwilioMessages]:
    fake = FakeTwilioMessages(auth_token=auth_token)
    with serving(_handler(fake)) as port:
        fake.port = port
        yield fake
