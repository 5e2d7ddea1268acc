"""The admin console: server-rendered pages under /admin, no JavaScript needed.

Every request but the login page needs a live server-side session (and, for
security admins, its second factor); every POST needs its CSRF token; every
page and action checks the role (:func:`maskline.admin.interfaces.may`).
Every response is ``Cache-Control: no-store`` and may not be framed.

A revealed number exists only in the body of the one response that shows
it: never in the session, a flash message, a redirect or a log line.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import refresh
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError, CSRFProtect

from config import CONSOLE_LANGUAGES
from maskline.admin import i18n, overview, queries
from maskline.admin.accounts import AdminAccounts, SessionState
from maskline.admin.charts import Line, meter, traffic_chart
from maskline.admin.interfaces import (
    AdminError,
    AdminIdentity,
    InvalidAdminInput,
    LoginRefused,
    RevealNotFound,
    SecondFactorRefused,
    may,
)
from maskline.audit.interfaces import AlertNotFound, AuditEntry
from maskline.numbers.interfaces import NumbersError
from maskline.numbers.load import POOL_LOW_SHARE
from maskline.numbers.services import is_binding_id
from maskline.redis_backend import storage_uri

bp = Blueprint("admin", __name__, url_prefix="/admin", template_folder="templates", static_folder="static")
csrf = CSRFProtect()
EXTENSION_KEY = "maskline.admin"
_PUBLIC_ENDPOINTS = frozenset({"admin.login", "admin.static"})
_SECOND_FACTOR_ENDPOINTS = frozenset({"admin.totp", "admin.logout", "admin.static"})
# Zones offered in the preferences form (MASKLINE_DISPLAY_TIMEZONE is offered too).
COMMON_ZONES = (
    "UTC",
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Singapore",
    "Europe/London",
    "America/New_York",
)
MAX_REASON = 500
F = TypeVar("F", bound=Callable[..., ResponseReturnValue])


@dataclass
class AdminContext:
    services: Any
    accounts: AdminAccounts
    reveals: Any


def _ctx() -> AdminContext:
    context: AdminContext = current_app.extensions[EXTENSION_KEY]
    return context


def _me() -> AdminIdentity:
    state: SessionState = g.admin_state
    return state.identity


def requires(permission: str) -> Callable[[F], F]:
    """Refuse (403) a signed-in admin whose role lacks ``permission``."""

    def decorate(view: F) -> F:
        @wraps(view)
        def checked(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            if not may(_me().role, permission):
                abort(403)
            return view(*args, **kwargs)

        return cast(F, checked)

    return decorate


def _reason(field: str = "reason") -> str:
    reason = (request.form.get(field) or "").strip()
    if len(reason) < 5:
        raise InvalidAdminInput(field, "say why, in at least a few words")
    if len(reason) > MAX_REASON:
        raise InvalidAdminInput(field, f"must be at most {MAX_REASON} characters")
    return reason


def _local_next(target: str | None) -> str:
    """Where to go after login: a console path only (no open redirect)."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and parts.path.startswith("/admin/") and "\\" not in target:
            return target
    return url_for("admin.index")


# -- request pipeline -----------------------------------------------------------


@bp.before_request
def _authenticate() -> ResponseReturnValue | None:
    if request.method == "POST":
        csrf.protect()
    g.admin_state = None
    if request.endpoint in _PUBLIC_ENDPOINTS:
        return None
    state = _ctx().accounts.session_state(session.get("sid"))
    if state is None:
        session.clear()
        return redirect(url_for("admin.login", next=request.full_path if request.method == "GET" else None))
    g.admin_state = state
    if not state.complete and request.endpoint not in _SECOND_FACTOR_ENDPOINTS:
        return redirect(url_for("admin.totp"))
    return None


@bp.after_request
def _harden(response: Any) -> Any:
    # Pages hold masked parties, audit trails and (once) a revealed number:
    # no cache may keep them, no other site may frame them. The referrer
    # goes to this site only: Flask-WTF checks it on https posts, and binding
    # ids in URLs never leak to another site.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'"
    )
    return response


@bp.errorhandler(CSRFError)
def _csrf_failed(error: CSRFError) -> ResponseReturnValue:
    title = _("Form expired")
    # In English, Flask-WTF's own words (which token problem it was).
    message = (
        error.description
        if i18n.console_language() == "en"
        else _("The form expired or was sent twice: reload the page and try again.")
    )
    return render_template("admin/error.html", title=title, message=message), 400


@bp.errorhandler(403)
def _forbidden(error: Any) -> ResponseReturnValue:
    message = _("Your role may not do this.")
    return render_template("admin/error.html", title=_("Not permitted"), message=message), 403


