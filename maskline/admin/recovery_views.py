"""The console's recovery-code page: how many are left, and a new set shown
once (in the POST's response only: never a redirect, a flash or the session)."""

from __future__ import annotations

from flask import abort, flash, g, redirect, render_template, session, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from maskline.admin import i18n
from maskline.admin.accounts import SessionState
from maskline.admin.interfaces import SecondFactorRefused
from maskline.admin.views import _ctx, bp


def _enrolled() -> SessionState:
    state: SessionState = g.admin_state
    if not state.totp_enrolled:
        abort(404)  # an account without a second factor has no recovery codes
    return state


@bp.get("/recovery-codes")
def recovery_codes() -> ResponseReturnValue:
    _enrolled()
    left = _ctx().accounts.recovery_codes_left(session["sid"])
    return render_template("admin/recovery_codes.html", codes=None, left=left)


@bp.post("/recovery-codes")
def new_recovery_codes() -> ResponseReturnValue:
    _enrolled()
    try:
        codes = _ctx().accounts.issue_recovery_codes(session["sid"])
    except SecondFactorRefused as exc:
        flash(i18n.error_text(exc), "error")
        return redirect(url_for("admin.recovery_codes"), code=303)
    flash(_("New recovery codes made: the old ones no longer work."), "info")
    return render_template("admin/recovery_codes.html", codes=codes, left=len(codes))
