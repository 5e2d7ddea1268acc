"""``/twilio-proxy/v1``: Twilio Proxy v1 as the official SDK speaks it. Thin:
authenticate, read the form, call :class:`ProxyFace`, render Twilio's JSON.

Order of work: HTTP Basic credentials (401), the key's scope (403; reads
need ``bindings:read``, changes ``bindings:write``, message interactions
``calls:write``), the key's rate limit in that scope (429 with
``Retry-After``; ``api_rate_limits`` as /v1, open if Redis is down), the
form (400 naming the parameter), then the service.
Another owner's resources are 404. No response carries a party number.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import MethodNotAllowed as WerkzeugMethodNotAllowed

from maskline import safe_json
from maskline.api.keys import Principal
from maskline.api.requests import parse_timestamp
from maskline.backend_errors import answer_database_outages
from maskline.compat.ratelimits import ScopedRateLimits
from maskline.compat.twilio import wire
from maskline.compat.twilio.credentials import CredentialChecker
from maskline.compat.twilio.interfaces import (
    BASE_PATH,
    InvalidParameter,
    MethodNotAllowed,
    PermissionDenied,
    ProxyError,
    RateLimited,
    ResourceConflict,
    ResourceNotFound,
    ServiceUnavailable,
    Unauthenticated,
    UpstreamFailed,
    derived_sid,
)
from maskline.compat.twilio.services import (
    GEO_MATCH_LEVELS,
    NUMBER_SELECTION_BEHAVIORS,
    SESSION_MODES,
    ProxyFace,
    ServiceFields,
)
from maskline.events.interfaces import InvalidEventsUrl
from maskline.events.services import check_events_url
from maskline.redaction import redact_phone_numbers
from maskline.redis_backend import storage_uri
from maskline.twilio_rest import TwilioError

bp = Blueprint("twilio_proxy", __name__, url_prefix=BASE_PATH)
log = logging.getLogger(__name__)
EXTENSION_KEY = "maskline.compat.twilio"
MAX_PAGE_SIZE = 1000
MAX_NAME = 191
MAX_URL = 500
SERVICE_PARAMS = frozenset(
    {
        "UniqueName",
        "DefaultTtl",
        "CallbackUrl",
        "GeoMatchLevel",
        "NumberSelectionBehavior",
        "InterceptCallbackUrl",
        "OutOfSessionCallbackUrl",
        "ChatInstanceSid",
        # maskline's own: block the interaction when the intercept callback fails.
        "InterceptFailClosed",
    }
)


class _Face:
    def __init__(self, *, services: Any) -> None:
        self.services = services
        self.proxy = ProxyFace(services=services)
        self.credentials = CredentialChecker(db=services.db)
        settings = services.settings
        self.limits = ScopedRateLimits(
            storage_uri=storage_uri(settings.redis_url, instance_path=settings.instance_path),
            limits=settings.api_rate_limits,
            face="twilio",
        )


def _face() -> _Face:
    face: _Face = current_app.extensions[EXTENSION_KEY]
    return face


# -- who is asking ----------------------------------------------------------------


@bp.before_request
def _authenticate() -> None:
    auth = request.authorization
    try:
        principal = (
            _face().credentials.authenticate(auth.username or "", auth.password or "")
            if auth is not None and auth.type == "basic"
            else None
        )
    except Exception:
        raise ServiceUnavailable("the credential store cannot be reached; retry later") from None
    if principal is None:
        raise Unauthenticated("Authenticate: send the account sid and auth token maskline issued")
    g.twilio_principal = principal


def _principal() -> Principal:
    principal: Principal = g.twilio_principal
    return principal


def _owner() -> str:
    return _principal().owner


def _actor() -> str:
    return f"apikey:{_principal().key_id}"


def _account_sid() -> str:
    auth = request.authorization
    assert auth is not None
    return auth.username or ""


View = Callable[..., ResponseReturnValue]


def requires(scope: str) -> Callable[[View], View]:
    def decorate(view: View) -> View:
        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            principal = _principal()
            if scope not in principal.scopes:
                raise PermissionDenied(f"these credentials' key lacks the {scope} scope")
            retry_after = _face().limits.retry_after(principal.key_id, scope)
            if retry_after is not None:
                raise RateLimited(retry_after)
            return view(*args, **kwargs)

        return checked

    return decorate


# -- errors --------------------------------------------------------------------------


def _error(exc: ProxyError) -> Response:
    response = jsonify(exc.to_json())
    response.status_code = exc.status
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="maskline Twilio Proxy"'
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


@bp.errorhandler(ProxyError)
def _proxy_error(exc: ProxyError) -> ResponseReturnValue:
    return _error(exc)


answer_database_outages(
    bp, face="twilio proxy", log=log, unavailable=lambda message: _error(ServiceUnavailable(message))
)


@bp.errorhandler(IntegrityError)
def _conflict(_exc: IntegrityError) -> ResponseReturnValue:
    # Two requests raced for one unique name (or one participant role):
    # the loser changed nothing. The driver's message quotes values: not shown.
    return _error(ResourceConflict("a concurrent request changed this resource first; retry"))


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> ResponseReturnValue:
    return render_http_error(exc)


def _quoted_path() -> str:
    """The request's path under the face, as Twilio quotes it, any phone number in it masked."""
    return redact_phone_numbers(request.path[len(BASE_PATH) :], region="US")


