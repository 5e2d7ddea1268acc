"""Driving the admin console through Flask's test client, as a browser would."""

from __future__ import annotations

import re
from typing import Any

import pyotp
from flask import Flask
from werkzeug.test import TestResponse

from maskline import services_of

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_SECRET = re.compile(r'id="totp-secret">([A-Z2-7]+)<')


def make_admin(app: Flask, name: str, role: str, *, password: str = PASSWORD) -> None:
    services_of(app).admin.accounts.create_user(name=name, role=role, password=password, actor="test")


class Console:
    """One browser: its own cookies, over https (the cookie is Secure)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client = app.test_client()
        self.totp_secret: str | None = None

    def get(self, path: str, **kw: Any) -> TestResponse:
        return self.client.get(path, base_url="https://localhost", **kw)

    def csrf(self) -> str:
        """A CSRF token of this browser's session (any page's form would do)."""
        match = _CSRF.search(self.get("/admin/login").get_data(as_text=True))
        assert match, "no CSRF token on the login page"
        return match.group(1)

    def post(
        self, path: str, data: dict[str, str] | None = None, *, token: bool = True, **kw: Any
    ) -> TestResponse:
        form = dict(data or {})
        if token:
            form["csrf_token"] = self.csrf()
        # A browser sends the referrer to the same site (Referrer-Policy:
        # same-origin), and Flask-WTF wants it on https.
        headers = {"Referer": "https://localhost/admin/", **kw.pop("headers", {})}
        return self.client.post(path, data=form, base_url="https://localhost", headers=headers, **kw)

    def login(self, name: str, password: str = PASSWORD) -> TestResponse:
        return self.post("/admin/login", {"name": name, "password": password})

    def totp_code(self, at: Any) -> str:
        assert self.totp_secret is not None
        return pyotp.TOTP(self.totp_secret).at(at)

    def enroll(self, at: Any) -> TestResponse:
        """Read the key off the enrollment page and confirm it with a code for ``at``."""
        page = self.get("/admin/totp").get_data(as_text=True)
        match = _SECRET.search(page)
        assert match, "no TOTP key on the enrollment page"
        self.totp_secret = match.group(1)
        return self.second_factor(self.totp_code(at))

    def second_factor(self, code: str) -> TestResponse:
        return self.post("/admin/totp", {"code": code})

    def text(self, path: str) -> str:
        response = self.get(path)
        assert response.status_code == 200, (path, response.status_code)
        return response.get_data(as_text=True)
