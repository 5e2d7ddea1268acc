"""Drop-in faces of other vendors' number-protection APIs over maskline's own
bindings, router, vault, owners and audit:

* :mod:`maskline.compat.twilio`: Twilio Proxy v1, under ``/twilio-proxy/v1``;
* :mod:`maskline.compat.aliyun`: Alibaba Cloud's Dyplsapi (2017-05-25), RPC style.

Each face translates its vendor's requests into maskline's services and its
answers back into the vendor's wire format; neither returns a party number.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Neither Flask nor the twilio SDK at import time: the CLI imports the faces'
# models and commands, and `maskline --help` must stay quick.
if TYPE_CHECKING:
    from flask import Flask

    from maskline.compat.twilio.client import twilio_client

__all__ = ["init_app", "twilio_client"]


def __getattr__(name: str) -> Any:
    if name == "twilio_client":
        from maskline.compat.twilio.client import twilio_client

        return twilio_client
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def init_app(app: Flask, services: Any) -> None:
    """Register both faces on ``app``."""
    from maskline.compat import aliyun, twilio

    twilio.init_app(app, services)
    aliyun.init_app(app, services)
