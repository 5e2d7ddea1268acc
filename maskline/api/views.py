"""``/v1``: the JSON API for order systems. Thin: read, authorise, call the services.

Order of work on every request: the key (401), its rate limit (429), the
scope (403), the body (400/413/422), then the services. Records of another
owner are 404, never the record. No response carries a party number.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import functools
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from maskline import errors
from maskline.api import batch
from maskline.api import requests as parse
from maskline.api.calls import CallQuotaExceeded, ClickToCall, ClickToCallUnavailable
from maskline.api.errors import allow_header, http_error_as_api_error
from maskline.api.idempotency import IdempotencyStore, Lease, Replay
from maskline.api.interfaces import (
    ApiError,
    BadRequest,
    BindingEnded,
    FieldError,
    Forbidden,
    IdempotencyKeyInUse,
    NotFound,
    OwnerLimitError,
    PoolExhaustedError,
    QuotaExceeded,
    Unauthorized,
    Unprocessable,
    UnsupportedMediaType,
    UpstreamError,
    WouldShortenError,
)
from maskline.api.keys import ApiKeyService, Principal
from maskline.api.ratelimit import ScopeLimits
from maskline.api.waybills import WaybillService
from maskline.backend_errors import answer_database_outages
from maskline.numbers.bind_sql import Answer, AnswerNotPending, DatabaseUnavailable
from maskline.numbers.interfaces import (
    BindingNotFound,
    BindingNotLive,
    BindingView,
    InvalidRequest,
    OwnerLimitReached,
    PoolExhausted,
    RoutingUnavailable,
    WouldShorten,
)
from maskline.numbers.services import is_binding_id
from maskline.redis_backend import storage_uri
from maskline.twilio_rest import TwilioError, TwilioNotConfigured
from maskline.vault.interfaces import InvalidPhoneNumber
from maskline.webhooks.models import Interaction

bp = Blueprint("api", __name__, url_prefix="/v1")
log = logging.getLogger(__name__)
EXTENSION_KEY = "maskline.api"
STATUSES = ("active", "expired", "unbound")
_IDEMPOTENCY_KEY = re.compile(r"^[\x20-\x7e]{1,255}\Z")


class RateLimited(ApiError):
    """429: the key's limit for the scope is used up (see Retry-After)."""

    status, code = 429, "rate_limited"


class Unavailable(ApiError, errors.Unavailable):
    """503: Redis or the database cannot be reached; nothing was changed, retry."""

    status, code = 503, "unavailable"
    # Long enough for a backend restart, short enough that orders keep flowing.
    retry_after = 2


class _Api:
    def __init__(
        self, *, services: Any, keys: ApiKeyService, idempotency: IdempotencyStore, limits: ScopeLimits
    ) -> None:
        self.services = services
        self.waybills = WaybillService(db=services.db, clock=services.clock, audit=services.audit)
        self.calls = ClickToCall(services=services)
        self.keys = keys
        self.idempotency = idempotency
        self.limits = limits


def _api() -> _Api:
    api: _Api = current_app.extensions[EXTENSION_KEY]
    return api


# -- who is asking -------------------------------------------------------------


def _principal() -> Principal | None:
    """The request's key (checked once per request)."""
    if "principal" not in g:
        header = request.headers.get("Authorization", "")
        scheme, _, presented = header.partition(" ")
        g.principal = _api().keys.authenticate(presented.strip()) if scheme.lower() == "bearer" else None
    principal: Principal | None = g.principal
    return principal


View = Callable[..., ResponseReturnValue]


