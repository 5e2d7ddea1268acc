"""The REST API's contract: scopes, and the errors every endpoint answers with.

Exception tree (each maps to one HTTP status and a JSON body
``{"error": {"code", "message", "fields"?}}``)::

    ApiError
    ├── BadRequest            400  malformed JSON, or not an object
    ├── Unauthorized          401  no key, or an unknown or revoked one
    ├── Forbidden             403  the key lacks the scope
    ├── NotFound              404  no such record for this owner, or no such path
    ├── MethodNotAllowed      405  the path exists, the method does not
    ├── Conflict              409  (``conflict``) and its distinct codes:
    │   ├── PoolExhaustedError        ``pool_exhausted``
    │   ├── OwnerLimitError           ``owner_limit_reached``
    │   ├── BindingEnded              ``binding_ended``
    │   ├── IdempotencyKeyReused      ``idempotency_key_reused``
    │   ├── IdempotencyKeyInUse       ``idempotency_key_in_use``
    │   └── TrackingNumberTaken       ``tracking_number_taken``
    ├── PayloadTooLarge       413  the body is larger than MASKLINE_API_MAX_BODY
    ├── UnsupportedMediaType  415  the body is not application/json
    ├── Unprocessable         422  fields are invalid (each named, with why)
    ├── QuotaExceeded         429  a binding's call quota is used up (``call_quota_exceeded``)
    └── UpstreamError         502  Twilio refused or could not be reached (``twilio_error``);
                                   the body adds ``twilio: {status, code}``

No message ever carries a party number: field errors say which field and
why, never what was sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from config import API_SCOPES
from maskline import errors

SCOPES = API_SCOPES


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


class ApiError(errors.MasklineError):
    status = 500
    code = "error"

    def __init__(self, message: str, *, fields: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or []

    def to_json(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = [f.to_json() for f in self.fields]
        return {"error": body}


class BadRequest(ApiError, errors.InputError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError, errors.Forbidden):
    status, code = 401, "unauthorized"


class Forbidden(ApiError, errors.Forbidden):
    status, code = 403, "forbidden"


class NotFound(ApiError, errors.NotFound):
    status, code = 404, "not_found"


class Conflict(ApiError, errors.Conflict):
    status, code = 409, "conflict"


class PoolExhaustedError(Conflict):
    """No relay number can take this binding (the message names the country
    or area, and what the pool needs)."""

    code = "pool_exhausted"


class OwnerLimitError(Conflict):
    """The owner holds as many live bindings as its cap allows (the message
    names the cap; MASKLINE_OWNER_MAX_LIVE_BINDINGS or ``owner set-limits``)."""

    code = "owner_limit_reached"


class BindingEnded(Conflict):
    code = "binding_ended"


class IdempotencyKeyReused(Conflict):
    """The Idempotency-Key was used before with a different request."""

    code = "idempotency_key_reused"


class IdempotencyKeyInUse(Conflict):
    """A request with this Idempotency-Key is still being handled (or may have had its effect)."""

    code = "idempotency_key_in_use"


class WouldShortenError(Conflict):
    """The PATCH would make the expiry earlier without ``"allow_shorten": true``.
    Nothing changed; the body says the current and the asked-for expiry."""

    code = "would_shorten"

    def __init__(self, message: str, *, expires_at: str, requested_expires_at: str) -> None:
        super().__init__(message)
        self.expires_at = expires_at
        self.requested_expires_at = requested_expires_at

    def to_json(self) -> dict[str, object]:
        body = super().to_json()
        error = body["error"]
        assert isinstance(error, dict)
        error["expires_at"] = self.expires_at
        error["requested_expires_at"] = self.requested_expires_at
        return body


class TrackingNumberTaken(Conflict):
    code = "tracking_number_taken"


class MethodNotAllowed(ApiError):
    status, code = 405, "method_not_allowed"


class PayloadTooLarge(ApiError):
    status, code = 413, "too_large"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class Unprocessable(ApiError, errors.InputError):
    status, code = 422, "invalid_fields"


class QuotaExceeded(ApiError):
    status, code = 429, "call_quota_exceeded"


class UpstreamError(ApiError):
    """Twilio's answer: its HTTP status and error code, and a message already
    scrubbed of phone numbers (Twilio's own messages can quote them)."""

    status, code = 502, "twilio_error"

    def __init__(self, message: str, *, twilio_status: int | None = None, twilio_code: int | None = None):
        super().__init__(message)
        self.twilio_status = twilio_status
        self.twilio_code = twilio_code

    def to_json(self) -> dict[str, object]:
        body = super().to_json()
        error = body["error"]
        assert isinstance(error, dict)
        error["twilio"] = {"status": self.twilio_status, "code": self.twilio_code}
        return body


# Every ``error.code`` the API answers with, its HTTP status and meaning: the
# OpenAPI document enumerates these, and a test checks the two agree.
ERROR_CODES: dict[str, tuple[int, str]] = {
    "bad_request": (400, "malformed JSON, a body that is not an object, or a bad query parameter"),
    "unauthorized": (401, "no API key, or an unknown or revoked one"),
    "forbidden": (403, "the key lacks the scope this operation needs"),
    "not_found": (404, "no such record for this owner, or no such path"),
    "method_not_allowed": (405, "the path does not take this method"),
    "conflict": (409, "the request conflicts with the record's state"),
    "pool_exhausted": (409, "no relay number can take this binding"),
    "binding_ended": (409, "the binding has ended (unbound or expired)"),
    "would_shorten": (409, 'the change would make the expiry earlier; send "allow_shorten": true to mean it'),
    "idempotency_key_reused": (409, "the Idempotency-Key was used with a different request"),
    "idempotency_key_in_use": (409, "a request with this Idempotency-Key is still being handled"),
    "tracking_number_taken": (409, "the carrier's tracking number is linked by another account"),
    "owner_limit_reached": (409, "the owner's cap on live bindings is reached"),
    "too_large": (413, "the body is larger than MASKLINE_API_MAX_BODY"),
    "unsupported_media_type": (415, "the body must be JSON, sent with Content-Type: application/json"),
    "invalid_fields": (422, "fields are invalid; each is named in error.fields, with why"),
    "rate_limited": (429, "the key's rate limit for this scope is used up; see Retry-After"),
    "call_quota_exceeded": (429, "the binding's call quota is used up"),
    "twilio_error": (502, "Twilio refused or could not be reached; error.twilio has its status and code"),
    "unavailable": (503, "Redis or the database cannot be reached; nothing changed, retry (Retry-After)"),
}