def render_http_error(exc: HTTPException) -> Response:
    """Werkzeug's HTTP errors (404, 405, 413, 415, ...) in Twilio's error JSON;
    also used by the app for this face's paths no view matched
    (:mod:`maskline.http_errors`). The path is quoted as Twilio quotes it,
    with any phone number in it masked."""
    path = redact_phone_numbers(request.path, region="US")
    if isinstance(exc, WerkzeugMethodNotAllowed):
        response = _error(MethodNotAllowed(f"Method not allowed: {request.method} {path}"))
        if exc.valid_methods:
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return response
    if exc.code == 404:
        return _error(ResourceNotFound(f"The requested resource {path} was not found"))
    error = ProxyError(exc.description or exc.name)
    error.status = exc.code or 500
    # Twilio's generic codes: 20001 "Invalid parameter" for what the client sent
    # (a malformed, too large or wrongly typed body), 20500 for the rest.
    error.code = 20001 if 400 <= error.status < 500 else 20500
    return _error(error)


# -- reading the form ------------------------------------------------------------------


class _Form:
    """The request's form parameters, checked one by one; unknown ones refused."""

    def __init__(self, allowed: frozenset[str]) -> None:
        self.values = request.form
        unknown = sorted(set(self.values) - allowed)
        if unknown:
            name = unknown[0][:64]
            raise InvalidParameter(f"{name}: is not a parameter of this resource")

    def text(self, name: str, *, limit: int = MAX_NAME) -> str | None:
        value = self.values.get(name)
        if value is None:
            return None
        if len(value) > limit or any(ord(c) < 32 for c in value):
            raise InvalidParameter(f"{name}: at most {limit} characters, no control characters")
        return value

    def choice(self, name: str, choices: tuple[str, ...]) -> str | None:
        value = self.values.get(name)
        if value is not None and value not in choices:
            raise InvalidParameter(f"{name}: must be one of {', '.join(choices)}")
        return value

    def integer(self, name: str, *, low: int = 0, high: int = 10**9) -> int | None:
        value = self.values.get(name)
        if value is None:
            return None
        if not value.isascii() or not value.isdigit() or not low <= int(value) <= high:
            raise InvalidParameter(f"{name}: must be a whole number from {low} to {high}")
        return int(value)

    def boolean(self, name: str) -> bool | None:
        value = self.values.get(name)
        if value is None:
            return None
        if value.lower() not in ("true", "false"):
            raise InvalidParameter(f"{name}: must be true or false")
        return value.lower() == "true"

    def date(self, name: str) -> dt.datetime | None:
        value = self.values.get(name)
        if value is None:
            return None
        parsed = parse_timestamp(value)
        if parsed is None:
            raise InvalidParameter(f"{name}: must be an ISO 8601 time such as 2026-12-01T18:00:00Z")
        return parsed

    def url(self, name: str) -> str | None:
        """A callback URL: https (http to loopback outside production), as events URLs; "" clears it."""
        value = self.text(name, limit=MAX_URL)
        if value:
            settings = _face().services.settings
            try:
                value = check_events_url(
                    value, allow_loopback_http=not settings.is_production, allow=settings.outbound_allow
                )
            except InvalidEventsUrl as exc:
                raise InvalidParameter(f"{name}: {exc}") from None
        return value


def _base() -> str:
    public = _face().services.settings.public_url
    root = public if public else request.host_url.rstrip("/")
    return f"{root}{BASE_PATH}"


