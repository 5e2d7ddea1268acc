"""Honest expiry changes from the console (issue 20): "extend by", "set expiry
to" and "end after the delivery grace", each shown as old -> new on a
confirmation page before anything changes.

A change that makes the expiry earlier is allowed (ending a binding at the
delivery grace is an everyday courier control) but never silent: the
confirmation page says it shortens, and only its "Shorten" button sends
``confirm=shorten``. Without it the numbers service refuses with nothing
changed, so a stale page or a hand-made POST cannot shorten by accident.
"""

from __future__ import annotations

import datetime as dt

from flask import flash, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from maskline.admin import i18n
from maskline.admin.interfaces import AdminError, InvalidAdminInput
from maskline.admin.views import _back, _ctx, _known_shape, _me, _reason, bp, requires
from maskline.numbers.interfaces import NumbersError, WouldShorten

HOW = ("extend_by", "set_to", "grace")
MAX_HOURS = 24 * 90


def _hours(raw: str | None) -> int:
    try:
        hours = int((raw or "").strip())
    except ValueError:
        raise InvalidAdminInput("hours", "must be a whole number of hours") from None
    if not 1 <= hours <= MAX_HOURS:
        raise InvalidAdminInput("hours", "must be between 1 and 2160 (90 days)")
    return hours


def _local_time(raw: str | None) -> dt.datetime:
    """A ``datetime-local`` value, read in the console's zone, as UTC."""
    try:
        naive = dt.datetime.fromisoformat((raw or "").strip())
    except ValueError:
        raise InvalidAdminInput("until", "must be a date and time such as 2026-12-24T18:00") from None
    if naive.tzinfo is not None:
        raise InvalidAdminInput("until", "must be a date and time such as 2026-12-24T18:00")
    return naive.replace(tzinfo=i18n.console_zone()).astimezone(dt.UTC)


def proposed_expiry(
    how: str,
    *,
    current: dt.datetime,
    now: dt.datetime,
    grace: dt.timedelta,
    hours: str | None,
    until: str | None,
) -> dt.datetime:
    """The expiry a form asks for; InvalidAdminInput names the bad field."""
    if how == "extend_by":
        return current + dt.timedelta(hours=_hours(hours))
    if how == "set_to":
        return _local_time(until)
    if how == "grace":
        return now + grace
    raise InvalidAdminInput("how", f"must be one of {', '.join(HOW)}")


def _span(delta: dt.timedelta) -> str:
    """A duration in whole hours and minutes (e.g. "2 h 30 min")."""
    minutes = round(abs(delta).total_seconds() / 60)
    hours, minutes = divmod(minutes, 60)
    return str(_("%(h)s h %(m)s min", h=hours, m=minutes) if minutes else _("%(h)s h", h=hours))


@bp.post("/bindings/<binding_id>/expiry/preview")
@requires("bindings.change")
def expiry_preview(binding_id: str) -> ResponseReturnValue:
    """The confirmation page: old -> new, and whether it shortens."""
    _known_shape(binding_id)
    services = _ctx().services
    here = url_for("admin.binding", binding_id=binding_id)
    try:
        reason = _reason()
        current = services.numbers.bindings.get(binding_id).expires_at
        new = proposed_expiry(
            request.form.get("how", ""),
            current=current,
            now=services.clock(),
            grace=services.settings.delivery_grace,
            hours=request.form.get("hours"),
            until=request.form.get("until"),
        )
    except (AdminError, NumbersError) as exc:
        flash(i18n.error_text(exc), "error")
        return _back(here)
    return render_template(
        "admin/expiry_confirm.html",
        binding_id=binding_id,
        current=current,
        new=new,
        shortens=new < current,
        difference=_span(new - current),
        new_iso=new.astimezone(dt.UTC).isoformat(),
        reason=reason,
    )


@bp.post("/bindings/<binding_id>/expiry")
@requires("bindings.change")
def expiry_change(binding_id: str) -> ResponseReturnValue:
    """Apply a confirmed change; shortening only with ``confirm=shorten``."""
    _known_shape(binding_id)
    services = _ctx().services
    here = url_for("admin.binding", binding_id=binding_id)
    try:
        reason = _reason()
        try:
            new = dt.datetime.fromisoformat(request.form.get("expires_at", ""))
        except ValueError:
            raise InvalidAdminInput("expires_at", "is not a time; start again from the binding") from None
        if new.tzinfo is None:
            raise InvalidAdminInput("expires_at", "is not a time; start again from the binding")
        change = services.numbers.bindings.change(
            binding_id,
            expires_at=new,
            allow_shorten=request.form.get("confirm") == "shorten",
            actor=_me().actor,
            reason=reason,
        )
    except WouldShorten as exc:
        flash(
            _(
                "Nothing changed: this would shorten the binding from %(old)s to %(new)s. "
                "Confirm with “Shorten” to mean it.",
                old=i18n.when(exc.current),
                new=i18n.when(exc.requested),
            ),
            "error",
        )
        return _back(here)
    except (AdminError, NumbersError) as exc:
        flash(i18n.error_text(exc), "error")
        return _back(here)
    flash(
        _(
            "Expiry changed: %(old)s → %(new)s.",
            old=i18n.when(change.previous_expires_at),
            new=i18n.when(change.view.expires_at),
        ),
        "info",
    )
    return _back(here)
