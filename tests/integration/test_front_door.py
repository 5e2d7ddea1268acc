"""The front page, and HTTP errors in the shape of the API a path belongs to."""

from __future__ import annotations

import base64
import json

import pytest
from flask import Flask

from maskline.api.interfaces import ERROR_CODES
from tests.compat_twilio_helpers import credentials
from tests.integration.api_helpers import ApiClient


def test_the_front_page_says_what_this_is_and_links_onwards(app: Flask) -> None:
    response = app.test_client().get("/")

    page = response.get_data(as_text=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    for link in ('href="/admin/"', 'href="/openapi.json"', 'href="/healthz"', "docs/"):
        assert link in page
    assert "maskline admin create-user" in page


@pytest.mark.parametrize("query", ["Action=QuerySecretNo&Version=2017-05-25", "Action=Nope"])
def test_a_get_with_alibaba_rpc_parameters_goes_to_the_alibaba_face(app: Flask, query: str) -> None:
    response = app.test_client().get(f"/?{query}")

    body = response.get_json()
    assert response.status_code >= 400 and set(body) >= {"RequestId", "Code", "Message"}


def test_post_to_the_root_stays_with_the_alibaba_face(app: Flask) -> None:
    response = app.test_client().post("/", data={"Action": "QuerySecretNo", "Version": "2017-05-25"})

    assert set(response.get_json()) >= {"RequestId", "Code", "Message"}


def test_a_method_the_root_does_not_take_answers_in_alibabas_shape(app: Flask) -> None:
    response = app.test_client().put("/")

    body = response.get_json()
    assert response.status_code == 405 and body["Code"] == "UnsupportedHTTPMethod" and body["RequestId"]
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/v1/nothing-here", 404, "not_found"),
        ("GET", "/v1/bindings/+14155550132/nothing", 404, "not_found"),
        ("PUT", "/v1/bindings", 405, "method_not_allowed"),
        ("DELETE", "/v1/bindings", 405, "method_not_allowed"),
    ],
)
def test_v1_answers_unknown_paths_and_methods_in_its_json_shape(
    api: ApiClient, method: str, path: str, status: int, code: str
) -> None:
    reply = api.call(method, path)

    assert reply.status == status and reply.body["error"]["code"] == code
    assert reply.headers["Content-Type"] == "application/json"
    assert "4155550132" not in reply.text  # a path is never echoed: it can carry a number


def test_v1_answers_a_body_that_is_not_json_with_415(api: ApiClient) -> None:
    reply = api.post("/v1/bindings", raw=b"order_id=o-1", headers={"Content-Type": "text/plain"})

    assert (reply.status, reply.body["error"]["code"]) == (415, "unsupported_media_type")


def test_v1_answers_a_too_large_body_with_413(api: ApiClient) -> None:
    reply = api.post("/v1/bindings", raw=b'{"x": "' + b"y" * 70_000 + b'"}')

    assert (reply.status, reply.body["error"]["code"]) == (413, "too_large")


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/twilio-proxy/v1/Nothing", 404, 20404),
        ("GET", "/twilio-proxy/v1/Services/KS00000000000000000000000000000000/Nope/+14155550132", 404, 20404),
        ("PUT", "/twilio-proxy/v1/Services", 405, 20004),
    ],
)
def test_the_twilio_face_answers_in_twilios_error_json(
    app: Flask, method: str, path: str, status: int, code: int
) -> None:
    creds = credentials(app, "shop")
    token = base64.b64encode(f"{creds.account_sid}:{creds.auth_token}".encode()).decode()
    response = app.test_client().open(path, method=method, headers={"Authorization": f"Basic {token}"})

    body = json.loads(response.get_data(as_text=True))
    assert response.status_code == status and body["status"] == status and body["code"] == code
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    assert "4155550132" not in response.get_data(as_text=True)


def test_other_paths_keep_flasks_own_pages(app: Flask) -> None:
    response = app.test_client().get("/no-such-page")

    assert response.status_code == 404 and response.mimetype == "text/html"


def test_error_codes_are_distinct_and_each_has_one_status() -> None:
    assert {"pool_exhausted", "idempotency_key_reused", "not_found", "method_not_allowed"} <= set(ERROR_CODES)
    assert all(400 <= status < 600 for status, _ in ERROR_CODES.values())


def test_the_faces_answer_a_too_large_body_in_their_own_shape(app: Flask) -> None:
    creds = credentials(app, "shop")
    token = base64.b64encode(f"{creds.account_sid}:{creds.auth_token}".encode()).decode()
    big = {"FriendlyName": "x" * (1024 * 1024 + 10)}
    client = app.test_client()

    twilio = client.post("/twilio-proxy/v1/Services", data=big, headers={"Authorization": f"Basic {token}"})
    alibaba = client.post("/", data=big)

    assert twilio.status_code == 413 and twilio.get_json()["status"] == 413 and twilio.get_json()["code"]
    assert alibaba.status_code == 413 and set(alibaba.get_json()) >= {"RequestId", "Code", "Message"}
