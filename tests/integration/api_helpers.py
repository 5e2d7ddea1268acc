"""Helpers for the /v1 API tests: keys of two owners and a JSON client."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import Flask

from maskline.api.views import EXTENSION_KEY

ALL_SCOPES = ["bindings:write", "bindings:read", "calls:write", "waybills:read", "pool:read"]


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str]
    text: str


class ApiClient:
    """Sends JSON to /v1 with one API key."""

    def __init__(self, app: Flask, key: str | None) -> None:
        self.app = app
        self.client = app.test_client()
        self.key = key

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if self.key is not None:
            sent.setdefault("Authorization", f"Bearer {self.key}")
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            sent.setdefault("Content-Type", "application/json")
        response = self.client.open(path, method=method, data=data, headers=sent)
        text = response.get_data(as_text=True)
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        return Reply(response.status_code, parsed, dict(response.headers), text)

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.call("POST", path, body, **kw)

    def get(self, path: str, **kw: Any) -> Reply:
        return self.call("GET", path, **kw)

    def patch(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.call("PATCH", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Reply:
        return self.call("DELETE", path, **kw)


def make_key(app: Flask, owner: str, scopes: list[str] | None = None) -> str:
    key, _ = app.extensions[EXTENSION_KEY].keys.create(name="test", owner=owner, scopes=scopes or ALL_SCOPES)
    return str(key)
