"""The helper for users: a stock ``twilio.rest.Client`` whose Proxy calls go to maskline.

    from maskline.compat import twilio_client
    client = twilio_client("https://maskline.example.com", account_sid, auth_token)
    client.proxy.v1.services.create(unique_name="orders")

Only requests to ``proxy.twilio.com`` are rewritten (to
``<base_url>/twilio-proxy/v1/...``); paging URLs that maskline returns are
already on ``base_url``; any other host is left alone.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from maskline.compat.twilio.interfaces import BASE_PATH, PROXY_HOST


class ProxyHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """twilio's own HTTP client, sending Proxy v1 requests to maskline."""

    def __init__(self, *, base_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base_url = base_url.rstrip("/")

    def rewrite(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.hostname != PROXY_HOST or not parts.path.startswith("/v1/"):
            return url
        tail = parts.path[len("/v1") :] + (f"?{parts.query}" if parts.query else "")
        return f"{self.base_url}{BASE_PATH}{tail}"

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        return super().request(method, self.rewrite(url), *args, **kwargs)


def twilio_client(base_url: str, sid: str, token: str, **http: Any) -> Client:
    """A ``twilio.rest.Client`` for the account sid and auth token maskline
    issued, its Proxy API served by the maskline at ``base_url``. ``http``:
    keyword arguments of TwilioHttpClient (timeout, ...)."""
    return Client(
        username=sid,
        password=token,
        account_sid=sid,
        http_client=ProxyHttpClient(base_url=base_url, **http),
        # Not the process environment: edge and region would change the host.
        environment={"TWILIO_EDGE": "", "TWILIO_REGION": ""},
    )
