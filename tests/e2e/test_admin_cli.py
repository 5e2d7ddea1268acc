"""``maskline admin``: accounts as an operator makes them, and what is refused."""

from __future__ import annotations

import json

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
    assert initialised.out("admin", "list") == "sam\tsecurity\tenabled\t-"


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
