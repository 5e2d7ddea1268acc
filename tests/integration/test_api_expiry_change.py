"""PATCH /v1/bindings/{id} moves an expiry honestly (issue 20): exactly one
way of saying the new expiry, no silent shortening, and the old expiry told."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask

from maskline import services_of
from maskline.clock import FixedClock
from tests.integration.api_helpers import ApiClient
from tests.integration.conftest import BUYER, MERCHANT

AXB = {"order_id": "o-exp", "mode": "axb", "parties": {"buyer": BUYER, "merchant": MERCHANT}}
DAY = 86400


def stamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def create(api: ApiClient, ttl: int = 3 * DAY) -> dict[str, Any]:
    reply = api.post("/v1/bindings", {**AXB, "ttl_seconds": ttl})
    assert reply.status == 201, reply.text
    return dict(reply.body)


def test_extend_by_adds_to_the_current_expiry(api: ApiClient, clock: FixedClock) -> None:
    binding = create(api)
    reply = api.patch(f"/v1/bindings/{binding['id']}", {"extend_by_seconds": DAY})
    assert reply.status == 200
    assert reply.body["previous_expires_at"] == stamp(clock() + dt.timedelta(days=3))
    assert reply.body["expires_at"] == stamp(clock() + dt.timedelta(days=4))


def test_a_later_expiry_needs_no_flag_and_reports_the_previous(api: ApiClient, clock: FixedClock) -> None:
    binding = create(api, ttl=3600)
    reply = api.patch(f"/v1/bindings/{binding['id']}", {"ttl_seconds": DAY})
    assert reply.status == 200
    assert reply.body["previous_expires_at"] == stamp(clock() + dt.timedelta(hours=1))
    assert reply.body["expires_at"] == stamp(clock() + dt.timedelta(days=1))


@pytest.mark.parametrize(
    "body",
    [
        {"ttl_seconds": 3600},
        {"expires_at": "2000-01-01T00:00:00Z"},  # overwritten below with a time one hour ahead
    ],
)
def test_shortening_without_allow_shorten_is_409_and_changes_nothing(
    api: ApiClient, app: Flask, clock: FixedClock, body: dict[str, Any]
) -> None:
    binding = create(api)
    if "expires_at" in body:
        body = {"expires_at": stamp(clock() + dt.timedelta(hours=1))}
    reply = api.patch(f"/v1/bindings/{binding['id']}", body)
    assert (reply.status, reply.body["error"]["code"]) == (409, "would_shorten")
    assert reply.body["error"]["expires_at"] == stamp(clock() + dt.timedelta(days=3))
    assert reply.body["error"]["requested_expires_at"] == stamp(clock() + dt.timedelta(hours=1))
    after = api.get(f"/v1/bindings/{binding['id']}").body
    assert after["expires_at"] == binding["expires_at"]
    # The routing store still answers for the whole three days.
    clock.advance(hours=2)
    assert services_of(app).numbers.router.resolve(binding["relay_number"], MERCHANT).action == "connect"


def test_allow_shorten_shortens(api: ApiClient, clock: FixedClock) -> None:
    binding = create(api)
    reply = api.patch(f"/v1/bindings/{binding['id']}", {"ttl_seconds": 3600, "allow_shorten": True})
    assert reply.status == 200
    assert reply.body["expires_at"] == stamp(clock() + dt.timedelta(hours=1))
    assert reply.body["previous_expires_at"] == stamp(clock() + dt.timedelta(days=3))


@pytest.mark.parametrize(
    "body",
    [
        {"ttl_seconds": DAY, "extend_by_seconds": DAY},
        {"ttl_seconds": DAY, "expires_at": "2030-01-01T00:00:00Z"},
        {"extend_by_seconds": DAY, "expires_at": "2030-01-01T00:00:00Z"},
        {"ttl_seconds": DAY, "extend_by_seconds": DAY, "expires_at": "2030-01-01T00:00:00Z"},
    ],
)
def test_several_expiry_fields_are_400_naming_them(api: ApiClient, body: dict[str, Any]) -> None:
    binding = create(api)
    reply = api.patch(f"/v1/bindings/{binding['id']}", body)
    assert (reply.status, reply.body["error"]["code"]) == (400, "bad_request")
    assert {f["field"] for f in reply.body["error"]["fields"]} == set(body)
    assert api.get(f"/v1/bindings/{binding['id']}").body["expires_at"] == binding["expires_at"]


@pytest.mark.parametrize("body", [{}, {"allow_shorten": True}, {"region": "US"}])
def test_no_change_at_all_is_400_naming_the_expiry_fields(api: ApiClient, body: dict[str, Any]) -> None:
    binding = create(api)
    reply = api.patch(f"/v1/bindings/{binding['id']}", body)
    assert reply.status == 400
    assert {f["field"] for f in reply.body["error"]["fields"]} == {
        "ttl_seconds",
        "extend_by_seconds",
        "expires_at",
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"extend_by_seconds": 0}, "extend_by_seconds"),
        ({"extend_by_seconds": "1d"}, "extend_by_seconds"),
        ({"extend_by_seconds": True}, "extend_by_seconds"),
        ({"extend_by_seconds": 200 * DAY}, "extend_by_seconds"),
        ({"ttl_seconds": DAY, "allow_shorten": "yes"}, "allow_shorten"),
    ],
)
def test_bad_expiry_values_are_422_naming_the_field(api: ApiClient, body: dict[str, Any], field: str) -> None:
    binding = create(api)
    reply = api.patch(f"/v1/bindings/{binding['id']}", body)
    assert reply.status == 422 and field in {f["field"] for f in reply.body["error"]["fields"]}


def test_extending_past_the_maximum_is_refused_by_name(api: ApiClient, app: Flask) -> None:
    longest = int(services_of(app).settings.max_ttl.total_seconds())
    binding = create(api, ttl=longest)
    reply = api.patch(f"/v1/bindings/{binding['id']}", {"extend_by_seconds": DAY})
    assert reply.status == 422 and reply.body["error"]["fields"][0]["field"] == "extend_by_seconds"
