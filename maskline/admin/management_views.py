"""The console pages of the ``admin`` role: accounts (with changes waiting for
a second admin), owners and API keys. The rules live in
maskline.admin.management; these pages only read forms and show results.

A new API key is shown once, in the response to the POST that made it:
never in a redirect, a flash message or the session.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import flash, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _

from config import API_SCOPES
from maskline.admin import i18n
from maskline.admin.interfaces import ROLES, AdminError
from maskline.admin.management import AccountManagement, ChangeView
from maskline.admin.views import _back, _ctx, _me, bp, requires
from maskline.events.interfaces import EventsError


def _management() -> AccountManagement:
    management: AccountManagement = _ctx().services.admin.management
    return management


def _form(name: str) -> str:
    return (request.form.get(name) or "").strip()


def _done(step: Callable[[], object], *, done: str, back: str) -> ResponseReturnValue:
    """Run ``step``; flash ``done`` or the refusal; back to ``back``."""
    try:
        result = step()
    except (AdminError, EventsError) as exc:
        flash(i18n.error_text(exc), "error")
        return _back(back)
    if isinstance(result, ChangeView):
        flash(_("Waiting for a second admin: change %(id)s.", id=result.id), "info")
    else:
        flash(done, "info")
    return _back(back)


# -- console accounts ------------------------------------------------------------------


@bp.get("/accounts")
@requires("manage")
def accounts() -> ResponseReturnValue:
    return render_template(
        "admin/accounts.html",
        users=_ctx().accounts.users(),
        changes=_management().changes(),
        roles=ROLES,
    )


@bp.post("/accounts/users")
@requires("manage")
def create_account() -> ResponseReturnValue:
    name = _form("name").lower()
    return _done(
        lambda: _management().create_user(
            _me(),
            name=name,
            role=_form("role"),
            password=request.form.get("password") or "",
            reason=_form("reason"),
        ),
        done=_("Account %(name)s created.", name=name),
        back=url_for("admin.accounts"),
    )


@bp.post("/accounts/users/<name>/role")
@requires("manage")
def set_account_role(name: str) -> ResponseReturnValue:
    return _done(
        lambda: _management().set_role(_me(), name, _form("role"), reason=_form("reason")),
        done=_("Role of %(name)s changed.", name=name),
        back=url_for("admin.accounts"),
    )


@bp.post("/accounts/users/<name>/disable")
@requires("manage")
def disable_account(name: str) -> ResponseReturnValue:
    return _done(
        lambda: _management().disable_user(_me(), name, reason=_form("reason")),
        done=_("Account %(name)s disabled; its sessions have ended.", name=name),
        back=url_for("admin.accounts"),
    )


@bp.post("/accounts/users/<name>/reset")
@requires("manage")
def reset_account(name: str) -> ResponseReturnValue:
    return _done(
        lambda: _management().request_reset(
            _me(),
            name,
            what=_form("what"),
            reason=_form("reason"),
            password=request.form.get("password") or "",
        ),
        done="",
        back=url_for("admin.accounts"),
    )


@bp.post("/accounts/changes/<change_id>/approve")
@requires("manage")
def approve_change(change_id: str) -> ResponseReturnValue:
    return _done(
        lambda: _management().approve(_me(), change_id) and None,
        done=_("Change approved and applied."),
        back=url_for("admin.accounts"),
    )


@bp.post("/accounts/changes/<change_id>/decline")
@requires("manage")
def decline_change(change_id: str) -> ResponseReturnValue:
    return _done(
        lambda: _management().decline(_me(), change_id) and None,
        done=_("Change declined."),
        back=url_for("admin.accounts"),
    )


# -- owners and API keys ------------------------------------------------------------------


@bp.get("/owners")
@requires("manage")
def owners() -> ResponseReturnValue:
    management = _management()
    return render_template(
        "admin/owners.html",
        owners=management.owners.list_owners(),
        keys=management.keys.list(),
        scopes=API_SCOPES,
        created=None,
    )


@bp.post("/owners")
@requires("manage")
def create_owner() -> ResponseReturnValue:
    name = _form("name")
    return _done(
        lambda: _management().create_owner(_me(), name),
        done=_("Owner %(name)s created.", name=name),
        back=url_for("admin.owners"),
    )


@bp.post("/keys")
@requires("manage")
def create_key() -> ResponseReturnValue:
    management = _management()
    try:
        key, info = management.create_key(
            _me(), owner=_form("owner"), name=_form("name"), scopes=request.form.getlist("scope")
        )
    except (AdminError, EventsError) as exc:
        flash(i18n.error_text(exc), "error")
        return _back(url_for("admin.owners"))
    return render_template("admin/key_created.html", key=key, info=info)


@bp.post("/keys/<key_id>/revoke")
@requires("manage")
def revoke_key(key_id: str) -> ResponseReturnValue:
    return _done(
        lambda: _management().revoke_key(_me(), key_id, reason=_form("reason")) and None,
        done=_("Key %(id)s revoked.", id=key_id),
        back=url_for("admin.owners"),
    )
