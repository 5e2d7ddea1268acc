"""Running the WSGI app under gunicorn from ``maskline serve``."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from maskline.redaction import redact_phone_numbers

log = logging.getLogger(__name__)

# Method, path (phone numbers masked), status, bytes, duration. Never the
# query string: besides numbers, it can carry what no scrubber recognises
# (the Alibaba face's signed requests put their AccessKeyId and Signature there).
ACCESS_LOG_FORMAT = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss'

# Atoms gunicorn computes itself (peer address, time, status, sizes,
# durations, pid): no client text in them. Scrubbing them would mask a
# duration like 0.001234 or an address like 10.20.30.40 as "numbers".
_SERVER_ATOMS = frozenset("hltsbBTDMLp")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What could be (part of) a number, or hide one: any decimal digit (full-width
# ones too) or a percent escape. A text without any is logged as it is: the
# webhook paths, hit thousands of times a second, never pay for the matcher.
_MAYBE_NUMBER = re.compile(r"[\d%]")


class _ScrubbedAtoms(dict[str, Any]):
    """The access log's atoms, as gunicorn's ``SafeAtoms`` gives them (any
    atom by name, ``-`` if absent), with every atom a client controls
    scrubbed of phone numbers as it is read: only the atoms the format
    names are read, so only those cost a scrub."""

    region = "US"

    def __getitem__(self, key: str) -> Any:
        if key.startswith("{"):
            key = key.lower()
        value = self.get(key, "-")
        if key in _SERVER_ATOMS or not isinstance(value, str):
            return value
        # WSGI strings are bytes read as latin-1: read them as UTF-8, so that
        # full-width digits are digits. PATH_INFO is percent-decoded already;
        # a raw URI, query or header is decoded here, so that "%2B1%20415..."
        # is seen as the number it is.
        text = value.encode("latin-1", "replace").decode("utf-8", "replace")
        if key != "U":
            text = unquote_plus(text)
        if _MAYBE_NUMBER.search(text):
            text = redact_phone_numbers(text, region=self.region)
        # One request, one line, quotes kept balanced.
        text = text.replace("\\", "\\\\").replace('"', '\\"')
        return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class _RedactErrorLog(logging.Filter):
    """maskline's filter for gunicorn's error log, which formats its own
    numbers (pids, ports) as arguments: those pass as they are, and the
    message and every other argument are scrubbed one by one, so that
    "Listening at: http://127.0.0.1:8000 (4242)" keeps its port and pid,
    while a bad request line quoted in a message does not keep a number."""

    def __init__(self, region: str) -> None:
        super().__init__()
        self.region = region

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(self._clean(a) for a in args)
        elif isinstance(args, dict):
            record.args = {k: self._clean(v) for k, v in args.items()}
        record.msg = redact_phone_numbers(str(record.msg), region=self.region)
        if record.exc_info and record.exc_info[1] is not None:
            # As maskline's filter does: the traceback rendered here, scrubbed.
            record.exc_text = redact_phone_numbers(
                logging.Formatter().formatException(record.exc_info), region=self.region
            )
            record.exc_info = None
        return True

    def _clean(self, value: object) -> object:
        if isinstance(value, (int, float)):
            return value
        return redact_phone_numbers(str(value), region=self.region)


class ScrubbedLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger, through the same scrubber as every other log line.

    gunicorn's own loggers do not propagate to the root logger, so
    maskline's handlers (and their filter) never see them: the access log
    scrubs its atoms, and the error log (which can quote a bad request
    line) gets the filter itself.
    """

    region = "US"

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        self.atoms_wrapper_class = type("ScrubbedAtoms", (_ScrubbedAtoms,), {"region": self.region})
        if not any(isinstance(f, _RedactErrorLog) for f in self.error_log.filters):
            self.error_log.addFilter(_RedactErrorLog(self.region))


def scrubbed_logger(region: str) -> type[ScrubbedLogger]:
    """:class:`ScrubbedLogger` for numbers written the way ``region`` writes them."""
    return type("ScrubbedLogger", (ScrubbedLogger,), {"region": region})


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)
        # gunicorn >= 25.1 opens a control socket at one fixed path per user
        # ($HOME/.gunicorn/gunicorn.ctl): two maskline servers on one machine
        # would fight over it, and maskline has no use for it.
        if "control_socket_disable" in self.cfg.settings:
            self.cfg.set("control_socket_disable", True)

    def load(self) -> Any:
        from maskline import create_app

        return create_app()


def _child_exit(_server: Any, worker: Any) -> None:
    from maskline.metrics import worker_exited

    worker_exited(worker.pid)


def _rebuild_before_serving(services: Any) -> None:
    """Rebuild routes from SQL (the source of truth) before the first call:
    an embedded (or restarted) Redis starts empty.

    A Redis that cannot be reached does not stop start-up: a restart during
    a Redis outage then serves degraded (webhooks answer the apology, /v1
    answers 503, /readyz says not ready) instead of not at all. When Redis
    is back, the first call or bind that finds a number's generation marker
    missing has the routes rebuilt (:class:`~maskline.numbers.rebuild.AutoRebuilder`).
    """
    from maskline.numbers.interfaces import RoutingUnavailable
    from maskline.numbers.rebuild import rebuild_routes
    from maskline.redis_backend import REDIS_ERRORS

    unreachable: tuple[type[Exception], ...] = (RoutingUnavailable, *REDIS_ERRORS)
    try:
        rebuild_routes(
            db=services.db,
            vault=services.vault,
            routes=services.numbers.routes,
            cooldown=services.settings.cooldown,
            now=services.clock(),
        )
    except unreachable as exc:
        log.warning(
            "Redis is unreachable (%s): serving without the start-up route rebuild; "
            "routes are rebuilt from SQL once Redis answers again",
            type(exc).__name__,
        )


def run_gunicorn(*, host: str, port: int, workers: int, metrics_dir: Path) -> None:
    """Serve ``wsgi:app``; the app is built in the master first, so a bad
    configuration stops start-up once, with one line, before any worker forks.

    Metrics are counted in files under ``metrics_dir`` (emptied at start),
    so that ``/metrics`` sums every worker.
    """
    from maskline.metrics import use_multiprocess_dir

    use_multiprocess_dir(metrics_dir)  # before anything imports prometheus_client

    from maskline import create_app, services_of

    app = create_app()  # fail fast with the one-line StartupError
    services = services_of(app)
    region = services.settings.default_region
    _rebuild_before_serving(services)
    services.close()
    # phonenumbers' geocoding data (about 100 MiB, half a second to load) is
    # needed for any number without a geographic area code, such as most
    # mobiles outside North America. Loaded once here, before the fork, the
    # workers share its pages instead of each loading a copy, mid-request,
    # on its first such bind; gc.freeze() keeps the collector from touching
    # (and so copying) those pages in every worker.
    import gc

    import phonenumbers.geocoder  # noqa: F401

    gc.freeze()
    _Gunicorn(
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "accesslog": "-",
            "access_log_format": ACCESS_LOG_FORMAT,
            "logger_class": scrubbed_logger(region),
            "child_exit": _child_exit,
        }
    ).run()
