"""The console's languages (English, Simplified Chinese) and time zones.

Language, in order: the signed-in admin's own setting, the browser's
``Accept-Language``, ``MASKLINE_CONSOLE_LANGUAGE``. Time zone: the admin's
own, else ``MASKLINE_DISPLAY_TIMEZONE``. Every time the console shows
carries its offset (``2026-12-08 07:06 +08:00``).

The catalogues live in ``translations/`` beside this file: the ``.po`` is
edited, the ``.mo`` beside it is what runs (both are package data; a test
checks the ``.mo`` is the ``.po`` compiled).

Messages of errors raised below the console (accounts, reveals, bindings)
are written in English where they are raised; :func:`error_text` finds the
console's own words for them here, so the services stay free of Flask.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Callable, Mapping
from pathlib import Path

import phonenumbers
from babel import Locale
from flask import Flask, current_app, g, has_request_context, request
from flask_babel import Babel, get_locale, gettext
from phonenumbers import geocoder

from maskline.admin.interfaces import InvalidAdminInput
from maskline.admin.labels import ACTIONS, LABELS, N_, REFUSAL_REASONS
from maskline.clock import format_local

TRANSLATIONS = Path(__file__).parent / "translations"
# Console language (as settings, the database and <html lang> spell it) ->
# Babel's locale identifier (the catalogue's directory).
LOCALES: Mapping[str, str] = {"en": "en", "zh-CN": "zh_Hans_CN"}
_ACCEPTED = {"en": "en", "zh-CN": "zh-CN", "zh": "zh-CN", "zh-Hans": "zh-CN", "zh-Hans-CN": "zh-CN"}
# The names shown in the language picker are each in its own language.
LANGUAGE_NAMES: Mapping[str, str] = {"en": "English", "zh-CN": "简体中文"}

babel = Babel()


def console_language() -> str:
    """``en`` or ``zh-CN`` for this request (see the module's docstring)."""
    cached: str | None = g.get("console_language")
    if cached is not None:
        return cached
    chosen = None
    state = g.get("admin_state")
    if state is not None and state.language in LOCALES:
        chosen = state.language
    if chosen is None and has_request_context():
        best = request.accept_languages.best_match(list(_ACCEPTED))
        chosen = _ACCEPTED.get(best) if best else None
    if chosen is None:
        chosen = current_app.config.get("MASKLINE_CONSOLE_LANGUAGE", "en")
    g.console_language = chosen
    return str(chosen)


def console_zone() -> zoneinfo.ZoneInfo:
    """The zone this request's times are shown in."""
    state = g.get("admin_state")
    name = state.timezone if state is not None and state.timezone else None
    return zoneinfo.ZoneInfo(name or current_app.config.get("MASKLINE_DISPLAY_TIMEZONE", "UTC"))


def _locale_selector() -> str:
    return LOCALES[console_language()]


def when(value: dt.datetime | None, seconds: bool = False) -> str:
    """A time in the console's zone with its offset; empty for None."""
    return "" if value is None else format_local(value, console_zone(), seconds=seconds)


# -- codes the data holds, in the console's words ---------------------------------


def label(value: object) -> str:
    """The console's word for a stored code (the code itself if it has none)."""
    text = str(value)
    found = LABELS.get(text)
    return str(gettext(found)) if found is not None else text


def action(value: str) -> str:
    """An audit action in plain words (the code itself if the console has none)."""
    found = ACTIONS.get(value)
    return str(gettext(found)) if found is not None else value


def refusal(value: str) -> str:
    """Why a call or message reached no one, in plain words."""
    found = REFUSAL_REASONS.get(value)
    return str(gettext(found)) if found is not None else value


_ACTORS: Mapping[str, str] = {"anonymous": N_("anonymous"), "worker": N_("background worker")}


def actor(value: str) -> str:
    """Who did something, as the audit record names them; the two actors
    that are words (not ``kind:name`` ids) are translated."""
    found = _ACTORS.get(value)
    return str(gettext(found)) if found else value


def owner(value: str) -> str:
    """An owner as stored, except the built-in one (bindings made without an owner)."""
    return gettext("default (built-in)") if value == "default" else value


_WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def detail_value(key: str, value: object) -> str:
    """An alert's or audit record's detail for people: a day name in the
    console's language, an ISO time in the console's zone, a code in words,
    a list or a mapping item by item; other values as they are."""
    if isinstance(value, dict):
        return "; ".join(f"{label(k)}: {detail_value(str(k), v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(detail_value(key, v) for v in value)
    if isinstance(value, bool):
        return str(gettext("yes") if value else gettext("no"))
    if value is None:
        return "—"
    text = str(value)
    if key == "owner":
        return owner(text)
    if key == "weekday" and text in _WEEKDAY_NAMES:
        locale = get_locale() or Locale("en")
        return str(locale.days["format"]["wide"][_WEEKDAY_NAMES.index(text)])
    if key in ("mode", "role", "roles", "status", "via", "step", "refusal", "allow"):
        return label(text)
    if key in ("first_at", "last_at", "local_time", "until") or key.endswith("_at"):
        try:
            return when(dt.datetime.fromisoformat(text.replace("Z", "+00:00")), seconds=True)
        except ValueError:
            return text
    return text


def country_name(code: str) -> str:
    """``CN`` -> 中国 / China, in the console's language (the code if unknown)."""
    locale = get_locale() or Locale("en")
    return str(locale.territories.get(code, code))


def area_name(sample: str | None, area: str) -> str:
    """The city or province of a relay number's area, in the console's language.

    ``sample`` is one relay number of the area; phonenumbers' geocoder names
    its place (Shanghai for +86 21, not "21"). The stored area code is shown
    when the geocoder knows no name.
    """
    if not sample:
        return area
    try:
        number = phonenumbers.parse(sample, None)
    except phonenumbers.NumberParseException:
        return area
    language = "zh" if console_language() == "zh-CN" else "en"
    # Read as from inside the number's own country: the geocoder then names
    # the city or province, not the country.
    region = phonenumbers.region_code_for_number(number)
    place = geocoder.description_for_number(number, language, region=region)
    if not place or place == geocoder.country_name_for_number(number, language):
        return area if area.isdigit() else (place or area)
    # The area code stays beside the name (operators know both); an area
    # stored as an English place name (mobile ranges) is not repeated.
    return f"{place} ({area})" if area.isdigit() else str(place)


# -- errors raised below the console, in its words ------------------------------

# Field names that InvalidAdminInput carries.
FIELDS: Mapping[str, str] = {
    "reason": N_("reason"),
    "hours": N_("hours"),
    "role": N_("role"),
    "binding_id": N_("binding_id"),
    "name": N_("name"),
    "language": N_("language"),
    "timezone": N_("timezone"),
    "code": N_("code"),
    # the lists' filters, pages and bulk actions
    "since": N_("from"),
    "until": N_("until"),
    "actor": N_("who"),
    "action": N_("action"),
    "binding": N_("binding"),
    "relay": N_("relay number"),
    "outcome": N_("outcome"),
    "kind": N_("kind"),
    "subject": N_("subject"),
    "state": N_("state"),
    "status": N_("status"),
    "after": N_("page"),
    "before": N_("page"),
    "ids": N_("selection"),
}

# English messages (exact, or a pattern whose named groups fill the
# translation) -> the console's words. The patterns mirror the f-strings
# where the errors are raised (maskline.admin.accounts, .reveal, numbers).
_ERRORS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), m)
    for p, m in [
        (
            r"^wrong name or password, or the account is locked or disabled$",
            N_("Wrong name or password, or the account is locked or disabled."),
        ),
        (r"^a second factor is already enrolled$", N_("A second factor is already enrolled.")),
        (r"^enroll a second factor first$", N_("Enrol a second factor first.")),
        (r"^already enrolled$", N_("A second factor is already enrolled.")),
        (
            r"^that code is not right \(or was already used\); try the next one$",
            N_("That code is not right (or was already used); try the next one."),
        ),
        (r"^the session has ended; log in again$", N_("The session has ended; log in again.")),
        (
            r"^you cannot approve your own request: another security admin must$",
            N_("You cannot approve your own request: another security admin must."),
        ),
        (
            r"^you cannot deny your own request: cancel it instead$",
            N_("You cannot deny your own request: cancel it instead."),
        ),
        (
            r"^only the admin who made a request may cancel it$",
            N_("Only the admin who made a request may cancel it."),
        ),
        (
            r"^only the admin who made a request may view its number$",
            N_("Only the admin who made a request may view its number."),
        ),
        (
            r"^request (?P<id>\S+) is for another party's token$",
            N_("Request %(id)s is for another party's number."),
        ),
        (r"^the number cannot be opened: .*$", N_("The number cannot be opened.")),
        (r"^no reveal request (?P<id>\S+)$", N_("There is no reveal request %(id)s.")),
        (
            r"^request (?P<id>\S+) was already viewed: a number is shown once$",
            N_("Request %(id)s was already viewed: a number is shown once."),
        ),
        (
            r"^request (?P<id>\S+) lapsed at (?P<at>.+) without approval$",
            N_("Request %(id)s lapsed at %(at)s without approval."),
        ),
        (
            r"^the view window of request (?P<id>\S+) closed at (?P<at>.+)$",
            N_("The view window of request %(id)s closed at %(at)s."),
        ),
        (r"^request (?P<id>\S+) is not approved yet$", N_("Request %(id)s is not approved yet.")),
        (
            r"^request (?P<id>\S+) is (?P<status>[a-z]+), not (?P<wanted>[a-z ]+)$",
            N_("Request %(id)s is %(status)s, not %(wanted)s."),
        ),
        (
            r"^daily reveal limit reached: (?P<limit>\d+) requests .*$",
            N_(
                "Daily reveal limit reached: %(limit)s requests per admin per UTC day; "
                "the count starts again at 00:00 UTC."
            ),
        ),
        (
            r"^only security admins take part in a reveal$",
            N_("Only security admins take part in a reveal."),
        ),
        (r"^this account no longer exists$", N_("This account no longer exists.")),
        (r"^this account is disabled$", N_("This account is disabled.")),
        (r"^this account has no known role$", N_("This account has no known role.")),
        # reasons the reveal service writes on the audit record
        (r"^reveal request (?P<id>rv_\S+): (?P<why>.*)$", N_("reveal request %(id)s: %(why)s")),
        # InvalidAdminInput messages (the field is named separately)
        (r"^say why, in at least a few words$", N_("say why, in at least a few words")),
        (r"^say why, in at least (?P<n>\d+) characters$", N_("say why, in at least %(n)s characters")),
        (r"^must be at most (?P<n>\d+) characters$", N_("must be at most %(n)s characters")),
        (r"^must not contain control characters$", N_("must not contain control characters")),
        (r"^must be a whole number of hours$", N_("must be a whole number of hours")),
        (
            r"^must be between 1 and 2160 \(90 days\)$",
            N_("must be between 1 and 2160 (90 days)"),
        ),
        (r"^no binding has this id$", N_("no binding has this id")),
        (
            r"^this binding has no such party \(its parties: (?P<roles>.*)\)$",
            N_("this binding has no such party (its parties: %(roles)s)"),
        ),
        (
            r"^this party's number was erased: there is nothing to reveal$",
            N_("this party's number was erased: there is nothing to reveal"),
        ),
        (r"^must be one of .*$", N_("is not one of the console's choices")),
        (
            r"^must be an IANA time zone such as .*$",
            N_("must be an IANA time zone such as Asia/Shanghai or Europe/London"),
        ),
        # why the audit page's check starts from no signed checkpoint (maskline.audit.head)
        (r"^no checkpoint file or key configured$", N_("no checkpoint file or key configured")),
        (r"^no checkpoint yet$", N_("no checkpoint yet")),
        (r"^the signing key cannot be read$", N_("the signing key cannot be read")),
        (
            r"^the newest checkpoint is (?P<n>\d+) records behind$",
            N_("the newest checkpoint is %(n)s records behind"),
        ),
        (
            r"^the newest checkpoint's signature does not verify with the configured key$",
            N_("the newest checkpoint's signature does not verify with the configured key"),
        ),
        # the lists' filters and pages (maskline.admin.filters, .paging)
        (
            r"^must be a date \(2026-12-08\) or a date and time \(2026-12-08T14:30\)$",
            N_("must be a date (2026-12-08) or a date and time (2026-12-08T14:30)"),
        ),
        (r"^must be later than since$", N_("must be later than the start")),
        (
            r"^must be an actor such as admin:olga or key:shop-a$",
            N_("must be an actor such as admin:olga or key:shop-a"),
        ),
        (r"^must be an action such as binding.unbound$", N_("must be an action such as binding.unbound")),
        (r"^must be an id such as bd_0123456789abcdef$", N_("must be an id such as bd_0123456789abcdef")),
        (
            r"^must be a binding id such as bd_0123456789abcdef$",
            N_("must be a binding id such as bd_0123456789abcdef"),
        ),
        (
            r"^must be a relay number, national or with its country code$",
            N_("must be a relay number, national or with its country code"),
        ),
        (r"^is not a number of the pool$", N_("is not a number of the pool")),
        (
            r"^must be a status such as completed or no-answer$",
            N_("must be a status such as completed or no-answer"),
        ),
        (r"^must be open or acknowledged$", N_("must be open or acknowledged")),
        (r"^must be an alert kind such as binding_burst$", N_("must be an alert kind such as binding_burst")),
        (r"^must be active, locked or retired$", N_("must be active, locked or retired")),
        (
            r"^must be a reveal status such as pending or approved$",
            N_("must be a reveal status such as pending or approved"),
        ),
        (
            r"^is not a page of this list; start again from the first page$",
            N_("is not a page of this list; start again from the first page"),
        ),
        # bulk actions (maskline.admin.bulk)
        (r"^select at least one binding$", N_("select at least one binding")),
        (
            r"^select at most (?P<n>\d+) bindings at a time$",
            N_("select at most %(n)s bindings at a time"),
        ),
        (r"^must be binding ids from the list$", N_("must be binding ids from the list")),
        (r"^must be extend or unbind$", N_("must be extend or unbind")),
        (
            r"^the order was delivered: its binding cannot be extended$",
            N_("the order was delivered: its binding cannot be extended"),
        ),
        (
            r"^would end more than (?P<n>\d+) days from now \(the maximum\)$",
            N_("would end more than %(n)s days from now (the maximum)"),
        ),
        # numbers' errors that extend and unbind can raise
        (r"^(no binding|binding not found).*$", N_("There is no such binding.")),
        (r"^.*(has ended|is not live|already ended|not active).*$", N_("This binding has already ended.")),
    ]
]


