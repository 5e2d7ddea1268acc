"""HTTP errors no view handled (an unknown path, a method a path does not
take, a body too large), answered in the shape of the API the path belongs to.

Blueprint error handlers only see requests routed to their blueprint; a
404 or 405 from routing reaches the app. This entry-level module maps path
prefixes to each face's renderer, so that ``/v1`` answers in its JSON error
shape, the Twilio Proxy face in Twilio's error JSON, and ``/`` (the Alibaba
face's RPC endpoint) in Alibaba's shape. Other paths keep Flask's pages.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, Response, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

Renderer = Callable[[HTTPException], Response]


def _belongs(path: str, prefix: str) -> bool:
    if prefix == "/":
        return path == "/"
    return path == prefix or path.startswith(prefix + "/")


def init_app(app: Flask, renderers: dict[str, Renderer]) -> None:
    """Answer unhandled HTTP errors on ``prefix`` paths with ``renderers[prefix]``."""
    # Longest prefix first: /twilio-proxy/v1 before a shorter one that would match too.
    ordered = sorted(renderers.items(), key=lambda item: len(item[0]), reverse=True)

    @app.errorhandler(HTTPException)
    def _by_prefix(exc: HTTPException) -> ResponseReturnValue:
        for prefix, render in ordered:
            if _belongs(request.path, prefix):
                return render(exc)
        return exc

    _ = _by_prefix


def register_faces(app: Flask) -> None:
    """The renderers of the faces :func:`maskline.create_app` registers."""
    from maskline.api.views import render_http_error as api_error
    from maskline.compat.aliyun.views import render_http_error as aliyun_error
    from maskline.compat.twilio.interfaces import BASE_PATH
    from maskline.compat.twilio.views import render_http_error as twilio_error

    init_app(app, {"/v1": api_error, BASE_PATH: twilio_error, "/": aliyun_error})