def requires(scope: str) -> Callable[[View], View]:
    """Route decorator: the key's rate limit for ``scope`` (per key, shared by
    the scope's endpoints; 429), then the key must hold ``scope`` (403)."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            principal = _principal()
            assert principal is not None  # the blueprint's before_request saw to it
            window = _api().limits.hit(f"key:{principal.key_id}", scope)
            if window is not None:
                g.rate_window = window  # its headers go on whatever the request answers
                if window.breached:
                    raise RateLimited(f"rate limit exceeded: {window.describe()}")
            if scope not in principal.scopes:
                raise Forbidden(f"this key lacks the {scope} scope")
            return view(*args, **kwargs)

        return checked

    return decorate


@bp.after_request
def _rate_headers(response: Response) -> Response:
    window = g.get("rate_window")
    if window is not None:
        response.headers.update(window.headers(retry_after=response.headers.get("Retry-After")))
    return response


@bp.before_request
def _authenticate() -> None:
    try:
        principal = _principal()
    except Exception:
        raise Unavailable("the key store cannot be reached; retry later") from None
    if principal is None:
        raise Unauthorized("send a valid API key: Authorization: Bearer ml_...")


def _owner() -> str:
    principal = _principal()
    assert principal is not None
    return principal.owner


def _actor() -> str:
    """Who the audit chain says did it: the key, by id (never the key itself)."""
    principal = _principal()
    assert principal is not None
    return f"apikey:{principal.key_id}"


# -- errors ----------------------------------------------------------------------


def _error(exc: ApiError) -> Response:
    response = jsonify(exc.to_json())
    response.status_code = exc.status
    if isinstance(exc, Unavailable):
        response.headers["Retry-After"] = str(exc.retry_after)
    elif isinstance(exc, RateLimited):
        response.headers["Retry-After"] = "1"  # at least; _rate_headers makes it the window's reset
    return response


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> ResponseReturnValue:
    return _error(exc)


# A restart or an outage of the database (the bind's own connection
# included): a clean 503, not a 500.
answer_database_outages(
    bp,
    face="api",
    log=log,
    unavailable=lambda message: _error(Unavailable(message)),
    also=(DatabaseUnavailable,),
)


@bp.errorhandler(RoutingUnavailable)
def _routing_unavailable(exc: RoutingUnavailable) -> ResponseReturnValue:
    # Outside the calls that translate it themselves (e.g. a Redis Cluster
    # client that could not be made to read a binding): 503, never a 500.
    return _error(_translate(exc))


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> ResponseReturnValue:
    return render_http_error(exc)


def render_http_error(exc: HTTPException) -> Response:
    """Werkzeug's HTTP errors (404, 405, 413, 415, ...) in the API's JSON shape;
    also used by the app for /v1 paths no view matched (:mod:`maskline.http_errors`)."""
    response = _error(http_error_as_api_error(exc))
    if (allow := allow_header(exc)) is not None:
        response.headers["Allow"] = allow
    return response


def _translate(exc: Exception) -> ApiError:
    """The numbers and vault packages' errors as API errors (messages carry no numbers)."""
    if isinstance(exc, InvalidRequest):
        return Unprocessable("invalid field", fields=[FieldError(exc.field, exc.reason)])
    if isinstance(exc, InvalidPhoneNumber):
        return Unprocessable("invalid field", fields=[FieldError(exc.field, exc.reason)])
    if isinstance(exc, BindingNotFound):
        return NotFound("no such binding")
    if isinstance(exc, BindingNotLive):
        return BindingEnded(str(exc))
    if isinstance(exc, PoolExhausted):
        return PoolExhaustedError(str(exc))
    if isinstance(exc, OwnerLimitReached):
        return OwnerLimitError(str(exc))
    if isinstance(exc, RoutingUnavailable):
        return Unavailable("the routing store cannot be reached; retry later")
    raise exc


# -- bodies --------------------------------------------------------------------------


def _body() -> Any:
    limit = current_app.config["MASKLINE_API_MAX_BODY"]
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge()
    raw = request.get_data(cache=True)
    if len(raw) > limit:
        raise RequestEntityTooLarge()
    if not request.is_json:
        raise UnsupportedMediaType("send JSON with Content-Type: application/json")
    body = request.get_json(silent=True)
    if body is None:
        raise BadRequest("the body is not valid JSON")
    return body


def binding_json(view: BindingView) -> dict[str, Any]:
    body = view.to_json()
    body.pop("owner", None)
    dial = {role: view.dial_for(role) for role in view.roles}
    if view.mode == "axe":
        dial["caller"] = view.dial_for("caller")
    body["dial"] = dial
    return body