def _paging() -> tuple[int, int]:
    args = request.args
    size_raw, page_raw = args.get("PageSize", "50"), args.get("Page", "0")
    if not size_raw.isascii() or not size_raw.isdigit() or not 1 <= int(size_raw) <= MAX_PAGE_SIZE:
        raise InvalidParameter(f"PageSize: must be a whole number from 1 to {MAX_PAGE_SIZE}")
    if not page_raw.isascii() or not page_raw.isdigit() or int(page_raw) > 10**6:
        raise InvalidParameter("Page: must be a whole number from 0")
    return int(page_raw), int(size_raw)


def _listing(
    key: str, fetch: Callable[[int, int], list[Any]], render: Callable[[Any], dict[str, Any]]
) -> Response:
    page, size = _paging()
    rows = fetch(page * size, size + 1)
    more = len(rows) > size
    return jsonify(
        wire.page(
            key,
            [render(r) for r in rows[:size]],
            url=_base() + request.path[len(BASE_PATH) :],
            page=page,
            page_size=size,
            more=more,
        )
    )


def _created(body: dict[str, Any]) -> Response:
    response = jsonify(body)
    response.status_code = 201
    return response


def _deleted() -> Response:
    return Response(status=204)


def _kw() -> dict[str, str]:
    return {"base": _base(), "account_sid": _account_sid()}


# -- services ------------------------------------------------------------------------


def _service_fields(form: _Form) -> ServiceFields:
    if form.values.get("ChatInstanceSid"):
        raise InvalidParameter("ChatInstanceSid: Conversations / Chat are not supported by maskline")
    return ServiceFields(
        unique_name=form.text("UniqueName"),
        default_ttl=form.integer("DefaultTtl", high=int(_face().services.settings.max_ttl.total_seconds())),
        geo_match_level=form.choice("GeoMatchLevel", GEO_MATCH_LEVELS),
        number_selection_behavior=form.choice("NumberSelectionBehavior", NUMBER_SELECTION_BEHAVIORS),
        callback_url=form.url("CallbackUrl"),
        intercept_callback_url=form.url("InterceptCallbackUrl"),
        out_of_session_callback_url=form.url("OutOfSessionCallbackUrl"),
        intercept_fail_closed=form.boolean("InterceptFailClosed"),
    )


@bp.post("/Services")
@requires("bindings:write")
def create_service() -> ResponseReturnValue:
    fields = _service_fields(_Form(SERVICE_PARAMS))
    row = _face().proxy.create_service(_owner(), fields, account_sid=_account_sid())
    return _created(wire.service_json(row, **_kw()))


@bp.get("/Services")
@requires("bindings:read")
def list_services() -> ResponseReturnValue:
    owner = _owner()
    return _listing(
        "services",
        lambda offset, limit: _face().proxy.list_services(owner, offset=offset, limit=limit),
        lambda row: wire.service_json(row, **_kw()),
    )


@bp.get("/Services/<sid>")
@requires("bindings:read")
def fetch_service(sid: str) -> ResponseReturnValue:
    return jsonify(wire.service_json(_face().proxy.get_service(_owner(), sid), **_kw()))


@bp.post("/Services/<sid>")
@requires("bindings:write")
def update_service(sid: str) -> ResponseReturnValue:
    _face().proxy.get_service(_owner(), sid)  # 404 before judging the form
    fields = _service_fields(_Form(SERVICE_PARAMS))
    return jsonify(wire.service_json(_face().proxy.update_service(_owner(), sid, fields), **_kw()))


@bp.delete("/Services/<sid>")
@requires("bindings:write")
def delete_service(sid: str) -> ResponseReturnValue:
    _face().proxy.delete_service(_owner(), sid, actor=_actor())
    return _deleted()


# -- phone numbers ----------------------------------------------------------------------


def _numbers_json(rows: list[Any]) -> list[dict[str, Any]]:
    details = _face().proxy.number_details(rows)
    return [wire.phone_number_json(r, details[r.e164], **_kw()) for r in rows]


@bp.post("/Services/<service_sid>/PhoneNumbers")
@requires("bindings:write")
def add_phone_number(service_sid: str) -> ResponseReturnValue:
    _face().proxy.get_service(_owner(), service_sid)
    form = _Form(frozenset({"Sid", "PhoneNumber", "IsReserved"}))
    row = _face().proxy.add_number(
        _owner(),
        service_sid,
        sid=form.text("Sid", limit=34),
        phone_number=form.text("PhoneNumber", limit=20),
        is_reserved=bool(form.boolean("IsReserved")),
    )
    return _created(_numbers_json([row])[0])


