"""Development conveniences for a first hour: the webhook token that ``maskline
init`` makes, and what ``maskline serve`` prints once at start.

Neither exists in production: production takes its token from
MASKLINE_TWILIO_AUTH_TOKEN (and refuses to start without it), and its
operators have docs/deploy.md.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from config import Settings, development_token_path


def ensure_development_token(settings: Settings) -> Path | None:
    """Create the development webhook token file (mode 0600) if development has
    no token yet; its path if one was created, else None."""
    if settings.env != "development" or settings.twilio_auth_token:
        return None
    path = development_token_path(settings.instance_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: two `init`s at once must not leave the server and sim with different tokens.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(secrets.token_hex(32) + "\n")
    return path


def serve_banner(settings: Settings, *, host: str, port: int) -> str:
    """What a developer needs after `make run`: where the console is, how to
    make its first account, the demo, and a simulated call against this server."""
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 (displayed, not bound)
    base = f"http://{shown_host}:{port}"
    token = (
        "MASKLINE_TWILIO_AUTH_TOKEN"
        if settings.twilio_auth_token and not development_token_path(settings.instance_path).exists()
        else f"{development_token_path(settings.instance_path)} (made by `maskline init`)"
    )
    if not settings.twilio_auth_token:
        token = "none: run `maskline init` to make one, or set MASKLINE_TWILIO_AUTH_TOKEN"  # noqa: S105
    return "\n".join(
        [
            f"maskline (development) at {base}/",
            f"  console          {base}/admin/",
            "  first admin      maskline admin create-user --name alice --role security",
            "  a guided tour    maskline demo",
            f"  API reference    {base}/openapi.json",
            "  an API key       maskline apikey create --name k --owner shop --scope bindings:write",
            # Placeholders, not example numbers: this goes to the server's log,
            # which must hold no phone number (README's tour has copyable ones).
            "  simulate a call  maskline pool add RELAY",
            "                   maskline bind --order o-1 --mode axb "
            "--party buyer=BUYER --party merchant=MERCHANT",
            f"                   maskline sim call --url {base} --from MERCHANT --to RELAY",
            f"  webhook token    {token}",
        ]
    )