def _settings() -> Any:
    return _api().services.settings


# -- bindings ------------------------------------------------------------------------


@dataclasses.dataclass
class _Claim:
    """The request's claim on its Idempotency-Key, for completing it atomically
    or marking it before an effect that cannot be undone."""

    lease: Lease
    fingerprint: str
    # Set by the handler: its failure came after the effect may have happened,
    # so the failure is the answer to replay, and the key is not released.
    keep_failure: bool = False

    def complete(self, session: Any, status: int, body: dict[str, Any]) -> None:
        _api().idempotency.complete(session, self.lease.owner, self.lease.key, self.fingerprint, status, body)

    def answer(self, status: int, body: dict[str, Any]) -> Answer:
        """What :meth:`complete` stores, for a bind's one statement."""
        return _api().idempotency.answer(self.lease.owner, self.lease.key, self.fingerprint, status, body)

    def start(self, session: Any) -> None:
        _api().idempotency.start(session, self.lease)


def _idempotently(handle: Callable[[_Claim | None], Response], *, atomic: bool = False) -> Response:
    """``handle(claim)`` at most once per (owner, ``Idempotency-Key``): a retry
    with the same request gets the first answer, another request with the key 409.

    ``atomic``: ``handle`` stores its success itself with ``claim.complete`` in
    the transaction of its change, so the answer is kept exactly when the
    change commits, and a key its request could not release (the database
    went away) does not block the retry.
    """
    api = _api()
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return handle(None)
    if not _IDEMPOTENCY_KEY.match(key):
        raise Unprocessable(
            "invalid header", fields=[FieldError("Idempotency-Key", "1-255 printable ASCII characters")]
        )
    owner = _owner()
    fingerprint = api.idempotency.fingerprint(request.method, request.path, request.get_data(cache=True))
    held = api.idempotency.begin(owner, key, fingerprint, take_over_pending=atomic)
    if isinstance(held, Replay):
        response = jsonify(held.body)
        response.status_code = held.status
        response.headers["Idempotent-Replayed"] = "true"
        return response
    claim = _Claim(held, fingerprint)
    status, answer = 500, {}
    try:
        response = handle(claim)
        status, answer = response.status_code, response.get_json()
        return response
    except ApiError as exc:
        status, answer = exc.status, exc.to_json()
        raise
    finally:
        if not (atomic and 200 <= status < 300):  # an atomic success is stored already
            api.idempotency.finish(held, status, answer, keep=claim.keep_failure)


@bp.post("/bindings")
@requires("bindings:write")
def create_binding() -> ResponseReturnValue:
    """Bind an order's parties; 201 with the binding (never a party number)."""
    body = _body()
    owner = _owner()
    return _idempotently(lambda claim: _create(body, owner, claim), atomic=True)


def _create(body: Any, owner: str, claim: _Claim | None) -> Response:
    answer = _bind(body, owner, claim)
    response = jsonify(answer)
    response.status_code = 201
    response.headers["Location"] = f"/v1/bindings/{answer['id']}"
    return response


def _bind(body: Any, owner: str, claim: _Claim | None) -> dict[str, Any]:
    """Bind one body; the binding's JSON, or the ApiError to answer with."""
    services = _api().services
    req = parse.parse_create(body, owner=owner, vault=services.vault, max_ttl=services.settings.max_ttl)

    def answer_with_the_binding(session: Any, view: BindingView) -> None:
        # In the binding's transaction: a retry finds the answer if and only if it committed.
        if claim is not None:
            claim.complete(session, 201, binding_json(view))

    try:
        view = services.numbers.bindings.bind(
            dataclasses.replace(req, actor=_actor()),
            within=answer_with_the_binding if claim is not None else None,
            # The same answer, stored by the bind's one statement where it takes that path.
            answer=(lambda view: claim.answer(201, binding_json(view))) if claim is not None else None,
        )
    except AnswerNotPending:
        raise IdempotencyKeyInUse(
            "another request with this Idempotency-Key was handled meanwhile; retry"
        ) from None
    except (InvalidRequest, InvalidPhoneNumber, PoolExhausted, OwnerLimitReached, RoutingUnavailable) as exc:
        raise _translate(exc) from None
    return binding_json(view)