@bp.get("/Services/<service_sid>/PhoneNumbers")
@requires("bindings:read")
def list_phone_numbers(service_sid: str) -> ResponseReturnValue:
    owner = _owner()
    page, size = _paging()
    rows = _face().proxy.list_numbers(owner, service_sid, offset=page * size, limit=size + 1)
    rendered = _numbers_json(rows[:size])
    return jsonify(
        wire.page(
            "phone_numbers",
            rendered,
            url=_base() + request.path[len(BASE_PATH) :],
            page=page,
            page_size=size,
            more=len(rows) > size,
        )
    )


@bp.get("/Services/<service_sid>/PhoneNumbers/<sid>")
@requires("bindings:read")
def fetch_phone_number(service_sid: str, sid: str) -> ResponseReturnValue:
    return jsonify(_numbers_json([_face().proxy.get_number(_owner(), service_sid, sid)])[0])


@bp.post("/Services/<service_sid>/PhoneNumbers/<sid>")
@requires("bindings:write")
def update_phone_number(service_sid: str, sid: str) -> ResponseReturnValue:
    _face().proxy.get_number(_owner(), service_sid, sid)
    form = _Form(frozenset({"IsReserved"}))
    row = _face().proxy.update_number(_owner(), service_sid, sid, is_reserved=form.boolean("IsReserved"))
    return jsonify(_numbers_json([row])[0])


@bp.delete("/Services/<service_sid>/PhoneNumbers/<sid>")
@requires("bindings:write")
def delete_phone_number(service_sid: str, sid: str) -> ResponseReturnValue:
    _face().proxy.delete_number(_owner(), service_sid, sid)
    return _deleted()


# -- sessions ------------------------------------------------------------------------


@bp.post("/Services/<service_sid>/Sessions")
@requires("bindings:write")
def create_session(service_sid: str) -> ResponseReturnValue:
    _face().proxy.get_service(_owner(), service_sid)
    form = _Form(frozenset({"UniqueName", "DateExpiry", "Ttl", "Mode", "Status", "Participants"}))
    participants = _session_participants(request.form.getlist("Participants"))
    state = _face().proxy.create_session(
        _owner(),
        service_sid,
        unique_name=form.text("UniqueName"),
        ttl=form.integer("Ttl", high=int(_face().services.settings.max_ttl.total_seconds())),
        date_expiry=form.date("DateExpiry"),
        mode=form.choice("Mode", SESSION_MODES),
        status=form.choice("Status", ("open", "in-progress", "closed")),
        participants=participants,
        actor=_actor(),
    )
    return _created(wire.session_json(state, **_kw()))


PARTICIPANT_KEYS = ("Identifier", "FriendlyName", "ProxyIdentifier", "ProxyIdentifierSid")


def _session_participants(raw: list[str]) -> list[dict[str, str | None]]:
    """Session create's ``Participants``: JSON objects with Identifier, and
    optionally FriendlyName, ProxyIdentifier, ProxyIdentifierSid."""
    if len(raw) > 2:
        raise InvalidParameter("Participants: a session has at most two participants")
    found = []
    for i, text in enumerate(raw):
        try:
            item = safe_json.loads(text) if len(text) <= 1000 else None
        except ValueError:
            item = None
        if not isinstance(item, dict):
            raise InvalidParameter(f"Participants[{i}]: must be an object with Identifier and FriendlyName")
        unknown = sorted(set(item) - set(PARTICIPANT_KEYS))
        if unknown:
            raise InvalidParameter(f"Participants[{i}].{unknown[0][:64]}: is not supported here")
        identifier, friendly_name = item.get("Identifier"), item.get("FriendlyName")
        if not isinstance(identifier, str) or not identifier or len(identifier) > 64:
            raise InvalidParameter(f"Participants[{i}].Identifier: is required: a phone number")
        if friendly_name is not None and (not isinstance(friendly_name, str) or len(friendly_name) > 255):
            raise InvalidParameter(f"Participants[{i}].FriendlyName: at most 255 characters")
        for name in ("ProxyIdentifier", "ProxyIdentifierSid"):
            value = item.get(name)
            if value is not None and (not isinstance(value, str) or len(value) > 34):
                raise InvalidParameter(f"Participants[{i}].{name}: at most 34 characters")
        found.append({name: item.get(name) for name in PARTICIPANT_KEYS})
    return found