@bp.errorhandler(404)
def _not_found(error: Any) -> ResponseReturnValue:
    title, message = _("Not found"), _("There is nothing here.")
    return render_template("admin/error.html", title=title, message=message), 404


@bp.route("/<path:anything>", methods=["GET", "POST"])
def _unknown(anything: str) -> ResponseReturnValue:
    """Any other /admin path: the console's own 404 (in its language, after the
    login check), not the framework's English page."""
    abort(404)


@bp.context_processor
def _template_globals() -> dict[str, Any]:
    state: SessionState | None = g.get("admin_state")
    me = state.identity if state is not None and state.complete else None
    return {
        "me": me,
        "may": lambda permission: me is not None and may(me.role, permission),
        "html_lang": i18n.console_language(),
    }


def _back(default: str) -> ResponseReturnValue:
    return redirect(default, code=303)


# -- login, second factor, logout -------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    if request.method == "GET":
        return render_template("admin/login.html", next=request.args.get("next", ""))
    name = (request.form.get("name") or "").strip().lower()
    password = request.form.get("password") or ""
    try:
        raw, state = _ctx().accounts.login(name, password, client=client_address())
    except LoginRefused as exc:
        error = i18n.error_text(exc)
        return render_template("admin/login.html", error=error, next=request.form.get("next", "")), 401
    # A fresh cookie for a fresh session: nothing from before login survives.
    session.clear()
    session["sid"] = raw
    if not state.complete:
        return redirect(url_for("admin.totp"), code=303)
    return redirect(_local_next(request.form.get("next")), code=303)


@bp.route("/totp", methods=["GET", "POST"])
def totp() -> ResponseReturnValue:
    state: SessionState = g.admin_state
    accounts = _ctx().accounts
    if state.complete:
        return redirect(url_for("admin.index"))
    raw = session["sid"]
    if request.method == "POST":
        try:
            code = request.form.get("code") or ""
            if state.totp_enrolled:
                accounts.totp_verify(raw, code)
            else:
                accounts.totp_confirm(raw, code)
        except SecondFactorRefused as exc:
            flash(i18n.error_text(exc), "error")
            return redirect(url_for("admin.totp"), code=303)
        return redirect(url_for("admin.index"), code=303)
    if state.totp_enrolled:
        return render_template("admin/totp_verify.html", name=state.identity.name)
    secret, uri = accounts.totp_setup(raw)
    return render_template("admin/totp_enroll.html", name=state.identity.name, secret=secret, uri=uri)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    _ctx().accounts.logout(session.get("sid"))
    session.clear()
    flash(_("You are logged out."), "info")
    return redirect(url_for("admin.login"), code=303)


# -- bindings -------------------------------------------------------------------


@bp.get("/")
@requires("read")
def index() -> ResponseReturnValue:
    """The overview: live bindings, traffic, refusals, pool load, what waits."""
    services = _ctx().services
    with services.db.session() as db:
        figures = overview.build(
            db,
            now=services.clock(),
            per_number=services.settings.max_bindings_per_number,
            refusals=services.alerts.refusal_counts,
        )
    zone = i18n.console_zone()
    charts = {}
    for name, hourly, daily in (("day", figures.day, False), ("week", figures.week, True)):
        lines = [
            Line(_("Binds"), hourly.binds, "binds"),
            Line(_("Calls"), hourly.calls, "calls"),
            Line(_("Texts"), hourly.texts, "texts"),
        ]
        title = _("Per hour, last 24 hours") if name == "day" else _("Per hour, last 7 days")
        charts[name] = traffic_chart(
            hourly.starts, lines, title=title, chart_id=f"chart-{name}", zone=zone, daily=daily
        )
    return render_template(
        "admin/overview.html", ov=figures, charts=charts, meter=meter, low_share=POOL_LOW_SHARE
    )


@bp.get("/bindings/<binding_id>")
@requires("read")
def binding(binding_id: str) -> ResponseReturnValue:
    ctx = _ctx()
    services = ctx.services
    if not is_binding_id(binding_id):
        abort(404)
    me = _me()
    with services.db.session() as db:
        file = queries.binding_file(db, binding_id, vault=services.vault, now=services.clock())
        if file is None:
            abort(404)
        # Looking at a binding's (masked) parties is itself on the record.
        services.audit.append(db, AuditEntry(actor=me.actor, action="admin.binding.view", subject=binding_id))
    reveals = ctx.reveals.list(binding_id=binding_id) if may(me.role, "reveal") else []
    roles = sorted({m.role for m in file.members if m.kind == "party"})
    return render_template("admin/binding.html", file=file, reveals=reveals, party_roles=roles)


