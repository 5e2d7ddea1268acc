"""The REST API's contract: scopes, and the errors every endpoint answers with.

Exception tree (each maps to one HTTP status and a JSON body
``{"error": {"code", "message", "fields"?}}``)::

    ApiError
    ├── BadRequest            400  malformed JSON, or not an object
    ├── Unauthorized          401  no key, or an unknown or revoked one
    ├── Forbidden             403  the key lacks the scope
    ├── NotFound              404  no such record for this owner
    ├── Conflict              409  idempotency key reused, binding ended
    │   └── NoRelayNumber     409  pool exhausted (``pool_exhausted``)
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

SCOPES = API_SCOPES


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


class ApiError(Exception):
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


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class NoRelayNumber(Conflict):
    """No relay number can take the binding (the message names the country
    or area, and what the pool needs)."""

    code = "pool_exhausted"


class Unprocessable(ApiError):
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