def _shown(key: str, value: str) -> str:
    """A value taken out of an English message, as the console shows it."""
    if key == "at":
        # The services write "2026-12-08 00:00 UTC"; the console shows its own zone.
        try:
            utc = dt.datetime.strptime(value, "%Y-%m-%d %H:%M UTC").replace(tzinfo=dt.UTC)
        except ValueError:
            return value
        return when(utc)
    return label(value)


def _translated(message: str) -> str | None:
    for pattern, translation in _ERRORS:
        match = pattern.match(message)
        if match:
            values = {k: _shown(k, v) for k, v in match.groupdict().items()}
            return str(gettext(translation, **values))
    return None


def reason(value: str | None) -> str:
    """An audit record's reason: typed by an admin (shown as typed), or
    written by maskline itself (a refusal, a login failure: translated)."""
    if not value:
        return ""
    if console_language() == "en":
        return value
    if value in LABELS:
        return label(value)
    return _translated(value) or value


def error_text(exc: Exception) -> str:
    """An error raised below the console, in the console's language.

    In English it is the message as raised (scripts and tests match it). In
    Chinese a message this table does not know is shown after a generic
    Chinese sentence, rather than hidden.
    """
    if console_language() == "en":
        return str(exc)
    if isinstance(exc, InvalidAdminInput):
        field = FIELDS.get(exc.field)
        message = _translated(exc.message) or exc.message
        shown = gettext(field) if field else exc.field
        return str(gettext("%(field)s: %(message)s", field=shown, message=message))
    message = str(exc)
    found = _translated(message)
    if found is not None:
        return found
    return str(gettext("Refused: %(detail)s", detail=message))


def init_app(app: Flask, *, language: str, timezone: str) -> None:
    """Attach Flask-Babel with the console's selectors and template helpers."""
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "en")
    app.config["MASKLINE_CONSOLE_LANGUAGE"] = language
    app.config["MASKLINE_DISPLAY_TIMEZONE"] = timezone
    babel.init_app(app, locale_selector=_locale_selector)
    helpers: dict[str, Callable[..., str]] = {
        "when": when,
        "label": label,
        "owner": owner,
        "actor": actor,
        "reason": reason,
        "detail_value": detail_value,
        "action": action,
        "refusal": refusal,
        "country_name": country_name,
        "area_name": area_name,
    }
    app.jinja_env.filters.update(helpers)
    app.jinja_env.globals.update(helpers)