@bp.post("/bindings:batch")
@requires("bindings:write")
def create_bindings_batch() -> ResponseReturnValue:
    """Up to 100 binds, each answered as ``POST /v1/bindings`` would (see maskline.api.batch)."""
    items = batch.items_of(_body())
    owner = _owner()
    key = request.headers.get("Idempotency-Key")
    return _idempotently(lambda claim: _create_batch(items, owner, key, claim), atomic=True)


def _create_batch(items: list[Any], owner: str, key: str | None, claim: _Claim | None) -> Response:
    api = _api()

    def bind_one(position: int, item: Any) -> batch.Answer:
        item_claim = None
        if key is not None:
            # The item's own record, completed in its binding's transaction:
            # a retry of a batch that died half-way replays what committed.
            fingerprint = api.idempotency.fingerprint(
                "POST", f"{request.path}#{position}", json.dumps(item, sort_keys=True).encode()
            )
            held = api.idempotency.begin(
                owner, batch.item_key(key, position), fingerprint, take_over_pending=True
            )
            if isinstance(held, Replay):
                return held.status, held.body
            item_claim = _Claim(held, fingerprint)
        try:
            return 201, _bind(item, owner, item_claim)
        except ApiError as exc:
            if item_claim is not None:
                api.idempotency.finish(item_claim.lease, exc.status, exc.to_json())
            return exc.status, exc.to_json()

    result = batch.run(items, bind_one)
    if claim is not None:
        with api.services.db.session() as session:
            claim.complete(session, 200, result)
    return jsonify(result)


@bp.get("/bindings/<binding_id>")
@requires("bindings:read")
def get_binding(binding_id: str) -> ResponseReturnValue:
    try:
        view = _api().services.numbers.bindings.get(binding_id, owner=_owner())
    except BindingNotFound as exc:
        raise _translate(exc) from None
    return jsonify(binding_json(view))


def _cursor(view: BindingView) -> str:
    raw = f"{view.created_at.astimezone(dt.UTC).isoformat()}|{view.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _after(cursor: str | None) -> tuple[dt.datetime, str] | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, _, binding_id = raw.partition("|")
        if not is_binding_id(binding_id):
            raise ValueError("not a binding id")
        return dt.datetime.fromisoformat(created), binding_id
    except (ValueError, UnicodeDecodeError):
        raise Unprocessable(
            "invalid query", fields=[FieldError("cursor", "is not a cursor this API gave")]
        ) from None


@bp.get("/bindings")
@requires("bindings:read")
def list_bindings() -> ResponseReturnValue:
    """An owner's bindings, newest first; filter by order_id and status; paginated."""
    args = request.args
    errors = []
    status = args.get("status")
    if status is not None and status not in STATUSES:
        errors.append(FieldError("status", f"must be one of {', '.join(STATUSES)}"))
    raw_limit = args.get("limit", "50")
    limit = int(raw_limit) if raw_limit.isascii() and raw_limit.isdigit() else 0
    if not 1 <= limit <= 200:
        errors.append(FieldError("limit", "must be a whole number from 1 to 200"))
    order_id = args.get("order_id")
    if order_id is not None and (
        problem := parse.order_id_problem(order_id) or ("" if order_id else "is empty")
    ):
        errors.append(FieldError("order_id", problem))
    if errors:
        raise Unprocessable("invalid query", fields=errors)
    views = _api().services.numbers.bindings.page(
        owner=_owner(), order_id=order_id, status=status, limit=limit + 1, after=_after(args.get("cursor"))
    )
    more = len(views) > limit
    views = views[:limit]
    return jsonify(
        {
            "data": [binding_json(v) for v in views],
            "next_cursor": _cursor(views[-1]) if more and views else None,
        }
    )


