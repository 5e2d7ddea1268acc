"""Running the WSGI app under gunicorn from ``maskline serve``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

# The access log bypasses maskline's redacting log filter, so it records the
# path only, never a query string (which could carry a number).
ACCESS_LOG_FORMAT = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss'


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


def run_gunicorn(*, host: str, port: int, workers: int, metrics_dir: Path) -> None:
    """Serve ``wsgi:app``; the app is built in the master first, so a bad
    configuration stops start-up once, with one line, before any worker forks.

    Metrics are counted in files under ``metrics_dir`` (emptied at start),
    so that ``/metrics`` sums every worker.
    """
    from maskline.metrics import use_multiprocess_dir

    use_multiprocess_dir(metrics_dir)  # before anything imports prometheus_client

    from maskline import create_app, services_of
    from maskline.numbers.rebuild import rebuild_routes

    app = create_app()  # fail fast with the one-line StartupError
    # SQL is the source of truth: an embedded (or restarted) Redis starts
    # empty, so routes are rebuilt before the first call can arrive.
    services = services_of(app)
    rebuild_routes(
        db=services.db,
        vault=services.vault,
        routes=services.numbers.routes,
        cooldown=services.settings.cooldown,
        now=services.clock(),
    )
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
            "child_exit": _child_exit,
        }
    ).run()
