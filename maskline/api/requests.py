"""Reading API request bodies into the numbers package's requests.

Every problem is collected and reported at once, each naming its field and
why; a submitted number is never quoted back.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Literal

import phonenumbers

from config import SMS_REDACTIONS, VOICE_LANGUAGES
from maskline.api.interfaces import BadRequest, FieldError, Unprocessable
from maskline.numbers.interfaces import MODES, BindRequest
from maskline.redaction import redact_phone_numbers
from maskline.vault.interfaces import InvalidPhoneNumber
from maskline.vault.services import VaultService

ROLE = re.compile(r"^[a-z][a-z0-9_]{0,31}\Z")
MAX_PARTIES = 10
MAX_ALLOWED = 20
MAX_ORDER_ID = 128
MIN_TTL_SECONDS = 60

CREATE_FIELDS = frozenset(
    {
        "order_id",
        "mode",
        "parties",
        "allow",
        "ttl_seconds",
        "expires_at",
        "fallback",
        "record",
        "sms_policy",
        "region",
        "language",
    }
)
PATCH_FIELDS = frozenset(
    {"ttl_seconds", "extend_by_seconds", "expires_at", "allow_shorten", "allow", "status", "region"}
)
# A PATCH moves the expiry by exactly one of these (or leaves it alone).
EXPIRY_FIELDS = ("ttl_seconds", "extend_by_seconds", "expires_at")


class _Errors:
    def __init__(self) -> None:
        self.items: list[FieldError] = []

    def add(self, field: str, reason: str) -> None:
        self.items.append(FieldError(field, reason))

    def raise_if_any(self) -> None:
        if self.items:
            raise Unprocessable(f"{len(self.items)} invalid field(s)", fields=self.items)


def order_id_problem(order_id: str) -> str | None:
    """Why ``order_id`` is not acceptable, or None."""
    if len(order_id) > MAX_ORDER_ID:
        return f"is longer than {MAX_ORDER_ID} characters"
    if any(ord(c) < 32 or ord(c) == 127 for c in order_id):
        return "must not contain control characters"
    return None


def shown_name(name: object, limit: int = 64) -> str:
    """A field or role name from the request, as an error may name it: cut to
    ``limit`` and with any phone number in it masked (``{"+1 415...": "buyer"}``,
    parties the wrong way round, must not come back with the number)."""
    return redact_phone_numbers(str(name)[: 4 * limit])[:limit]


def json_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _unknown(body: dict[str, Any], known: frozenset[str], errors: _Errors) -> None:
    for name in sorted(set(body) - known):
        errors.add(shown_name(name), "is not a field of this request")


def _region(body: dict[str, Any], errors: _Errors) -> str | None:
    region = body.get("region")
    if region is None:
        return None
    if not isinstance(region, str) or region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        errors.add("region", "must be a two-letter region code such as US or CN")
        return None
    return region.upper()


def _number(vault: VaultService, raw: Any, field: str, region: str | None, errors: _Errors) -> str | None:
    """Check one number now, so that every bad number is reported together;
    its E.164 form, or None."""
    if not isinstance(raw, str):
        errors.add(field, "must be a phone number as a string")
        return None
    try:
        return vault.normalize(raw, field=field, region=region)
    except InvalidPhoneNumber as exc:
        errors.add(exc.field, exc.reason)
        return None


def _allow(
    body: dict[str, Any], vault: VaultService, region: str | None, errors: _Errors
) -> list[str] | Literal["any"] | None:
    allow = body.get("allow")
    if allow is None or allow == "any":
        return allow
    if not isinstance(allow, list):
        errors.add("allow", 'must be a list of phone numbers or "any"')
        return None
    if len(allow) > MAX_ALLOWED:
        errors.add("allow", f"allows at most {MAX_ALLOWED} callers")
        return None
    # The E.164 forms (where one is bad, errors says so and none is used).
    return [_number(vault, raw, f"allow[{i}]", region, errors) or "" for i, raw in enumerate(allow)]


def _expiry(
    body: dict[str, Any], max_ttl: dt.timedelta, errors: _Errors
) -> tuple[dt.timedelta | None, dt.datetime | None]:
    ttl_raw, at_raw = body.get("ttl_seconds"), body.get("expires_at")
    if ttl_raw is not None and at_raw is not None:
        errors.add("ttl_seconds", "give ttl_seconds or expires_at, not both")
        return None, None
    ttl = None
    if ttl_raw is not None:
        longest = int(max_ttl.total_seconds())
        if isinstance(ttl_raw, bool) or not isinstance(ttl_raw, int):
            errors.add("ttl_seconds", "must be a whole number of seconds")
        elif not MIN_TTL_SECONDS <= ttl_raw <= longest:
            errors.add("ttl_seconds", f"must be between {MIN_TTL_SECONDS} and {longest}")
        else:
            ttl = dt.timedelta(seconds=ttl_raw)
    expires_at = None
    if at_raw is not None:
        expires_at = parse_timestamp(at_raw)
        if expires_at is None:
            errors.add("expires_at", "must be an RFC 3339 time with a time zone, e.g. 2026-12-01T18:00:00Z")
    return ttl, expires_at


def parse_timestamp(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        # Year 1 or 9999 with an offset has no UTC time: OverflowError, not a 500.
        return parsed.astimezone(dt.UTC) if parsed.tzinfo is not None else None
    except (ValueError, OverflowError):
        return None


def _sms_policy(body: dict[str, Any], errors: _Errors) -> tuple[frozenset[str] | None, Any]:
    policy = body.get("sms_policy")
    if policy is None:
        return None, None
    if not isinstance(policy, dict):
        errors.add("sms_policy", "must be an object with redact and/or media")
        return None, None
    for name in sorted(set(policy) - {"redact", "media"}):
        errors.add(f"sms_policy.{shown_name(name, 32)}", "is not a field of sms_policy")
    redact = policy.get("redact")
    redact_set = None
    if redact is not None:
        if not isinstance(redact, list) or not all(isinstance(r, str) for r in redact):
            errors.add("sms_policy.redact", f"must be a list of {', '.join(SMS_REDACTIONS)} (empty for none)")
        elif set(redact) - set(SMS_REDACTIONS):
            errors.add("sms_policy.redact", f"takes only {', '.join(SMS_REDACTIONS)}")
        else:
            redact_set = frozenset(redact)
    media = policy.get("media")
    if media is not None and media not in ("forward", "refuse"):
        errors.add("sms_policy.media", "must be forward or refuse")
        media = None
    return redact_set, media


def parse_create(body: Any, *, owner: str, vault: VaultService, max_ttl: dt.timedelta) -> BindRequest:
    """The BindRequest of a ``POST /v1/bindings`` body, or Unprocessable naming every bad field."""
    body = json_object(body)
    errors = _Errors()
    _unknown(body, CREATE_FIELDS, errors)
    region = _region(body, errors)
    order_id = body.get("order_id")
    if not isinstance(order_id, str) or not order_id.strip():
        errors.add("order_id", "is required: a non-empty string")
    elif problem := order_id_problem(order_id):
        errors.add("order_id", problem)
    mode = body.get("mode")
    if mode not in MODES:
        errors.add("mode", f"must be one of {', '.join(MODES)}")
    parties = body.get("parties")
    if not isinstance(parties, dict) or not parties:
        errors.add("parties", "is required: an object of role -> phone number")
        parties = {}
    elif len(parties) > MAX_PARTIES:
        errors.add("parties", f"has more than {MAX_PARTIES} roles")
        parties = {}
    elif mode == "axb" and len(parties) != 2:
        errors.add("parties", "an axb binding has exactly two parties")
    normalized: dict[str, str] = {}
    for role, raw in parties.items():
        if not ROLE.match(role):
            errors.add(
                f"parties.{shown_name(role, 32)}",
                "unknown role: roles are lower-case words (a-z, 0-9, _), at most 32",
            )
            continue
        normalized[role] = _number(vault, raw, f"parties.{role}", region, errors) or ""
    allow = _allow(body, vault, region, errors)
    ttl, expires_at = _expiry(body, max_ttl, errors)
    fallback = body.get("fallback")
    if fallback not in (None, "axe"):
        errors.add("fallback", 'the only fallback is "axe"')
    record = body.get("record", False)
    if not isinstance(record, bool):
        errors.add("record", "must be true or false")
    redact, media = _sms_policy(body, errors)
    language = body.get("language")
    if language is not None and language not in VOICE_LANGUAGES:
        errors.add("language", f"must be {' or '.join(VOICE_LANGUAGES)} (or left out for the deployment's)")
    errors.raise_if_any()
    return BindRequest(
        order_id=order_id,
        mode=mode,
        parties=normalized,
        owner=owner,
        allow=allow,
        ttl=ttl,
        expires_at=expires_at,
        fallback=fallback,
        region=region,
        record=record,
        sms_redact=redact,
        sms_media=media,
        # Every number was normalized above, under the vault's policy.
        normalized=True,
        language=language,
    )


@dataclass(frozen=True, kw_only=True)
class BindingChange:
    ttl: dt.timedelta | None
    extend_by: dt.timedelta | None
    expires_at: dt.datetime | None
    allow_shorten: bool
    allow: list[str] | Literal["any"] | None
    delivered: bool
    region: str | None


def parse_patch(body: Any, *, vault: VaultService, max_ttl: dt.timedelta) -> BindingChange:
    """The change a ``PATCH /v1/bindings/{id}`` body asks for.

    A body names at most one of ``EXPIRY_FIELDS``; several are a 400 that
    names them, as is a body that asks for no change at all.
    """
    body = json_object(body)
    expiry_given = [name for name in EXPIRY_FIELDS if body.get(name) is not None]
    if len(expiry_given) > 1:
        raise BadRequest(
            f"give exactly one of ttl_seconds, extend_by_seconds, expires_at; this body has "
            f"{', '.join(expiry_given)}",
            fields=[FieldError(name, "is one of several expiry fields") for name in expiry_given],
        )
    if not any(body.get(name) is not None for name in (*EXPIRY_FIELDS, "allow", "status")):
        raise BadRequest(
            "give exactly one of ttl_seconds, extend_by_seconds, expires_at (or allow, or status: delivered)",
            fields=[FieldError(name, "none was given") for name in EXPIRY_FIELDS],
        )
    errors = _Errors()
    _unknown(body, PATCH_FIELDS, errors)
    region = _region(body, errors)
    ttl, expires_at = _expiry(body, max_ttl, errors)
    extend_by = _extend_by(body, max_ttl, errors)
    allow_shorten = body.get("allow_shorten", False)
    if not isinstance(allow_shorten, bool):
        errors.add("allow_shorten", "must be true or false")
    allow = _allow(body, vault, region, errors)
    status = body.get("status")
    if status not in (None, "delivered"):
        errors.add("status", 'the only status an order system sets is "delivered"')
    errors.raise_if_any()
    return BindingChange(
        ttl=ttl,
        extend_by=extend_by,
        expires_at=expires_at,
        allow_shorten=allow_shorten is True,
        allow=allow,
        delivered=status == "delivered",
        region=region,
    )


def _extend_by(body: dict[str, Any], max_ttl: dt.timedelta, errors: _Errors) -> dt.timedelta | None:
    raw = body.get("extend_by_seconds")
    if raw is None:
        return None
    longest = int(max_ttl.total_seconds())
    if isinstance(raw, bool) or not isinstance(raw, int):
        errors.add("extend_by_seconds", "must be a whole number of seconds")
    elif not 1 <= raw <= longest:
        errors.add("extend_by_seconds", f"must be between 1 and {longest}")
    else:
        return dt.timedelta(seconds=raw)
    return None
