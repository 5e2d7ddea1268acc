"""``maskline apikey create --style aliyun``: an AccessKey id and secret."""

from __future__ import annotations

from typing import Any

from maskline.compat.aliyun.services import AccessKeys

# One definition for both faces' credentials (issue 21: one "unavailable").
from maskline.compat.twilio.credentials import NotAvailable as NotAvailable


def create_credentials(
    services: Any, *, name: str, owner: str, scopes: list[str], actor: str
) -> dict[str, Any]:
    """Issue an AccessKey mapped onto a new scoped API key of ``owner``; the
    secret is sealed in the vault and in the returned JSON this once."""
    keys = AccessKeys(db=services.db, vault=services.vault, audit=services.audit, clock=services.clock)
    access_key_id, secret, info = keys.create(name=name, owner=owner, scopes=scopes, actor=actor)
    return {
        "access_key_id": access_key_id,
        "access_key_secret": secret,
        "api_key_id": info.id,
        "owner": info.owner,
        "scopes": info.scopes,
    }
