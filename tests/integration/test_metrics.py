"""``/metrics``: counters by reason, no numbers, and an optional bearer token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.integration.conftest import PARTY_NUMBERS, STRANGER, AppMaker, Twilio, without_party_digits


def test_metrics_count_rejections_by_reason_and_carry_no_number(
    make_app: AppMaker, bind: Callable[..., Any]
) -> None:
    app = make_app()
    view = bind()
    Twilio(app).call(STRANGER, view.relay_number)
    response = app.test_client().get("/metrics")
    text = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'maskline_webhook_rejections_total{reason="stranger"}' in text
    assert without_party_digits(text) and not any(n in text for n in PARTY_NUMBERS)


def test_a_metrics_token_is_required_when_set(make_app: AppMaker) -> None:
    client = make_app(metrics_token="scrape-me").test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    answer = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert answer.status_code == 200 and b"maskline_webhook_connects" in answer.data


def test_metrics_time_requests_by_endpoint_and_count_live_bindings(
    make_app: AppMaker, bind: Callable[..., Any]
) -> None:
    app = make_app()
    bind()
    bind("axe", order_id="o-2")
    client = app.test_client()
    client.get("/healthz")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'maskline_http_requests_total{endpoint="health.healthz",method="GET",status="200"}' in text
    assert 'maskline_http_request_seconds_bucket{endpoint="health.healthz"' in text
    assert 'maskline_live_bindings{mode="axb"} 1.0' in text
    assert 'maskline_live_bindings{mode="axe"} 1.0' in text
    assert 'maskline_pool_numbers{status="active"} 2.0' in text
    assert "maskline_pool_utilisation 0.005" in text  # 2 live bindings over 2 numbers x 200
