"""``maskline admin``: accounts as an operator makes them, and what is refused."""

from __future__ import annotations

import datetime as dt
import json

from config import load_settings
from maskline.clock import FixedClock
from maskline.wiring import build_services
from tests.e2e.conftest import Cli

PASSWORD = "correct horse battery staple"


def test_create_list_disable_enable(initialised: Cli) -> None:
    made = initialised.run(
        "admin",
        "create-user",
        "--name",
        "sam",
        "--role",
        "security",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert made.stdout.strip() == "created security sam"
    assert PASSWORD not in made.stdout + made.stderr
    initialised.run("admin", "disable", "sam")
    listed = [json.loads(line) for line in initialised.out("admin", "list", "--json").splitlines()]
    assert listed == [
        {"name": "sam", "role": "security", "state": "disabled", "totp": False, "last_login_at": None}
    ]
    initialised.run("admin", "enable", "sam")
    assert initialised.out("admin", "list") == "sam\tsecurity\tenabled\t-\t-"  # never logged in


def test_refusals_name_the_problem_and_create_nothing(initialised: Cli) -> None:
    weak = initialised.run(
        "admin",
        "create-user",
        "--name",
        "vera",
        "--role",
        "viewer",
        "--password-stdin",
        stdin="short\n",
        ok=False,
    )
    assert "password: must be at least 12 characters" in weak.stderr and "Traceback" not in weak.stderr
    role = initialised.run(
        "admin",
        "create-user",
        "--name",
        "vera",
        "--role",
        "root",
        "--password-stdin",
        stdin=PASSWORD,
        ok=False,
    )
    assert "'root' is not one of" in role.stderr
    assert "no admin named nobody" in initialised.run("admin", "disable", "nobody", ok=False).stderr
    assert initialised.out("admin", "list") == ""


def test_the_table_shows_the_last_login_in_the_display_zone_with_its_offset(initialised: Cli) -> None:
    initialised.run(
        "admin", "create-user", "--name", "olga", "--role", "operator", "--password-stdin", stdin=PASSWORD
    )
    # A login at 23:06 UTC, through the services over the same database.
    at = dt.datetime(2026, 12, 7, 23, 6, tzinfo=dt.UTC)
    services = build_services(load_settings(environ=initialised.env), clock=FixedClock(at))
    try:
        services.admin.accounts.login("olga", PASSWORD)
    finally:
        services.close()
    beijing = {"MASKLINE_DISPLAY_TIMEZONE": "Asia/Shanghai"}
    shanghai = initialised.run("admin", "list", env=beijing).stdout.strip()
    assert shanghai == "olga\toperator\tenabled\t-\t2026-12-08 07:06 +08:00"
    assert initialised.out("admin", "list").endswith("\t2026-12-07 23:06 +00:00")
    (listed,) = [json.loads(line) for line in initialised.out("admin", "list", "--json").splitlines()]
    assert listed["last_login_at"] == "2026-12-07T23:06:00+00:00"  # machines get UTC
