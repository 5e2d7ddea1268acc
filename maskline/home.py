"""``GET /``: a small page saying what this server is and where to go next.

``POST /`` belongs to the Alibaba face (Dyplsapi RPC), and so does a ``GET /``
that carries its RPC parameters (``Action``, or the ``x-acs-action`` header):
those are handed to the face's view by endpoint name, so that this module
imports no face.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request
from flask.typing import ResponseReturnValue

bp = Blueprint("home", __name__)

# The Alibaba face's view (maskline.compat.aliyun.views.rpc), by endpoint name.
ALIYUN_ENDPOINT = "aliyun.rpc"

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>maskline</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; max-width: 42rem; margin: 3rem auto; padding: 0 1rem;
  line-height: 1.5; color: #1d2430; }}
code {{ background: #f1f3f6; padding: 0 .25rem; border-radius: 3px; }}
li {{ margin: .3rem 0; }}
</style>
</head>
<body>
<h1>maskline</h1>
<p>A self-hosted privacy-preserving contact proxy: buyers, merchants and couriers reach each
other through relay numbers, and real phone numbers stay sealed in an encrypted vault.
This server answers Twilio's webhooks, the <code>/v1</code> API for order systems, the
Twilio Proxy and Alibaba Dyplsapi faces, and the admin console.</p>
<ul>
<li><a href="/admin/">Admin console</a>{admin_hint}</li>
<li><a href="/openapi.json">/openapi.json</a>: the <code>/v1</code> API description (OpenAPI 3.1)</li>
<li><a href="/healthz">/healthz</a> (alive) and
<a href="/readyz">/readyz</a> (database and Redis reachable)</li>
<li>Documentation: <code>README.md</code> and <code>docs/</code> in the source tree
(<code>docs/api.md</code>, <code>docs/cli.md</code>, <code>docs/console.md</code>,
<code>docs/configuration.md</code>, <code>docs/deploy.md</code>); <code>maskline --help</code></li>
</ul>
</body>
</html>
"""

# The console has no sign-up: the first account is made on the server's command line.
_ADMIN_HINT = (
    " &mdash; the first account is made on the command line: "
    "<code>maskline admin create-user --name NAME --role security</code>"
)


def _is_aliyun_rpc() -> bool:
    return "Action" in request.args or "x-acs-action" in request.headers


@bp.get("/")
def home() -> ResponseReturnValue:
    """The front page, or the Alibaba face for an RPC call."""
    if _is_aliyun_rpc() and ALIYUN_ENDPOINT in current_app.view_functions:
        answer: ResponseReturnValue = current_app.ensure_sync(current_app.view_functions[ALIYUN_ENDPOINT])()
        return answer
    return Response(_PAGE.format(admin_hint=_ADMIN_HINT), mimetype="text/html")
