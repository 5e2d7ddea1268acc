"""Console accounts: passwords, lockout, TOTP, sessions; each guard on its own."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import pyotp
import pytest
from sqlalchemy import select, text

from maskline.admin.accounts import AdminAccounts
from maskline.admin.interfaces import AdminExists, InvalidAdminInput, LoginRefused, SecondFactorRefused
from maskline.admin.models import AdminUser
from maskline.audit.models import AuditRecord
from maskline.clock import FixedClock
from maskline.wiring import Services

PASSWORD = "correct horse battery staple"


@pytest.fixture
def failed() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def accounts(services: Services, clock: FixedClock, failed: list[dict[str, Any]]) -> AdminAccounts:
    return AdminAccounts(
        db=services.db,
        keys=services.keys,
        audit=services.audit,
        settings=services.settings,
        clock=clock,
        on_failed_login=lambda **kw: failed.append(kw),
    )


def actions(services: Services) -> list[tuple[str, str, str]]:
    with services.db.session() as session:
        return [
            tuple(r)
            for r in session.execute(select(AuditRecord.actor, AuditRecord.action, AuditRecord.subject))
        ]


@pytest.mark.parametrize(
    ("name", "role", "password", "field"),
    [
        ("Vera", "viewer", PASSWORD, "name"),
        ("v", "viewer", PASSWORD, "name"),
        ("vera smith", "viewer", PASSWORD, "name"),
        ("vera", "root", PASSWORD, "role"),
        ("vera", "viewer", "short", "password"),
        ("vera", "viewer", "vera-vera-vera-vera", "password"),
        ("vera", "viewer", "aaaaaaaaaaaaaaaa", "password"),
    ],
)
def test_bad_account_input_names_the_field_and_creates_nothing(
    accounts: AdminAccounts, services: Services, name: str, role: str, password: str, field: str
) -> None:
    with pytest.raises(InvalidAdminInput) as caught:
        accounts.create_user(name=name, role=role, password=password, actor="test")
    assert caught.value.field == field
    assert accounts.users() == []
    assert actions(services) == []


def test_a_name_is_taken_once(accounts: AdminAccounts) -> None:
    accounts.create_user(name="vera", role="viewer", password=PASSWORD, actor="test")
    with pytest.raises(AdminExists):
        accounts.create_user(name="vera", role="operator", password=PASSWORD, actor="test")


def test_passwords_are_stored_as_argon2id_only(accounts: AdminAccounts, services: Services) -> None:
    accounts.create_user(name="vera", role="viewer", password=PASSWORD, actor="cli:root")
    with services.db.session() as session:
        stored = session.scalars(select(AdminUser.password_hash)).one()
    assert stored.startswith("$argon2id$") and "m=65536" in stored
    assert PASSWORD not in stored
    assert ("cli:root", "admin.user.create", "admin:vera") in actions(services)


def test_login_opens_a_session_and_is_on_record(accounts: AdminAccounts, services: Services) -> None:
    accounts.create_user(name="vera", role="viewer", password=PASSWORD, actor="test")
    raw, state = accounts.login("vera", PASSWORD)
    assert state.complete and state.identity.name == "vera"
    assert accounts.session_state(raw) is not None
    assert accounts.session_state(raw + "x") is None
    assert ("admin:vera", "admin.login", "admin:vera") in actions(services)


def test_failures_lock_the_account_then_the_lock_lifts(
    accounts: AdminAccounts, services: Services, clock: FixedClock, failed: list[dict[str, Any]]
) -> None:
    accounts.create_user(name="vera", role="viewer", password=PASSWORD, actor="test")
    limit = services.settings.admin_max_failed_logins
    for _ in range(limit):
        with pytest.raises(LoginRefused):
            accounts.login("vera", "wrong password guess")
    with pytest.raises(LoginRefused):
        accounts.login("vera", PASSWORD)  # locked: even the right password
    assert len(failed) == limit + 1 and failed[0] == {"account": "admin:vera", "at": clock()}
    clock.advance(seconds=services.settings.admin_lockout.total_seconds() + 1)
    accounts.login("vera", PASSWORD)


def test_failures_below_the_limit_do_not_lock(accounts: AdminAccounts, services: Services) -> None:
    accounts.create_user(name="vera", role="viewer", password=PASSWORD, actor="test")
    for _ in range(services.settings.admin_max_failed_logins - 1):
        with pytest.raises(LoginRefused):
            accounts.login("vera", "wrong password guess")
    accounts.login("vera", PASSWORD)
    # A success resets the count: as many failures again still do not lock.
    for _ in range(services.settings.admin_max_failed_logins - 1):
        with pytest.raises(LoginRefused):
            accounts.login("vera", "wrong password guess")
    accounts.login("vera", PASSWORD)


def test_an_unknown_name_is_recorded_without_the_name_typed(
    accounts: AdminAccounts, services: Services, failed: list[dict[str, Any]]
) -> None:
    with pytest.raises(LoginRefused):
        accounts.login("+14155550132", "whatever it is")
    assert actions(services) == [("anonymous", "admin.login.fail", "admin:unknown")]
    assert failed == []  # no account to count against


def test_a_disabled_account_cannot_log_in_and_enabling_restores_it(accounts: AdminAccounts) -> None:
    accounts.create_user(name="vera", role="viewer", password=PASSWORD, actor="test")
    raw, _ = accounts.login("vera", PASSWORD)
    accounts.set_disabled("vera", True, actor="test")
    assert accounts.session_state(raw) is None
    with pytest.raises(LoginRefused):
        accounts.login("vera", PASSWORD)
    accounts.set_disabled("vera", False, actor="test")
    accounts.login("vera", PASSWORD)


def test_sessions_end_when_idle_and_at_their_absolute_limit(
    accounts: AdminAccounts, services: Services, clock: FixedClock
) -> None:
    accounts.create_user(name="vera", role="viewer", password=PASSWORD, actor="test")
    idle = services.settings.admin_idle_timeout
    raw, _ = accounts.login("vera", PASSWORD)
    clock.advance(seconds=idle.total_seconds() - 1)
    assert accounts.session_state(raw) is not None  # touched: idle time starts again
    clock.advance(seconds=idle.total_seconds() - 1)
    assert accounts.session_state(raw) is not None
    clock.advance(seconds=idle.total_seconds())
    assert accounts.session_state(raw) is None
    raw, _ = accounts.login("vera", PASSWORD)
    deadline = clock() + services.settings.admin_session_ttl
    while clock() + idle / 2 < deadline:
        assert accounts.session_state(raw) is not None
        clock.advance(seconds=idle.total_seconds() / 2)
    clock.advance(seconds=(deadline - clock()).total_seconds())
    assert accounts.session_state(raw) is None


def enrolled(accounts: AdminAccounts, clock: FixedClock) -> tuple[str, str]:
    accounts.create_user(name="sam", role="security", password=PASSWORD, actor="test")
    raw, state = accounts.login("sam", PASSWORD)
    assert not state.complete and not state.totp_enrolled
    secret, uri = accounts.totp_setup(raw)
    assert uri.startswith("otpauth://totp/maskline:sam?") and secret in uri
    assert accounts.totp_confirm(raw, pyotp.TOTP(secret).at(clock())).complete
    return raw, secret


def test_security_admins_enroll_totp_and_codes_work_once(accounts: AdminAccounts, clock: FixedClock) -> None:
    raw, secret = enrolled(accounts, clock)
    assert accounts.session_state(raw).complete
    raw, state = accounts.login("sam", PASSWORD)
    assert not state.complete and state.totp_enrolled
    with pytest.raises(SecondFactorRefused):
        accounts.totp_verify(raw, pyotp.TOTP(secret).at(clock()))  # used at enrollment
    clock.advance(seconds=30)
    assert accounts.totp_verify(raw, pyotp.TOTP(secret).at(clock())).complete


@pytest.mark.parametrize("code", ["000000", "12345", "abcdef", ""])
def test_a_wrong_code_is_refused_and_counted(
    accounts: AdminAccounts, clock: FixedClock, failed: list[dict[str, Any]], code: str
) -> None:
    _, secret = enrolled(accounts, clock)
    clock.advance(seconds=60)
    raw, _ = accounts.login("sam", PASSWORD)
    if code == pyotp.TOTP(secret).at(clock()):
        code = "999999"
    with pytest.raises(SecondFactorRefused):
        accounts.totp_verify(raw, code)
    assert not accounts.session_state(raw).complete
    assert failed == [{"account": "admin:sam", "at": clock()}]


def test_codes_off_by_more_than_one_step_are_refused(accounts: AdminAccounts, clock: FixedClock) -> None:
    _, secret = enrolled(accounts, clock)
    clock.advance(seconds=300)
    raw, _ = accounts.login("sam", PASSWORD)
    with pytest.raises(SecondFactorRefused):
        accounts.totp_verify(raw, pyotp.TOTP(secret).at(clock() - dt.timedelta(seconds=90)))
    assert accounts.totp_verify(raw, pyotp.TOTP(secret).at(clock() - dt.timedelta(seconds=30))).complete


def test_the_totp_secret_is_sealed_not_stored(
    accounts: AdminAccounts, services: Services, clock: FixedClock
) -> None:
    _, secret = enrolled(accounts, clock)
    raw_secret = base64.b32decode(secret)
    with services.db.session() as session:
        row = session.execute(text("SELECT * FROM admin_users")).one()
    dump = repr(tuple(row)).encode()
    assert secret.encode() not in dump and raw_secret not in dump and raw_secret.hex().encode() not in dump


def test_a_reset_second_factor_enrolls_again(
    accounts: AdminAccounts, services: Services, clock: FixedClock
) -> None:
    raw, _ = enrolled(accounts, clock)
    accounts.reset_second_factor("sam", actor="cli:root", reason="lost phone")
    assert accounts.session_state(raw) is None
    raw, state = accounts.login("sam", PASSWORD)
    assert not state.totp_enrolled
    assert ("cli:root", "admin.user.totp_reset", "admin:sam") in actions(services)


def test_key_rotation_rewraps_totp_secrets_so_the_old_kek_can_go(
    accounts: AdminAccounts, services: Services, clock: FixedClock
) -> None:
    from maskline.vault import keyring as kr

    _, secret = enrolled(accounts, clock)
    path = services.settings.keys_file
    ring, version = kr.with_added_version(kr.read_keyring_file(path), "kek")
    kr.write_keyring_file(path, kr.with_primary(ring, "kek", version))
    assert accounts.second_factors_using(version - 1) == 1
    assert accounts.rewrap_second_factors() == 1
    assert accounts.second_factors_using(version - 1) == 0
    kr.write_keyring_file(path, kr.without_version(kr.read_keyring_file(path), "kek", version - 1))
    clock.advance(seconds=30)
    raw, _ = accounts.login("sam", PASSWORD)
    assert accounts.totp_verify(raw, pyotp.TOTP(secret).at(clock())).complete
