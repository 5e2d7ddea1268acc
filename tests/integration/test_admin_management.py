"""The ``admin`` role (issue 20): accounts, owners and API keys from the
console, every action audited, and dual control kept."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from sqlalchemy import select

from maskline import services_of
from maskline.admin.interfaces import AdminIdentity, NotPermitted
from maskline.admin.management import AccountManagement, ChangeRefused
from maskline.admin.models import AdminUser
from maskline.audit.models import AuditRecord
from tests.integration.admin_helpers import PASSWORD, Console, make_admin
from tests.integration.api_helpers import ApiClient

NEW_PASSWORD = "a much longer passphrase 2026"
WHY = "new colleague on the desk"


def management(app: Flask) -> AccountManagement:
    return services_of(app).admin.management


def who(app: Flask, name: str) -> AdminIdentity:
    return services_of(app).admin.reveals.identity(name)


def user(app: Flask, name: str) -> AdminUser | None:
    with services_of(app).db.session() as session:
        found = session.scalar(select(AdminUser).where(AdminUser.name == name))
        if found is not None:
            session.expunge(found)
        return found


def actions(app: Flask) -> list[tuple[str, str, str]]:
    with services_of(app).db.session() as session:
        rows = session.execute(select(AuditRecord.actor, AuditRecord.action, AuditRecord.subject)).all()
    return [tuple(r) for r in rows]


@pytest.fixture
def admins(app: Flask) -> tuple[AdminIdentity, AdminIdentity]:
    make_admin(app, "ada", "admin")
    make_admin(app, "abe", "admin")
    return who(app, "ada"), who(app, "abe")


def test_a_lesser_account_is_created_at_once_and_audited(app: Flask, admins) -> None:
    ada, _abe = admins
    assert management(app).create_user(ada, name="vic", role="viewer", password=PASSWORD, reason=WHY) is None
    assert user(app, "vic").role == "viewer"
    assert ("admin:ada", "admin.user.create", "admin:vic") in actions(app)


@pytest.mark.parametrize("role", ["security", "admin"])
def test_a_trusted_account_waits_for_a_second_admin(app: Flask, admins, role: str) -> None:
    ada, abe = admins
    change = management(app).create_user(ada, name="sid", role=role, password=PASSWORD, reason=WHY)
    assert change is not None and change.status == "pending"
    assert user(app, "sid") is None
    with pytest.raises(ChangeRefused, match="nobody approves their own change"):
        management(app).approve(ada, change.id)
    assert user(app, "sid") is None
    approved = management(app).approve(abe, change.id)
    assert (approved.status, approved.requested_by, approved.decided_by) == ("approved", "ada", "abe")
    assert user(app, "sid").role == role
    assert Console(app).login("sid").status_code == 303  # with the password ada chose
    trail = actions(app)
    assert ("admin:ada", "admin.change.request", "admin:sid") in trail
    assert ("admin:abe", "admin.change.approve", "admin:sid") in trail
    assert ("admin:abe", "admin.user.create", "admin:sid") in trail
    with pytest.raises(ChangeRefused, match="no longer pending"):
        management(app).approve(abe, change.id)


def test_granting_a_trusted_role_waits_lesser_roles_do_not(app: Flask, admins) -> None:
    ada, abe = admins
    make_admin(app, "olga", "operator")
    change = management(app).set_role(ada, "olga", "security", reason=WHY)
    assert change is not None and user(app, "olga").role == "operator"
    management(app).approve(abe, change.id)
    assert user(app, "olga").role == "security"
    assert management(app).set_role(ada, "olga", "viewer", reason=WHY) is None
    assert user(app, "olga").role == "viewer"


@pytest.mark.parametrize("what", ["totp", "password"])
def test_resetting_another_account_waits_and_own_is_refused(app: Flask, admins, what: str) -> None:
    ada, abe = admins
    make_admin(app, "sam", "security")
    before = user(app, "sam").password_hash
    change = management(app).request_reset(ada, "sam", what=what, reason=WHY, password=NEW_PASSWORD)
    assert user(app, "sam").password_hash == before
    with pytest.raises(ChangeRefused):
        management(app).request_reset(ada, "ada", what=what, reason=WHY, password=NEW_PASSWORD)
    management(app).approve(abe, change.id)
    if what == "password":
        assert Console(app).login("sam", NEW_PASSWORD).status_code == 303
    action = "admin.user.totp_reset" if what == "totp" else "admin.user.password_reset"
    assert ("admin:abe", action, "admin:sam") in actions(app)


def test_nobody_approves_a_change_to_their_own_account(app: Flask, admins) -> None:
    ada, abe = admins
    change = management(app).request_reset(ada, "abe", what="password", reason=WHY, password=NEW_PASSWORD)
    with pytest.raises(ChangeRefused, match="their own account"):
        management(app).approve(abe, change.id)


def test_declining_denies_or_withdraws(app: Flask, admins) -> None:
    ada, abe = admins
    first = management(app).create_user(ada, name="sid", role="security", password=PASSWORD, reason=WHY)
    second = management(app).create_user(ada, name="sue", role="security", password=PASSWORD, reason=WHY)
    assert management(app).decline(abe, first.id).status == "denied"
    assert management(app).decline(ada, second.id).status == "cancelled"
    with pytest.raises(ChangeRefused):
        management(app).approve(abe, first.id)
    assert user(app, "sid") is None and user(app, "sue") is None


@pytest.mark.parametrize("role", ["viewer", "operator", "security"])
def test_only_admins_manage(app: Flask, role: str) -> None:
    make_admin(app, "someone", role)
    with pytest.raises(NotPermitted):
        management(app).create_user(
            who(app, "someone"), name="vic", role="viewer", password=PASSWORD, reason=WHY
        )


def test_a_demoted_admin_loses_the_right_at_once(app: Flask, admins) -> None:
    ada, abe = admins
    management(app).set_role(abe, "ada", "viewer", reason=WHY)
    with pytest.raises(NotPermitted):
        management(app).create_owner(ada, "shop-z")


def logged_in_admin(app: Flask, name: str = "ada") -> Console:
    browser = Console(app)
    assert browser.login(name).status_code == 303
    assert browser.enroll(services_of(app).clock()).status_code == 303  # admins use a second factor
    return browser


def test_an_admin_holds_no_reveal_rights(app: Flask, admins, bind) -> None:
    browser = logged_in_admin(app)
    view = bind()
    assert browser.get("/admin/reveals").status_code == 403
    reply = browser.post(f"/admin/bindings/{view.id}/reveal", {"role": "buyer", "reason": "just curious, ok"})
    assert reply.status_code == 403
    with pytest.raises(NotPermitted):
        services_of(app).admin.reveals.request(admins[0], binding_id=view.id, role="buyer", reason=WHY)


def test_an_admin_creates_a_key_shown_once_that_works(app: Flask, admins) -> None:
    browser = logged_in_admin(app)
    assert browser.post("/admin/owners", {"name": "shop-z"}).status_code == 303
    page = browser.post(
        "/admin/keys", {"owner": "shop-z", "name": "order system", "scope": ["bindings:read"]}
    ).get_data(as_text=True)
    key = re.search(r'id="new-key">(ml_[A-Za-z0-9_-]+)<', page).group(1)
    assert ApiClient(app, key).get("/v1/bindings").status == 200
    listing = browser.text("/admin/owners")
    assert key not in listing and key.split("_")[1] in listing  # its id only
    key_id = key.split("_")[1]
    trail = actions(app)
    assert ("admin:ada", "owner.create", "shop-z") in trail
    assert ("admin:ada", "apikey.created", key_id) in trail
    assert browser.post(f"/admin/keys/{key_id}/revoke", {"reason": "leaked in a ticket"}).status_code == 303
    assert ("admin:ada", "apikey.revoked", key_id) in actions(app)


def test_a_key_needs_an_existing_owner_and_a_scope(app: Flask, admins) -> None:
    ada, _ = admins
    from maskline.admin.interfaces import InvalidAdminInput

    with pytest.raises(InvalidAdminInput, match="owner"):
        management(app).create_key(ada, owner="nobody", name="x", scopes=["bindings:read"])
    management(app).create_owner(ada, "shop-z")
    with pytest.raises(InvalidAdminInput, match="scope"):
        management(app).create_key(ada, owner="shop-z", name="x", scopes=[])


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_the_management_pages_are_for_admins_only(app: Flask, role: str) -> None:
    make_admin(app, "someone", role)
    browser = Console(app)
    browser.login("someone")
    for page in ("/admin/accounts", "/admin/owners"):
        assert browser.get(page).status_code == 403
    assert browser.post("/admin/accounts/users", {"name": "x1", "role": "viewer"}).status_code == 403
    assert browser.post("/admin/keys", {"owner": "o", "name": "n"}).status_code == 403


def test_the_console_flow_of_a_pending_account(app: Flask, admins) -> None:
    ada = logged_in_admin(app, "ada")
    abe = logged_in_admin(app, "abe")
    form = {"name": "sid", "role": "security", "password": PASSWORD, "reason": WHY}
    ada.post("/admin/accounts/users", form)
    page = ada.text("/admin/accounts")
    change_id = re.search(r'id="change-(ac_\w+)"', page).group(1)
    row = re.search(rf'<tr id="change-{change_id}">(.*?)</tr>', page, re.S).group(1)
    assert "Approve" not in row and "Withdraw" in row  # not offered to the requester
    assert ada.post(f"/admin/accounts/changes/{change_id}/approve").status_code == 303
    assert user(app, "sid") is None
    abe.post(f"/admin/accounts/changes/{change_id}/approve")
    assert user(app, "sid").role == "security"
