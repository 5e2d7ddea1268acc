"""Fixtures for the webhook tests: an app with a Twilio auth token, and a
client that signs requests exactly as Twilio does, for the URL it calls."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from twilio.request_validator import RequestValidator

from config import Settings, with_overrides
from maskline import create_app, services_of
from maskline.clock import FixedClock
from maskline.numbers.interfaces import BindingView, BindRequest, RoutingUnavailable
from maskline.wiring import Services
from tests.conftest import add_relay_numbers
from tests.integration.api_helpers import ApiClient, make_key

AUTH_TOKEN = "test-twilio-auth-token"
X1, X2 = "+14155550100", "+14155550101"
BUYER, MERCHANT, COURIER = "+14155550132", "+12125550143", "+13125550154"
STRANGER = "+16175550165"
PARTY_NUMBERS = (BUYER, MERCHANT, COURIER, STRANGER)

_sids = iter(range(1, 1_000_000))


def sid(prefix: str = "CA") -> str:
    return f"{prefix}{next(_sids):032x}"


@dataclass
class Answer:
    """A webhook's HTTP answer, with its TwiML parsed."""

    status: int
    text: str

    @property
    def xml(self) -> ET.Element:
        return ET.fromstring(self.text)  # noqa: S314 (TwiML from the app under test)

    def find(self, path: str) -> ET.Element | None:
        return self.xml.find(path)

    @property
    def dialed(self) -> tuple[str, str] | None:
        """(callerId, number dialed), or None if nothing is dialed."""
        dial = self.find("Dial")
        if dial is None:
            return None
        number = dial.find("Number")
        assert number is not None
        return dial.get("callerId", ""), number.text or ""

    @property
    def said(self) -> str:
        return " ".join(e.text or "" for e in self.xml.iter("Say"))


class Twilio:
    """Plays Twilio: form POSTs signed for ``base`` + path."""

    def __init__(self, app: Flask, *, base: str = "http://localhost", token: str = AUTH_TOKEN) -> None:
        self.client = app.test_client()
        self.base = base
        self.validator = RequestValidator(token)
        # What Twilio knows of each call it placed: From and To, which it
        # sends again with every status callback of that call.
        self.calls: dict[str, tuple[str, str]] = {}

    def post(self, path: str, params: dict[str, str], *, signature: str | None = None, **kw: Any) -> Answer:
        if signature is None:
            signature = self.validator.compute_signature(self.base + path, params)
        headers = {"X-Twilio-Signature": signature} if signature else {}
        headers.update(kw.pop("headers", {}))
        response = self.client.post(path, data=params, headers=headers, **kw)
        return Answer(response.status_code, response.get_data(as_text=True))

    def call(self, caller: str, relay: str, call_sid: str | None = None) -> Answer:
        call_sid = call_sid or sid()
        self.calls[call_sid] = (caller, relay)
        return self.post("/webhooks/twilio/voice", {"CallSid": call_sid, "From": caller, "To": relay})

    def key(self, caller: str, relay: str, digits: str, *, call_sid: str, attempt: int = 1) -> Answer:
        return self.post(
            f"/webhooks/twilio/voice/extension?attempt={attempt}",
            {"CallSid": call_sid, "From": caller, "To": relay, "Digits": digits},
        )

    def sms(
        self, sender: str, relay: str, body: str, *, message_sid: str | None = None, **extra: str
    ) -> Answer:
        params = {"MessageSid": message_sid or sid("SM"), "From": sender, "To": relay, "Body": body, **extra}
        return self.post("/webhooks/twilio/sms", params)

    def call_status(self, call_sid: str, status: str, duration: int | None = None) -> Answer:
        params = {"CallSid": call_sid, "CallStatus": status}
        if call_sid in self.calls:
            params["From"], params["To"] = self.calls[call_sid]
        if duration is not None:
            params["CallDuration"] = str(duration)
        return self.post("/webhooks/twilio/voice/status", params)


def without_party_digits(text: str) -> bool:
    """No party number's national digits anywhere in ``text``."""
    digits = re.sub(r"\D", "", text)
    return not any(n[2:] in digits for n in PARTY_NUMBERS)


class AppMaker:
    """Builds apps over the test database and Redis; overrides are Settings fields.

    Without a Redis URL each app has its own in-process Redis, so bindings
    are made through the latest app (:meth:`bind`).
    """

    def __init__(self, settings: Settings, clock: FixedClock) -> None:
        self.settings = settings
        self.clock = clock
        self.built: list[Flask] = []

    def __call__(self, **overrides: Any) -> Flask:
        overrides.setdefault("twilio_auth_token", AUTH_TOKEN)
        app = create_app(with_overrides(self.settings, **overrides), clock=self.clock)
        if not self.built:
            add_relay_numbers(services_of(app), X1, X2)
        else:
            for number in (X1, X2):
                with suppress(RoutingUnavailable):  # an app whose Redis is down on purpose
                    services_of(app).numbers.routes.register_number(number)
        self.built.append(app)
        return app

    @property
    def latest(self) -> Flask:
        return self.built[-1] if self.built else self()


@pytest.fixture
def make_app(
    services: Services, redis_client: Any, settings: Settings, clock: FixedClock
) -> Iterator[AppMaker]:
    maker = AppMaker(settings, clock)
    yield maker
    for app in maker.built:
        services_of(app).close()


@pytest.fixture
def app(make_app: AppMaker) -> Flask:
    return make_app()


@pytest.fixture
def twilio(app: Flask) -> Twilio:
    return Twilio(app)


@pytest.fixture
def bind(make_app: AppMaker) -> Callable[..., BindingView]:
    """Bind an order through the latest app: axb (buyer, merchant) or axe (buyer, courier allowed)."""

    def bind(mode: str = "axb", **kw: Any) -> BindingView:
        parties = {"buyer": BUYER, "merchant": MERCHANT} if mode == "axb" else {"buyer": BUYER}
        if mode == "axe":
            kw.setdefault("allow", [COURIER])
        order_id = kw.pop("order_id", "o-1")
        request = BindRequest(order_id=order_id, mode=mode, parties=parties, **kw)  # type: ignore[arg-type]
        return services_of(make_app.latest).numbers.bindings.bind(request)

    return bind


@pytest.fixture
def api(app: Flask) -> ApiClient:
    """A client of /v1 with a key of owner shop-a holding every scope."""
    return ApiClient(app, make_key(app, "shop-a"))


@pytest.fixture
def other_api(app: Flask) -> ApiClient:
    """A client of /v1 with a key of another owner, shop-b."""
    return ApiClient(app, make_key(app, "shop-b"))