@bp.post("/bindings/<binding_id>/extend")
@requires("bindings.change")
def extend(binding_id: str) -> ResponseReturnValue:
    _known_shape(binding_id)
    services = _ctx().services
    here = url_for("admin.binding", binding_id=binding_id)
    try:
        hours = _hours(request.form.get("hours"))
        reason = _reason()
        services.numbers.bindings.extend(
            binding_id, ttl=dt.timedelta(hours=hours), actor=_me().actor, reason=reason
        )
    except (AdminError, NumbersError) as exc:
        flash(i18n.error_text(exc), "error")
        return _back(here)
    flash(_("Extended: it now ends %(hours)s h from now.", hours=hours), "info")
    return _back(here)


def _known_shape(binding_id: str) -> None:
    """404 for anything that is not a binding id (it is never echoed back)."""
    if not is_binding_id(binding_id):
        abort(404)


def _hours(raw: str | None) -> int:
    try:
        hours = int((raw or "").strip())
    except ValueError:
        raise InvalidAdminInput("hours", "must be a whole number of hours") from None
    if not 1 <= hours <= 24 * 90:
        raise InvalidAdminInput("hours", "must be between 1 and 2160 (90 days)")
    return hours


@bp.post("/bindings/<binding_id>/unbind")
@requires("bindings.change")
def unbind(binding_id: str) -> ResponseReturnValue:
    _known_shape(binding_id)
    services = _ctx().services
    here = url_for("admin.binding", binding_id=binding_id)
    try:
        reason = _reason()
        services.numbers.bindings.unbind(binding_id, actor=_me().actor, reason=reason)
    except (AdminError, NumbersError) as exc:
        flash(i18n.error_text(exc), "error")
        return _back(here)
    flash(_("Unbound: the relay number no longer connects this order's parties."), "info")
    return _back(here)


# -- alerts (the lists are in maskline.admin.lists) ---------------------------------


@bp.post("/alerts/<alert_id>/acknowledge")
@requires("alerts.acknowledge")
def acknowledge(alert_id: str) -> ResponseReturnValue:
    services = _ctx().services
    try:
        with services.db.session() as db:
            services.alerts.acknowledge(db, alert_id, by=_me().actor)
            services.audit.append(
                db, AuditEntry(actor=_me().actor, action="admin.alert.acknowledge", subject=alert_id)
            )
    except AlertNotFound:
        abort(404)
    flash(_("Alert acknowledged."), "info")
    return _back(url_for("admin.alerts"))


# -- dual-control reveal -----------------------------------------------------------


@bp.post("/bindings/<binding_id>/reveal")
@requires("reveal")
def request_reveal(binding_id: str) -> ResponseReturnValue:
    _known_shape(binding_id)
    try:
        # The reveal service checks the reason itself (its own, stricter rule).
        reason = request.form.get("reason") or ""
        role = (request.form.get("role") or "").strip()
        view = _ctx().reveals.request(_me(), binding_id=binding_id, role=role, reason=reason)
    except (AdminError, NumbersError) as exc:
        flash(i18n.error_text(exc), "error")
        return _back(url_for("admin.binding", binding_id=binding_id))
    flash(_("Reveal %(id)s requested: another security admin must approve it.", id=view.id), "info")
    return _back(url_for("admin.reveals"))


def _reveal_step(step: Callable[[], object], done: str) -> ResponseReturnValue:
    try:
        step()
    except RevealNotFound:
        abort(404)
    except (AdminError, NumbersError) as exc:
        flash(i18n.error_text(exc), "error")
        return _back(url_for("admin.reveals"))
    flash(done, "info")
    return _back(url_for("admin.reveals"))


@bp.post("/reveals/<request_id>/approve")
@requires("reveal")
def approve_reveal(request_id: str) -> ResponseReturnValue:
    return _reveal_step(
        lambda: _ctx().reveals.approve(_me(), request_id), _("Reveal %(id)s approved.", id=request_id)
    )


@bp.post("/reveals/<request_id>/deny")
@requires("reveal")
def deny_reveal(request_id: str) -> ResponseReturnValue:
    return _reveal_step(
        lambda: _ctx().reveals.deny(_me(), request_id, reason=request.form.get("reason") or ""),
        _("Reveal %(id)s denied.", id=request_id),
    )


@bp.post("/reveals/<request_id>/cancel")
@requires("reveal")
def cancel_reveal(request_id: str) -> ResponseReturnValue:
    return _reveal_step(
        lambda: _ctx().reveals.cancel(_me(), request_id), _("Reveal %(id)s cancelled.", id=request_id)
    )


