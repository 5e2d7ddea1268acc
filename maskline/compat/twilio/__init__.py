"""The Twilio Proxy v1 face (issue 8): under construction."""

from __future__ import annotations

from typing import Any

from flask import Flask


def init_app(app: Flask, services: Any) -> None:
    """Register the Twilio Proxy v1 routes on ``app``."""
