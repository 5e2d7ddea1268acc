"""The Twilio Proxy v1 face (issue 8): ``/twilio-proxy/v1`` over maskline's
bindings, vault and audit, for the official ``twilio`` SDK (see
docs/compat-twilio.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI imports this package's models without a web framework
    from flask import Flask


def init_app(app: Flask, services: Any) -> None:
    """Register the Twilio Proxy v1 routes on ``app``."""
    from maskline.compat.twilio.views import init_app as init_views

    init_views(app, services)
