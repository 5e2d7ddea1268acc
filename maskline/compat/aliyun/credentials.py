"""Credentials of this compatibility face, made by ``maskline apikey create --style``."""

from __future__ import annotations

from typing import Any


class NotAvailable(Exception):
    """This face cannot issue credentials yet."""


def create_credentials(
    services: Any, *, name: str, owner: str, scopes: list[str], actor: str
) -> dict[str, Any]:
    """Issue credentials mapped onto a scoped API key of ``owner``; the secret
    is in the returned JSON this once."""
    raise NotAvailable("this credential style is not available yet")
