"""``POST /``: Alibaba Cloud's Dyplsapi (2017-05-25) in RPC style, as its SDK sends it.

Order of work: the action and version (``x-acs-action`` / ``Action``), the
signature with its AccessKey, time and nonce, the scope, the AccessKey's
rate limit in that scope (``api_rate_limits``, as /v1), then the
parameters, then maskline's own services. Authentication and protocol
errors use HTTP 4xx with Alibaba's codes; refused operations answer HTTP 200
with a business code, as Alibaba does and its clients expect. No answer
carries a party number.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any
from urllib.parse import parse_qsl

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from maskline.api.keys import Principal
from maskline.backend_errors import DATABASE_DOWN, DATABASE_DOWN_MESSAGE
from maskline.compat.aliyun import actions, catalog
from maskline.compat.aliyun.interfaces import (
    API_VERSION,
    AliyunError,
    BadAction,
    Forbidden,
    ServiceUnavailable,
    Throttled,
)
from maskline.compat.aliyun.receipts import Receipts
from maskline.compat.aliyun.restrict import CallRestrictions, register
from maskline.compat.aliyun.services import AccessKeys, NonceStore, RateLimits
from maskline.compat.aliyun.signature import Incoming, verify
from maskline.redis_backend import storage_uri

bp = Blueprint("aliyun", __name__)
log = logging.getLogger(__name__)
EXTENSION_KEY = "maskline.compat.aliyun"
_MAX_BODY = 64 * 1024


class _Face:
    def __init__(self, *, services: Any) -> None:
        self.services = services
        self.keys = AccessKeys(
            db=services.db, vault=services.vault, audit=services.audit, clock=services.clock
        )
        settings = services.settings
        self.receipts = Receipts(
            vault=services.vault,
            outbox=services.events.outbox,
            clock=services.clock,
            report=bool(settings.aliyun_report_url and settings.aliyun_report_secret),
        )
        # Calls on the face's subscriptions end here: a receipt joins the
        # interaction's transaction (when a report URL is configured).
        services.events.outbox.on_interaction(self.receipts.interaction_completed)
        # CallRestrict, asked on the webhook path before a call is connected.
        self.restrictions = CallRestrictions(services=services)
        self.actions = actions.Actions(
            services=services, receipts=self.receipts, restrictions=self.restrictions
        )
        self.limits = RateLimits(
            storage_uri=storage_uri(settings.redis_url, instance_path=settings.instance_path),
            limits=settings.api_rate_limits,
        )

    @property
    def nonces(self) -> NonceStore:
        # Built per use: services.redis connects lazily.
        return NonceStore(redis=self.services.redis, max_skew=self.services.settings.aliyun_max_skew)


def _face() -> _Face:
    face: _Face = current_app.extensions[EXTENSION_KEY]
    return face


def _answer(body: dict[str, Any], status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


def _error(exc: AliyunError, request_id: str) -> Response:
    response = _answer({"RequestId": request_id, "Code": exc.code, "Message": exc.message}, exc.status)
    if isinstance(exc, Throttled):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _single(pairs: list[tuple[str, str]], where: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:
            raise AliyunError("InvalidParameter", f"{name} is given twice in the {where}")
        values[name] = value
    return values


def _incoming() -> Incoming:
    if request.content_length is not None and request.content_length > _MAX_BODY:
        raise AliyunError("InvalidParameter", "the body is larger than allowed", status=413)
    body = request.get_data(cache=True)
    if len(body) > _MAX_BODY:
        raise AliyunError("InvalidParameter", "the body is larger than allowed", status=413)
    form: dict[str, str] = {}
    if request.mimetype == "application/x-www-form-urlencoded" and body:
        try:
            text = body.decode()
        except UnicodeDecodeError:
            raise AliyunError("InvalidParameter", "the form body is not UTF-8") from None
        form = _single(parse_qsl(text, keep_blank_values=True), "body")
    query = _single(list(request.args.items(multi=True)), "query")
    headers = {name.lower(): value for name, value in request.headers.items()}
    return Incoming(
        method=request.method, path=request.path, query=query, form=form, headers=headers, body=body
    )


def _authenticate(incoming: Incoming) -> Principal:
    face = _face()
    found: list[Principal] = []

    def secret_of(access_key_id: str) -> str:
        principal, secret = face.keys.lookup(access_key_id)
        found.append(principal)
        return secret

    settings = face.services.settings
    verified = verify(
        incoming,
        secret_of=secret_of,
        now=face.services.clock(),
        max_skew=settings.aliyun_max_skew,
        allow_v2=settings.aliyun_signature_v2,
    )
    face.nonces.spend(verified.access_key_id, verified.nonce)
    return found[0]


@bp.post("/")
def rpc() -> ResponseReturnValue:
    """One Dyplsapi action; the answer in Alibaba's JSON shape.

    Also reached by ``GET /`` with RPC parameters (Alibaba's RPC style takes
    both methods), through :mod:`maskline.home`, which owns ``GET /``.
    """
    request_id = str(uuid.uuid4()).upper()
    try:
        incoming = _incoming()
        action = incoming.headers.get("x-acs-action") or incoming.query.get("Action") or ""
        version = incoming.headers.get("x-acs-version") or incoming.query.get("Version") or ""
        handler = actions.HANDLERS.get(action)
        if handler is None and action not in catalog.ACTIONS:
            raise BadAction("InvalidAction.NotFound", "this action is not served here", status=404)
        if version != API_VERSION:
            raise BadAction("InvalidVersion", f"the API version must be {API_VERSION}")
        principal = _authenticate(incoming)
        scope = handler[0] if handler is not None else catalog.scope_of(action)
        if scope not in principal.scopes:
            raise Forbidden(f"this AccessKey lacks the {scope} scope")
        _face().limits.hit(principal.key_id, scope)
        if handler is None:
            raise catalog.not_open(action)
        params = {**incoming.query, **incoming.form}
        body = handler[1](_face().actions, params, principal)
    except AliyunError as exc:
        return _error(exc, request_id)
    except DATABASE_DOWN as exc:
        log.warning("aliyun request failed: database unavailable (%s)", type(exc).__name__)
        return _error(ServiceUnavailable(DATABASE_DOWN_MESSAGE), request_id)
    return _answer({"RequestId": request_id, "Code": "OK", "Message": "OK", **body})


def render_http_error(exc: HTTPException) -> Response:
    """Werkzeug's HTTP errors on this face's path (e.g. ``PUT /``) in Alibaba's
    RPC error shape; used by the app (:mod:`maskline.http_errors`)."""
    request_id = str(uuid.uuid4()).upper()
    status = exc.code or 500
    codes = {
        404: ("InvalidAction.NotFound", "this action is not served here"),
        405: ("UnsupportedHTTPMethod", "Dyplsapi RPC takes POST (or GET with Action)"),
        413: ("InvalidParameter", "the body is larger than allowed"),
        415: ("InvalidParameter", "send the parameters as a form or in the query"),
    }
    code, message = codes.get(status, ("InvalidParameter" if status < 500 else "InternalError", exc.name))
    response = _error(AliyunError(code, message, status=status), request_id)
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    return response


def init_app(app: Flask, services: Any) -> None:
    face = _Face(services=services)
    app.extensions[EXTENSION_KEY] = face
    app.register_blueprint(bp)
    register(app.extensions, face.restrictions)