@bp.post("/reveals/<request_id>/view")
@requires("reveal")
def view_reveal(request_id: str) -> ResponseReturnValue:
    """The one response that carries the number: POST (never prefetched), no-store."""
    ctx = _ctx()
    try:
        number = ctx.reveals.view(_me(), request_id)
    except RevealNotFound:
        abort(404)
    except (AdminError, NumbersError) as exc:
        flash(i18n.error_text(exc), "error")
        return _back(url_for("admin.reveals"))
    shown = ctx.reveals.get(request_id)
    return render_template("admin/reveal_view.html", number=number, reveal=shown)


# -- the admin's own preferences ----------------------------------------------------


@bp.route("/preferences", methods=["GET", "POST"])
def preferences() -> ResponseReturnValue:
    """The signed-in admin's console language and time zone."""
    state: SessionState = g.admin_state
    if request.method == "POST":
        language = (request.form.get("language") or "").strip() or None
        timezone = (request.form.get("timezone") or "").strip() or None
        try:
            _ctx().accounts.set_preferences(session["sid"], language=language, timezone=timezone)
        except AdminError as exc:
            flash(i18n.error_text(exc), "error")
            return _back(url_for("admin.preferences"))
        # Say so in the language just chosen: forget this request's choice.
        g.admin_state = replace(state, language=language, timezone=timezone)
        g.pop("console_language", None)
        refresh()
        flash(_("Preferences saved."), "info")
        return _back(url_for("admin.preferences"))
    settings = _ctx().services.settings
    return render_template(
        "admin/preferences.html",
        state=state,
        languages=[(code, i18n.LANGUAGE_NAMES[code]) for code in CONSOLE_LANGUAGES],
        zones=COMMON_ZONES,
        default_zone=settings.display_timezone,
        shown_zone=i18n.console_zone().key,
    )


# -- wiring ---------------------------------------------------------------------


def client_address() -> str:
    """The client's address: the socket's peer, or with ``MASKLINE_TRUSTED_PROXIES``
    = N the Nth X-Forwarded-For entry from the right (werkzeug ProxyFix's x_for
    rule), so users behind one reverse proxy are told apart and a client cannot
    name its own address past the proxies that are trusted."""
    remote = request.remote_addr or "unknown"
    trusted = _ctx().services.settings.trusted_proxies
    if trusted:
        forwarded = [v.strip() for v in request.headers.get("X-Forwarded-For", "").split(",") if v.strip()]
        if len(forwarded) >= trusted:
            candidate = forwarded[-trusted]
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                return remote
    return remote


@bp.errorhandler(RateLimitExceeded)
def _throttled(error: Any) -> ResponseReturnValue:
    message = "Too many login attempts from your address. Wait a minute, then try again."
    return render_template("admin/error.html", title="Slow down", message=message), 429


def _throttle_logins(app: Flask, settings: Any) -> None:
    """Flask-Limiter on POST /admin/login per client address: name spraying
    from one address is slowed, whichever names it tries (the lockout counts
    per account and address, see maskline.admin.lockout)."""
    limiter = Limiter(
        key_func=client_address,
        app=app,
        storage_uri=storage_uri(settings.redis_url, instance_path=settings.instance_path),
        key_prefix="ml:rl:admin",
        strategy="fixed-window",
        # Storage down: logins go on (and it is logged); the lockout and argon2 still stand.
        swallow_errors=True,
    )

    @limiter.request_filter
    def _not_a_login() -> bool:
        return not (request.endpoint == f"{bp.name}.login" and request.method == "POST")

    view = app.view_functions[f"{bp.name}.login"]
    limited: Any = limiter.limit(settings.admin_login_rate_limit, methods=["POST"])(view)
    app.view_functions[f"{bp.name}.login"] = limited


def init_app(app: Flask, services: Any, *, accounts: AdminAccounts, reveals: Any) -> None:
    """Register /admin with its session cookie and CSRF protection."""
    settings = services.settings
    app.config.update(
        # CSRF is checked by this blueprint only: webhooks and the API
        # authenticate by signature and key, not by cookie.
        WTF_CSRF_CHECK_DEFAULT=False,
        SESSION_COOKIE_NAME="maskline_admin",
        SESSION_COOKIE_PATH="/admin",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.admin_cookie_secure,
    )
    csrf.init_app(app)
    i18n.init_app(app, language=settings.console_language, timezone=settings.display_timezone)
    app.extensions[EXTENSION_KEY] = AdminContext(services=services, accounts=accounts, reveals=reveals)
    # The lists and bulk actions add their routes to this blueprint when imported.
    from maskline.admin import bulk, lists  # noqa: F401

    app.register_blueprint(bp)
    _throttle_logins(app, settings)
