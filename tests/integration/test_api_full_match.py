"""Values with a trailing newline, which ``^…$`` patterns let through, are
refused by the API and the Twilio face, naming the field."""

from __future__ import annotations

from flask import Flask

from tests.compat_twilio_helpers import credentials
from tests.integration.api_helpers import ApiClient, make_key
from tests.integration.conftest import BUYER, MERCHANT


def test_a_role_or_tracking_number_with_a_trailing_newline_is_refused(app: Flask) -> None:
    api = ApiClient(app, make_key(app, "shop-a"))

    role = api.post(
        "/v1/bindings", {"order_id": "o-1", "mode": "axb", "parties": {"buyer": BUYER, "b2\n": MERCHANT}}
    )
    made = api.post(
        "/v1/bindings", {"order_id": "o-2", "mode": "axb", "parties": {"buyer": BUYER, "merchant": MERCHANT}}
    )
    tracking = api.call("PUT", f"/v1/bindings/{made.body['id']}/waybills/SF1%0A", {"carrier": "sf"})
    carrier = api.call("PUT", f"/v1/bindings/{made.body['id']}/waybills/SF1", {"carrier": "sf\n"})

    assert role.status == 422 and "parties" in role.text
    assert tracking.status in (400, 404, 422) and carrier.status == 422, (tracking.text, carrier.text)


def test_an_account_sid_with_a_trailing_newline_does_not_authenticate(app: Flask) -> None:
    issued = credentials(app, "shop-a")
    client = app.test_client()

    assert (
        client.get(
            "/twilio-proxy/v1/Services", auth=(issued.account_sid + "\n", issued.auth_token)
        ).status_code
        == 401
    )