@bp.patch("/bindings/<binding_id>")
@requires("bindings:write")
def update_binding(binding_id: str) -> ResponseReturnValue:
    """Move the expiry, change the allow-list, or mark the order delivered."""
    services = _api().services
    owner = _owner()
    try:
        services.numbers.bindings.get(binding_id, owner=owner)  # 404 before judging the body
        change = parse.parse_patch(_body(), vault=services.vault, max_ttl=services.settings.max_ttl)
        result = services.numbers.bindings.change(
            binding_id,
            owner=owner,
            ttl=change.ttl,
            extend_by=change.extend_by,
            expires_at=change.expires_at,
            allow_shorten=change.allow_shorten,
            allow=change.allow,
            delivered=change.delivered,
            region=change.region,
            actor=_actor(),
        )
    except WouldShorten as exc:
        raise WouldShortenError(
            "the new expiry is earlier than the current one; nothing changed. "
            'Send "allow_shorten": true to shorten it.',
            expires_at=iso_timestamp(exc.current),
            requested_expires_at=iso_timestamp(exc.requested),
        ) from None
    except (BindingNotFound, BindingNotLive, InvalidRequest, InvalidPhoneNumber, RoutingUnavailable) as exc:
        raise _translate(exc) from None
    body = binding_json(result.view)
    body["previous_expires_at"] = iso_timestamp(result.previous_expires_at)
    return jsonify(body)


@bp.delete("/bindings/<binding_id>")
@requires("bindings:write")
def delete_binding(binding_id: str) -> ResponseReturnValue:
    """Unbind now (idempotent: an ended binding answers as it is)."""
    try:
        view = _api().services.numbers.bindings.unbind(binding_id, owner=_owner(), actor=_actor())
    except (BindingNotFound, RoutingUnavailable) as exc:
        raise _translate(exc) from None
    return jsonify(binding_json(view))


@bp.get("/bindings/<binding_id>/interactions")
@requires("bindings:read")
def list_interactions(binding_id: str) -> ResponseReturnValue:
    """Calls and messages of a binding by role, status, duration and time."""
    services = _api().services
    owner = _owner()
    try:
        services.numbers.bindings.get(binding_id, owner=owner)
    except BindingNotFound as exc:
        raise _translate(exc) from None
    with services.db.session() as session:
        rows = session.scalars(
            select(Interaction)
            .where(Interaction.binding_id == binding_id, Interaction.owner == owner)
            .order_by(Interaction.started_at, Interaction.sid)
        ).all()
    return jsonify({"data": [_interaction_json(row) for row in rows]})


def _stamp(when: dt.datetime | None) -> str | None:
    return iso_timestamp(when) if when else None


def iso_timestamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _interaction_json(row: Interaction) -> dict[str, Any]:
    return {
        "sid": row.sid,
        "type": row.type,
        "from_role": row.from_role,
        "to_role": row.to_role,
        "status": row.status,
        "duration": row.duration,
        "started_at": _stamp(row.started_at),
        "ended_at": _stamp(row.ended_at),
    }


# -- click-to-call -------------------------------------------------------------------


@bp.post("/bindings/<binding_id>/calls")
@requires("calls:write")
def place_call(binding_id: str) -> ResponseReturnValue:
    """Twilio calls ``from_role``, then bridges to the other party; the relay number on both legs."""
    api = _api()
    owner = _owner()
    try:
        api.services.numbers.bindings.get(binding_id, owner=owner)  # 404 before judging the body
    except BindingNotFound as exc:
        raise _translate(exc) from None
    body = parse.json_object(_body())
    from_role = body.get("from_role")
    errors = [] if isinstance(from_role, str) else [FieldError("from_role", "must be a role of the binding")]
    unknown = sorted(set(body) - {"from_role"})
    errors += [FieldError(parse.shown_name(name), "is not a field of this request") for name in unknown]
    if errors or not isinstance(from_role, str):
        raise Unprocessable("invalid field", fields=errors)
    # A retried POST with the same Idempotency-Key must not ring the phone twice.
    return _idempotently(lambda claim: _place_call(binding_id, owner, from_role, claim))