@bp.get("/Services/<service_sid>/Sessions")
@requires("bindings:read")
def list_sessions(service_sid: str) -> ResponseReturnValue:
    owner = _owner()
    return _listing(
        "sessions",
        lambda offset, limit: _face().proxy.list_sessions(owner, service_sid, offset=offset, limit=limit),
        lambda state: wire.session_json(state, **_kw()),
    )


@bp.get("/Services/<service_sid>/Sessions/<sid>")
@requires("bindings:read")
def fetch_session(service_sid: str, sid: str) -> ResponseReturnValue:
    return jsonify(wire.session_json(_face().proxy.get_session(_owner(), service_sid, sid), **_kw()))


@bp.post("/Services/<service_sid>/Sessions/<sid>")
@requires("bindings:write")
def update_session(service_sid: str, sid: str) -> ResponseReturnValue:
    _face().proxy.get_session(_owner(), service_sid, sid)
    form = _Form(frozenset({"DateExpiry", "Ttl", "Status"}))
    state = _face().proxy.update_session(
        _owner(),
        service_sid,
        sid,
        ttl=form.integer("Ttl", low=1, high=int(_face().services.settings.max_ttl.total_seconds())),
        date_expiry=form.date("DateExpiry"),
        status=form.choice("Status", ("open", "in-progress", "closed")),
        actor=_actor(),
    )
    return jsonify(wire.session_json(state, **_kw()))


@bp.delete("/Services/<service_sid>/Sessions/<sid>")
@requires("bindings:write")
def delete_session(service_sid: str, sid: str) -> ResponseReturnValue:
    _face().proxy.delete_session(_owner(), service_sid, sid, actor=_actor())
    return _deleted()


# -- participants ------------------------------------------------------------------------


def _participant_json(state: Any, service_sid: str) -> dict[str, Any]:
    return wire.participant_json(state, service_sid=service_sid, **_kw())


@bp.post("/Services/<service_sid>/Sessions/<session_sid>/Participants")
@requires("bindings:write")
def add_participant(service_sid: str, session_sid: str) -> ResponseReturnValue:
    _face().proxy.get_session(_owner(), service_sid, session_sid)
    form = _Form(frozenset({"Identifier", "FriendlyName", "ProxyIdentifier", "ProxyIdentifierSid"}))
    identifier = form.text("Identifier", limit=64)
    if not identifier:
        raise InvalidParameter("Missing required parameter Identifier in the post body")
    state = _face().proxy.add_participant(
        _owner(),
        service_sid,
        session_sid,
        identifier=identifier,
        friendly_name=form.text("FriendlyName", limit=255),
        actor=_actor(),
        proxy_identifier=form.text("ProxyIdentifier", limit=34),
        proxy_identifier_sid=form.text("ProxyIdentifierSid", limit=34),
    )
    return _created(_participant_json(state, service_sid))


@bp.get("/Services/<service_sid>/Sessions/<session_sid>/Participants")
@requires("bindings:read")
def list_participants(service_sid: str, session_sid: str) -> ResponseReturnValue:
    owner = _owner()
    return _listing(
        "participants",
        lambda offset, limit: _face().proxy.list_participants(
            owner, service_sid, session_sid, offset=offset, limit=limit
        ),
        lambda state: _participant_json(state, service_sid),
    )


@bp.get("/Services/<service_sid>/Sessions/<session_sid>/Participants/<sid>")
@requires("bindings:read")
def fetch_participant(service_sid: str, session_sid: str, sid: str) -> ResponseReturnValue:
    state = _face().proxy.get_participant(_owner(), service_sid, session_sid, sid)
    return jsonify(_participant_json(state, service_sid))


@bp.delete("/Services/<service_sid>/Sessions/<session_sid>/Participants/<sid>")
@requires("bindings:write")
def delete_participant(service_sid: str, session_sid: str, sid: str) -> ResponseReturnValue:
    _face().proxy.delete_participant(_owner(), service_sid, session_sid, sid, actor=_actor())
    return _deleted()


# -- interactions ------------------------------------------------------------------------


def _interactions(service_sid: str, session_sid: str) -> tuple[Any, list[Any], dict[str, str]]:
    return _face().proxy.interactions(_owner(), service_sid, session_sid)


