"""The baseline for bench/webhooks.py: a bare Flask app that answers Twilio's
voice webhook with constant TwiML, served by gunicorn with the options
``maskline serve`` uses (maskline/server.py), so that the two servers differ
only in what the request does.

It checks no signature, reads no field and touches no backend: the figure it
gives is what Flask and gunicorn cost on their own.

    python bench/bare_twiml_app.py [--host 127.0.0.1] [--port 8001] [--workers 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder would come first on sys.path, and
# bench/numbers.py would shadow the standard library's numbers module (which
# decimal, fractions and statistics import).
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
from typing import Any

from flask import Flask, Response

from maskline.server import _Gunicorn
from maskline.webhooks import twiml

VOICE_PATH = "/webhooks/twilio/voice"
# The same shape and size as maskline's connect answer (fictional numbers).
TWIML = twiml.connect(relay="+14155550100", number="+13125550100", time_limit=3600)
# maskline/server.py's access log format (a local there): both servers write
# the same access log line per request.
ACCESS_LOG_FORMAT = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss'


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post(VOICE_PATH)
    def voice() -> Response:
        return Response(TWIML, status=200, mimetype="text/xml")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response('{"status":"ok"}\n', status=200, mimetype="application/json")

    return app


class _BareGunicorn(_Gunicorn):
    """maskline's gunicorn application (same load_config), serving the bare app."""

    def load(self) -> Any:
        return create_app()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default=8001, type=int)
    parser.add_argument("--workers", default=2, type=int)
    args = parser.parse_args()
    # The options run_gunicorn() passes, less its metrics hook (child_exit,
    # which only runs when a worker exits).
    _BareGunicorn(
        {
            "bind": f"{args.host}:{args.port}",
            "workers": args.workers,
            "accesslog": "-",
            "access_log_format": ACCESS_LOG_FORMAT,
        }
    ).run()


if __name__ == "__main__":
    main()