def _place_call(binding_id: str, owner: str, from_role: str, claim: _Claim | None) -> Response:
    api = _api()
    try:
        call = api.calls.place(
            binding_id,
            owner=owner,
            from_role=from_role,
            actor=_actor(),
            before_dial=None if claim is None else claim.start,
        )
    except BindingNotFound as exc:
        raise _translate(exc) from None
    except CallQuotaExceeded as exc:
        raise QuotaExceeded(str(exc)) from None
    except (ClickToCallUnavailable, TwilioNotConfigured) as exc:
        raise Unavailable(str(exc)) from None
    except TwilioError as exc:
        if exc.status is not None:
            message = f"Twilio refused the call ({exc.summary()})"
        else:
            outcome = "the call may have been placed" if exc.maybe_done else "no call was placed"
            message = f"{exc.message}; {outcome}"
        if claim is not None and exc.maybe_done:
            claim.keep_failure = True  # a retry with this key must not ring again
        raise UpstreamError(message, twilio_status=exc.status, twilio_code=exc.code) from None
    response = jsonify(call.to_json())
    response.status_code = 201
    return response


# -- waybills ------------------------------------------------------------------------


@bp.put("/bindings/<binding_id>/waybills/<tracking_no>")
@requires("bindings:write")
def link_waybill(binding_id: str, tracking_no: str) -> ResponseReturnValue:
    """Link a carrier's tracking number to an axe binding; the carrier may then look it up."""
    api = _api()
    try:
        view = api.services.numbers.bindings.get(binding_id, owner=_owner())
    except BindingNotFound as exc:
        raise _translate(exc) from None
    body = parse.json_object(_body())
    unknown = sorted(set(body) - {"carrier"})
    if unknown:
        raise Unprocessable(
            "invalid field",
            fields=[FieldError(parse.shown_name(unknown[0]), "is not a field of this request")],
        )
    created, waybill = api.waybills.link(view, tracking_no, body.get("carrier"), actor=_actor())
    response = jsonify(waybill)
    response.status_code = 201 if created else 200
    return response


@bp.get("/waybills/<tracking_no>/contact")
@requires("waybills:read")
def waybill_contact(tracking_no: str) -> ResponseReturnValue:
    """For the named carrier only: the relay number and extension to print or dial."""
    return jsonify(_api().waybills.contact(tracking_no, carrier=_owner()).to_json())


# -- pool ----------------------------------------------------------------------------


@bp.get("/pool")
@requires("pool:read")
def pool() -> ResponseReturnValue:
    """Relay numbers (public), their region, status and load."""
    services = _api().services
    with services.db.session() as session:
        entries = services.numbers.pool.entries(session, now=services.clock())
    cap = services.settings.max_bindings_per_number
    return jsonify({"data": [{**e.to_json(), "capacity": cap} for e in entries]})


# -- wiring --------------------------------------------------------------------------


def init_app(app: Flask, services: Any) -> None:
    """Register /v1 with its key store, idempotency store and rate limiter."""
    settings = services.settings
    app.config["MASKLINE_API_RATE_LIMITS"] = dict(settings.api_rate_limits)
    app.config["MASKLINE_API_MAX_BODY"] = settings.api_max_body
    # One counter store per app (each app may have its own Redis).
    limits = ScopeLimits(
        storage_uri=storage_uri(settings.redis_url, instance_path=settings.instance_path),
        limits=settings.api_rate_limits,
    )
    app.extensions[EXTENSION_KEY] = _Api(
        services=services,
        keys=ApiKeyService(db=services.db, clock=services.clock),
        idempotency=IdempotencyStore(
            db=services.db,
            secret=settings.secret_key.encode(),
            clock=services.clock,
            ttl=settings.idempotency_ttl,
        ),
        limits=limits,
    )
    app.register_blueprint(bp)
    from maskline.api.openapi import bp as openapi_bp

    app.register_blueprint(openapi_bp)
