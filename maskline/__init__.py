"""maskline: a self-hosted, privacy-preserving customer-contact proxy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from maskline.clock import Clock, system_clock

if TYPE_CHECKING:
    from flask import Flask

    from config import Settings
    from maskline.wiring import Services

# Nothing heavy at import time: every ``maskline.*`` import runs this file,
# and the CLI (``maskline --help``) must not pay for SQLAlchemy, alembic or
# Flask before a command needs them.

from maskline.version import __version__ as __version__

EXTENSION_KEY = "maskline"


def create_app(config: Settings | Mapping[str, Any] | None = None, *, clock: Clock = system_clock) -> Flask:
    """The WSGI application: defaults, then the environment, then ``config``.

    Refuses to start (:class:`maskline.wiring.StartupError`, one line) on a
    bad configuration, a missing or mismatched key ring, or an old schema.
    """
    # Imported here: CLI commands that never serve need no web framework.
    from flask import Flask

    from config import Settings, load_settings
    from maskline.logging_setup import configure_logging
    from maskline.wiring import build_services

    settings = config if isinstance(config, Settings) else load_settings(config)
    configure_logging(level=settings.log_level, log_file=settings.log_file, region=settings.default_region)
    services = build_services(settings, clock=clock)

    app = Flask(__name__, instance_path=str(settings.instance_path.resolve()))
    from maskline.safe_json import SafeJSONProvider

    # Malformed JSON (5,000 deep, NaN, 1e999, invalid UTF-8) is a 400 on every face, never a 500.
    app.json = SafeJSONProvider(app)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        TESTING=settings.env == "testing",
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    app.extensions[EXTENSION_KEY] = services

    from maskline.health import bp as health_bp

    app.register_blueprint(health_bp)

    from maskline.home import bp as home_bp

    app.register_blueprint(home_bp)

    from maskline.metrics import SETTINGS_KEY as METRICS_TOKEN_KEY
    from maskline.metrics import bp as metrics_bp

    app.config[METRICS_TOKEN_KEY] = settings.metrics_token
    app.register_blueprint(metrics_bp)

    from maskline import http_metrics

    http_metrics.init_app(app)

    from maskline.webhooks.views import init_app as init_webhooks

    init_webhooks(app, services, metrics=http_metrics.observe)

    from maskline.api.views import init_app as init_api

    init_api(app, services)

    from maskline.admin.views import init_app as init_admin

    init_admin(app, services, accounts=services.admin.accounts, reveals=services.admin.reveals)

    from maskline.compat import init_app as init_compat

    init_compat(app, services)

    from maskline.http_errors import register_faces

    register_faces(app)
    return app


def services_of(app: Flask) -> Services:
    """The services wired into ``app`` by :func:`create_app`."""
    services: Services = app.extensions[EXTENSION_KEY]
    return services
