"""Werkzeug's HTTP errors as the API's own errors, so that every /v1 answer,
even for a path or method no view serves, has the JSON error shape.

Messages never echo the path: it can carry whatever a client put there,
phone numbers included.
"""

from __future__ import annotations

from werkzeug import exceptions as wz

from maskline.api.interfaces import (
    ApiError,
    BadRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)


def http_error_as_api_error(exc: wz.HTTPException) -> ApiError:
    """``exc`` as the :class:`ApiError` with its status and a stable code."""
    if isinstance(exc, wz.NotFound):
        return NotFound("no such resource; the paths are listed in /openapi.json")
    if isinstance(exc, wz.MethodNotAllowed):
        allowed = ", ".join(sorted(exc.valid_methods or ()))
        return MethodNotAllowed(f"this path takes {allowed or 'other methods'}")
    if isinstance(exc, wz.RequestEntityTooLarge):
        return PayloadTooLarge("the body is larger than allowed")
    if isinstance(exc, wz.UnsupportedMediaType):
        return UnsupportedMediaType("send JSON with Content-Type: application/json")
    if isinstance(exc, wz.BadRequest) and exc.code == 400:
        return BadRequest("the request could not be read")
    error = ApiError(exc.name or "error")
    error.status = exc.code or 500
    error.code = (exc.name or "error").lower().replace(" ", "_")
    return error


def allow_header(exc: wz.HTTPException) -> str | None:
    """The ``Allow`` header a 405 carries, or None."""
    if isinstance(exc, wz.MethodNotAllowed) and exc.valid_methods:
        return ", ".join(sorted(exc.valid_methods))
    return None
