"""Parsers of the settings whose text has a format of its own (regions, URLs,
limits, times). Each takes the variable's name, for the error, and its text;
a value it cannot use is a SettingsError naming the variable."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

import phonenumbers

from config.declare import SettingsError

if TYPE_CHECKING:
    from maskline.outbound import IPNetwork

DEFAULT_API_RATE_LIMITS = {
    "bindings:write": "200/second",
    "bindings:read": "400/second",
    "calls:write": "10/second;300/hour",
    "waybills:read": "50/second",
    "pool:read": "10/second",
}


def parse_region(name: str, value: str) -> str:
    region = value.strip().upper()
    if len(region) != 2 or not region.isalpha():
        raise SettingsError(f"{name} must be a two-letter region code such as CN or US")
    # A typo such as UK (for GB) would otherwise refuse, or never match, every number.
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise SettingsError(f"{name}: {region} is not a region phonenumbers knows (e.g. GB, not UK)")
    return region


def parse_region_set(name: str, value: str) -> frozenset[str]:
    parts = [p for p in (s.strip() for s in value.split(",")) if p]
    return frozenset(parse_region(name, p) for p in parts)


def parse_number_types(name: str, value: str) -> frozenset[str]:
    """phonenumbers type names; ``premium-rate`` (as errors spell it) is PREMIUM_RATE."""
    types = frozenset(p.strip().upper().replace("-", "_") for p in value.split(",") if p.strip())
    for number_type in sorted(types):
        if number_type.startswith("_") or not isinstance(
            getattr(phonenumbers.PhoneNumberType, number_type, None), int
        ):
            raise SettingsError(f"{name}: {number_type} is not a phonenumbers number type")
    return types


VOICE_LANGUAGES = ("en-US", "zh-CN")
CONSOLE_LANGUAGES = ("en", "zh-CN")


def parse_console_language(name: str, value: str) -> str:
    """``en`` or ``zh-CN`` (``en-US``, ``zh``, ``zh_CN`` and any case accepted)."""
    lowered = value.strip().lower().replace("_", "-")
    if lowered in ("en", "en-us", "en-gb"):
        return "en"
    if lowered in ("zh", "zh-cn", "zh-hans", "zh-hans-cn"):
        return "zh-CN"
    raise SettingsError(f"{name} must be one of {', '.join(CONSOLE_LANGUAGES)}, not {value!r}")


API_SCOPES = ("bindings:write", "bindings:read", "calls:write", "waybills:read", "pool:read")
SMS_REDACTIONS = ("phones", "links")


def parse_public_url(name: str, value: str) -> str:
    url = value.strip().rstrip("/")
    if not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?\Z", url):
        raise SettingsError(f"{name} must be an http(s) URL such as https://relay.example.com")
    return url


def parse_sms_redact(name: str, value: str) -> frozenset[str]:
    """``phones,links`` (any subset) or ``none``; SettingsError names ``name``."""
    parts = frozenset(p.strip().lower() for p in value.split(",") if p.strip())
    if parts == {"none"}:
        return frozenset()
    unknown = sorted(parts - set(SMS_REDACTIONS))
    if unknown:
        raise SettingsError(f"{name} takes phones, links (comma-separated) or none, not {unknown[0]!r}")
    return parts


def parse_limit(name: str, value: str) -> str:
    """One Flask-Limiter limit string (``10/minute;100/hour``)."""
    from limits import parse_many

    try:
        parse_many(value)
    except ValueError:
        raise SettingsError(f"{name}: {value.strip()!r} is not a limit such as 10/minute;100/hour") from None
    return value.strip()


def parse_rate_limits(name: str, value: str) -> dict[str, str]:
    """``scope=limit;limit,scope=limit``: the scopes named replace their defaults."""
    from limits import parse_many

    limits = dict(DEFAULT_API_RATE_LIMITS)
    for item in filter(None, (part.strip() for part in value.split(","))):
        scope, sep, limit = item.partition("=")
        if not sep or scope.strip() not in API_SCOPES:
            raise SettingsError(f"{name}: each item is SCOPE=LIMIT with a scope of {', '.join(API_SCOPES)}")
        try:
            parse_many(limit)
        except ValueError:
            raise SettingsError(f"{name}: {limit.strip()!r} is not a limit such as 100/second") from None
        limits[scope.strip()] = limit.strip()
    return limits


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_working_hours(name: str, value: str) -> tuple[dt.time, dt.time]:
    """``08:00-19:00``: start inclusive, end exclusive, start before end."""
    match = re.match(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*\Z", value)
    try:
        if not match:
            raise ValueError
        start = dt.time(int(match.group(1)), int(match.group(2)))
        end = dt.time(int(match.group(3)), int(match.group(4)))
    except ValueError:
        raise SettingsError(f"{name} must be a range of times such as 08:00-19:00, not {value!r}") from None
    if start >= end:
        raise SettingsError(f"{name}: the start ({start:%H:%M}) must be before the end ({end:%H:%M})")
    return start, end


def parse_working_days(name: str, value: str) -> frozenset[int]:
    """``mon-fri`` or ``mon,wed,sat``: days as weekday numbers (Monday 0)."""
    days: set[int] = set()
    for part in filter(None, (p.strip().lower() for p in value.split(","))):
        first, _, last = part.partition("-")
        if first not in _WEEKDAYS or (last and last not in _WEEKDAYS):
            raise SettingsError(f"{name} takes days such as mon-fri or mon,wed,sat, not {part!r}")
        start, end = _WEEKDAYS.index(first), _WEEKDAYS.index(last or first)
        if end < start:
            raise SettingsError(f"{name}: {part!r} runs backwards")
        days.update(range(start, end + 1))
    if not days:
        raise SettingsError(f"{name} names no day")
    return frozenset(days)


def parse_timezone(name: str, value: str) -> str:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(value.strip())
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"{name}: {value!r} is not an IANA time zone such as Asia/Shanghai") from None
    return value.strip()


def parse_account_sid(name: str, value: str) -> str:
    if not re.match(r"^AC[0-9a-fA-F]{32}\Z", value.strip()):
        raise SettingsError(f"{name} must be an account SID: AC and 32 hex digits")
    return value.strip()


def parse_log_level(_name: str, value: str) -> str:
    return value.upper()


def parse_outbound_allow(name: str, value: str) -> tuple[IPNetwork, ...]:
    from maskline.outbound import parse_cidrs

    try:
        return parse_cidrs(name, value)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
