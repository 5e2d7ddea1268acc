"""The Twilio Proxy v1 face's contract: sids, and the errors it answers with.

Every error is Twilio's error body ``{code, message, more_info, status}``
(what the SDK turns into ``TwilioRestException``)::

    ProxyError
    ├── InvalidParameter     400  20001  a field is missing or invalid (named; nothing changed)
    ├── NoProxyNumber        400  802xx  no number of the Service can take the session
    │                              (Proxy's own codes: 80205 none, 80207 only reserved,
    │                              80203 none in the country, 80206 none in the area,
    │                              80208 all in use; 80601 a named number not in the Service)
    ├── ProxyRule            400  80xxx  Proxy's own refusals: 80103 already a participant,
    │                              80609 a third participant, 80607 session closed,
    │                              80608 not a valid status change, 80801 cannot reopen,
    │                              80604 the proxy number is in use for this participant
    ├── Unauthenticated      401  20003  no or wrong account sid / auth token
    ├── PermissionDenied     403  20403  the credentials' key lacks the scope
    ├── ResourceNotFound     404  20404  no such resource for these credentials' owner
    ├── MethodNotAllowed     405  20004  the resource does not take that method
    ├── ResourceConflict     409  20409  unique name taken, session closed, pool exhausted
    ├── TooManyRequests      429  20429  the binding's message quota is used up, or the
    │                              owner's cap of live bindings (``owner_limit_reached: ...``)
    │   └── RateLimited           429  20429  the key's rate limit in the scope (Retry-After)
    ├── UpstreamFailed       502  20500  Twilio refused or could not be reached (messages)
    └── ServiceUnavailable   503  20503  Redis or the database cannot be reached; retry

No message carries a party number: errors name the field, never quote it.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from maskline import errors

BASE_PATH = "/twilio-proxy/v1"
PROXY_HOST = "proxy.twilio.com"

SID_PREFIXES = {
    "account": "AC",
    "service": "KS",
    "phone_number": "PN",
    "session": "KC",
    "participant": "KP",
    "interaction": "KI",
}
_SID = re.compile(r"^[A-Z]{2}[0-9a-f]{32}\Z")


def new_sid(kind: str) -> str:
    return SID_PREFIXES[kind] + secrets.token_hex(16)


def is_sid(value: object, kind: str) -> bool:
    return isinstance(value, str) and _SID.match(value) is not None and value[:2] == SID_PREFIXES[kind]


def derived_sid(kind: str, source: str) -> str:
    """A stable sid for something maskline names otherwise (a relay number's
    PN sid from its E.164 form; an interaction's KI sid from its CallSid /
    MessageSid). Not secret: what it is derived from is public."""
    return SID_PREFIXES[kind] + hashlib.sha256(f"{kind}:{source}".encode()).hexdigest()[:32]


class ProxyError(errors.MasklineError):
    status = 500
    code = 20500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


class InvalidParameter(ProxyError, errors.InputError):
    status, code = 400, 20001


class NoProxyNumber(ProxyError, errors.Conflict):
    """No number of the Service can take the session, with Proxy's own code."""

    status = 400
    NO_NUMBERS = 80205  # "No Proxies For Service"
    ONLY_RESERVED = 80207  # "No unreserved numbers in proxy pool"
    NONE_IN_COUNTRY = 80203  # "No Available Proxy For Country"
    NONE_IN_AREA = 80206  # "No Available Proxy" (GeoMatchLevel)
    ALL_IN_USE = 80208  # "No Available Unused Proxy"
    NOT_IN_SERVICE = 80601  # "Phone Number Not Available" (a named ProxyIdentifier)

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class ProxyRule(ProxyError, errors.Conflict):
    """A request Proxy refuses with a code of its own dictionary (400)."""

    status = 400
    ALREADY_IN_SESSION = 80103  # "Participant Already In Session"
    PROXY_IDENTIFIER_IN_USE = 80604  # "Proxy Identifier In Use"
    SESSION_CLOSED = 80607  # "Session Closed": it cannot be updated
    STATUS_INVALID = 80608  # "Session Status Invalid": not a valid status change
    TOO_MANY_PARTICIPANTS = 80609  # "Too Many Added Participants"
    REOPEN_INVALID = 80801  # "Invalid attempt to Re-Open a Session"

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Unauthenticated(ProxyError, errors.Forbidden):
    status, code = 401, 20003


class PermissionDenied(ProxyError, errors.Forbidden):
    status, code = 403, 20403


class ResourceNotFound(ProxyError, errors.NotFound):
    status, code = 404, 20404


class MethodNotAllowed(ProxyError):
    status, code = 405, 20004


class ResourceConflict(ProxyError, errors.Conflict):
    status, code = 409, 20409


class TooManyRequests(ProxyError):
    status, code = 429, 20429


class RateLimited(TooManyRequests):
    """Past the credentials' key's rate limit in a scope; answered with ``Retry-After``."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("Too Many Requests")
        self.retry_after = retry_after


class UpstreamFailed(ProxyError):
    status, code = 502, 20500


class ServiceUnavailable(ProxyError, errors.Unavailable):
    status, code = 503, 20503
