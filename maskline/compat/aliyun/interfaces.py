"""The Dyplsapi face's contract: its errors, in Alibaba's codes.

Exception tree (each is one Alibaba error code and an HTTP status)::

    AliyunError
    ├── AuthError                the request is not signed by a known, live AccessKey
    │   (IncompleteSignature 400, InvalidAccessKeyId.NotFound 404,
    │    InvalidAccessKeyId.Inactive 403, SignatureDoesNotMatch 400,
    │    InvalidTimeStamp.Expired 400, SignatureNonceUsed 400,
    │    UnsupportedSignatureVersion 400)
    ├── Forbidden                Forbidden.RAM 403: the key lacks the scope
    ├── BadAction                InvalidAction.NotFound 404, InvalidVersion 400
    ├── Throttled                Throttling.User 429: the AccessKey is past its rate limit
    ├── ServiceUnavailable       ServiceUnavailable 503: Redis or SQL down; nothing changed
    └── BusinessError            HTTP 200, as Alibaba's clients expect
        (isv.INVALID_PARAMETERS, isv.MOBILE_NUMBER_ILLEGAL, isv.EXPIRE_DATE_ILLEGAL,
         isv.NO_AVAILABLE_NUMBER, isv.NO_NOT_EXIST; isv.FLOW_LIMIT "业务流控" when the
         owner is at its cap of live bindings, the message naming owner_limit_reached)

Messages name fields, never a party number.
"""

from __future__ import annotations

# The purpose bound into a sealed AccessKey secret (AAD): it opens nowhere else.
from maskline import errors

SECRET_PURPOSE = "aliyun-access-key-secret"  # noqa: S105 (a label, not a secret)
API_VERSION = "2017-05-25"
# The outbox's reserved owner of call receipts (SecretReport): its URL and
# secret come from the settings. Owner names start with a letter or digit,
# so no real owner can take it.
REPORT_OWNER = "@aliyun-report"
REPORT_EVENT = "aliyun.secret_report"


class AliyunError(errors.MasklineError):
    """An answer in Alibaba's error shape: ``{"Code", "Message", "RequestId"}``."""

    status = 400

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        if status is not None:
            self.status = status


class AuthError(AliyunError, errors.Forbidden):
    """Authentication failed (the signature, its key, its time or its nonce)."""


class Forbidden(AliyunError, errors.Forbidden):
    status = 403

    def __init__(self, message: str) -> None:
        super().__init__("Forbidden.RAM", message)


class BadAction(AliyunError, errors.InputError):
    """The action or API version is not one this face serves."""


class Throttled(AliyunError):
    """The AccessKey is past its rate limit in this scope (with Retry-After)."""

    status = 429

    def __init__(self, *, retry_after: int) -> None:
        super().__init__("Throttling.User", "Request was denied due to user flow control.")
        self.retry_after = retry_after


class ServiceUnavailable(AliyunError, errors.Unavailable):
    status = 503

    def __init__(self, message: str) -> None:
        super().__init__("ServiceUnavailable", message)


class BusinessError(AliyunError):
    """A refused operation: HTTP 200 with Alibaba's business code."""

    status = 200


def invalid_parameter(field: str, reason: str) -> BusinessError:
    """``isv.INVALID_PARAMETERS`` naming the field (never its value), or
    Alibaba's narrower ``isv.EXPIRE_DATE_ILLEGAL`` for ``Expiration``."""
    code = "isv.EXPIRE_DATE_ILLEGAL" if field == "Expiration" else "isv.INVALID_PARAMETERS"
    return BusinessError(code, f"{field}: {reason}")


def invalid_number(field: str, reason: str) -> BusinessError:
    """``isv.MOBILE_NUMBER_ILLEGAL``: the field is not a usable phone number
    (the value is never repeated: it is someone's number, or a mistyped one)."""
    return BusinessError("isv.MOBILE_NUMBER_ILLEGAL", f"{field}: {reason}")