@bp.get("/Services/<service_sid>/Sessions/<session_sid>/Interactions")
@requires("bindings:read")
def list_interactions(service_sid: str, session_sid: str) -> ResponseReturnValue:
    row, found, roles = _interactions(service_sid, session_sid)
    return _listing(
        "interactions",
        lambda offset, limit: found[offset : offset + limit],
        lambda i: wire.interaction_json(
            i, service_sid=service_sid, session_sid=row.sid, participants=roles, **_kw()
        ),
    )


@bp.get("/Services/<service_sid>/Sessions/<session_sid>/Interactions/<sid>")
@requires("bindings:read")
def fetch_interaction(service_sid: str, session_sid: str, sid: str) -> ResponseReturnValue:
    row, found, roles = _interactions(service_sid, session_sid)
    for interaction in found:
        if derived_sid("interaction", interaction.sid) == sid:
            return jsonify(
                wire.interaction_json(
                    interaction, service_sid=service_sid, session_sid=row.sid, participants=roles, **_kw()
                )
            )
    raise ResourceNotFound(f"The requested resource {_quoted_path()} was not found")


@bp.delete("/Services/<service_sid>/Sessions/<session_sid>/Interactions/<sid>")
@requires("bindings:write")
def delete_interaction(service_sid: str, session_sid: str, sid: str) -> ResponseReturnValue:
    _face().proxy.delete_interaction(_owner(), service_sid, session_sid, sid, actor=_actor())
    return _deleted()


# -- message interactions -------------------------------------------------------------------


@bp.post("/Services/<service_sid>/Sessions/<session_sid>/Participants/<participant_sid>/MessageInteractions")
@requires("calls:write")
def send_message(service_sid: str, session_sid: str, participant_sid: str) -> ResponseReturnValue:
    proxy = _face().proxy
    proxy.get_participant(_owner(), service_sid, session_sid, participant_sid)
    form = _Form(frozenset({"Body", "MediaUrl"}))
    media = request.form.getlist("MediaUrl")
    for url in media:
        if len(url) > MAX_URL or not url.startswith(("https://", "http://")):
            raise InvalidParameter("MediaUrl: each must be an http(s) URL of at most 500 characters")
    try:
        sent = proxy.send_message(
            _owner(),
            service_sid,
            session_sid,
            participant_sid,
            body=form.text("Body", limit=1600),
            media_urls=media,
            actor=_actor(),
        )
    except TwilioError as exc:
        raise UpstreamFailed(f"Twilio refused the message ({exc.summary()})") from None
    _row, _found, roles = _interactions(service_sid, session_sid)
    return _created(
        wire.interaction_json(
            sent.interaction,
            service_sid=service_sid,
            session_sid=sent.participant.session_sid,
            participants=roles,
            participant_sid=participant_sid,
            **_kw(),
        )
    )


@bp.get("/Services/<service_sid>/Sessions/<session_sid>/Participants/<participant_sid>/MessageInteractions")
@requires("bindings:read")
def list_message_interactions(
    service_sid: str, session_sid: str, participant_sid: str
) -> ResponseReturnValue:
    _face().proxy.get_participant(_owner(), service_sid, session_sid, participant_sid)
    row, found, roles = _interactions(service_sid, session_sid)
    mine = [i for i in found if i.type == "sms" and roles.get(i.to_role) == participant_sid]
    return _listing(
        "interactions",
        lambda offset, limit: mine[offset : offset + limit],
        lambda i: wire.interaction_json(
            i,
            service_sid=service_sid,
            session_sid=row.sid,
            participants=roles,
            participant_sid=participant_sid,
            **_kw(),
        ),
    )


@bp.route("/<path:_rest>", methods=["GET", "POST", "DELETE"])
def unknown_resource(_rest: str) -> ResponseReturnValue:
    """Anything else under the base path: Twilio's 404 body (after authentication)."""
    raise ResourceNotFound(f"The requested resource {_quoted_path()} was not found")


def init_app(app: Flask, services: Any) -> None:
    """Register ``/twilio-proxy/v1`` over ``services``."""
    app.extensions[EXTENSION_KEY] = _Face(services=services)
    app.register_blueprint(bp)
    from maskline.compat.twilio.intercept import register

    interceptor = register(app.extensions, services)
    if interceptor is not None:
        # A session with a restricted mode made here is filtered here at once.
        app.extensions[EXTENSION_KEY].proxy.on_restricted_mode = interceptor.restricted_mode_seen
