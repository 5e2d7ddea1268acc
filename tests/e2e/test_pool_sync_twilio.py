"""`maskline pool sync-twilio` against a local server playing Twilio's REST API.

The real command, in a subprocess, with MASKLINE_TWILIO_API_URL pointing at
the server: the twilio package's own paging, auth and errors are exercised.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.conftest import Cli
from tests.twilio_server import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, twilio_serving

PUBLIC = "https://relay.example.com/ml"
X1, X2, X3, X4 = "+14155550100", "+14155550101", "+14155550102", "+14155550103"
NOT_OURS = "+12025550199"
WANTED = {
    "voice_url": f"{PUBLIC}/webhooks/twilio/voice",
    "voice_method": "POST",
    "sms_url": f"{PUBLIC}/webhooks/twilio/sms",
    "sms_method": "POST",
    "status_callback": f"{PUBLIC}/webhooks/twilio/voice/status",
    "status_callback_method": "POST",
}


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with twilio_serving() as server:
        yield server


@pytest.fixture
def operator(initialised: Cli, fake: FakeTwilio) -> Cli:
    """A pool of X1 (console defaults), X2 (already right), X3 (not in the account) and
    X4 (retired); the account also has a number that is not maskline's."""
    initialised.env.update(
        {
            "MASKLINE_PUBLIC_URL": PUBLIC,
            "MASKLINE_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "MASKLINE_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "MASKLINE_TWILIO_API_URL": fake.url,
        }
    )
    initialised.run("pool", "add", X1, X2, X3, X4)
    initialised.run("pool", "retire", X4)
    for number in (NOT_OURS, X1, X4):
        fake.add_number(number)
    fake.add_number(X2, **WANTED)
    return initialised


def fields(fake: FakeTwilio, number: str) -> dict[str, str]:
    record = fake.number(number)
    return {name: record[name] for name in WANTED}


def test_sync_points_each_pool_number_at_maskline_over_every_page(operator: Cli, fake: FakeTwilio) -> None:
    result = operator.run("pool", "sync-twilio")
    assert result.stdout.splitlines() == [
        f"{X1} updated",
        f"{X2} already correct",
        "1 updated, 1 already correct, 1 missing from the account",
    ]
    assert f"{X3} is not in the Twilio account" in result.stderr
    assert fields(fake, X1) == WANTED
    assert [r.form for r in fake.posts(".json")] == [
        {
            "VoiceUrl": WANTED["voice_url"],
            "VoiceMethod": "POST",
            "SmsUrl": WANTED["sms_url"],
            "SmsMethod": "POST",
            "StatusCallback": WANTED["status_callback"],
            "StatusCallbackMethod": "POST",
        }
    ]
    assert fields(fake, NOT_OURS)["voice_url"] != WANTED["voice_url"]  # not maskline's: left alone
    assert fields(fake, X4)["voice_url"] != WANTED["voice_url"]  # retired: left alone
    assert all(r.authorised for r in fake.requests)
    assert operator.out("pool", "sync-twilio").splitlines()[-1].startswith("0 updated, 2 already correct")


def test_the_sdk_follows_twilios_paging(operator: Cli, fake: FakeTwilio) -> None:
    for i in range(60):  # more than one page of 50
        fake.add_number(f"+1312555{i:04d}")
    operator.run("pool", "sync-twilio")
    pages = [r for r in fake.requests if r.method == "GET"]
    assert [r.query.get("Page") for r in pages] == [None, "1"]
    assert fields(fake, X1) == WANTED


def test_dry_run_reports_and_changes_nothing(operator: Cli, fake: FakeTwilio) -> None:
    before = {number: fields(fake, number) for number in (X1, X2)}
    out = operator.out("pool", "sync-twilio", "--dry-run").splitlines()
    assert out[0] == f"{X1} would update" and out[-1].startswith("1 would update, 1 already correct")
    assert fake.posts(".json") == []
    assert {number: fields(fake, number) for number in (X1, X2)} == before


def test_a_twilio_error_is_one_line_and_exit_1(operator: Cli, fake: FakeTwilio) -> None:
    fake.fail_next(400, 21452, f"Number {X1} cannot be updated for {NOT_OURS}")
    result = operator.run("pool", "sync-twilio", ok=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: Twilio: HTTP 400, error 21452: Number ") and NOT_OURS not in last


def test_wrong_credentials_are_twilios_401(operator: Cli, fake: FakeTwilio) -> None:
    result = operator.run("pool", "sync-twilio", ok=False, env={"MASKLINE_TWILIO_AUTH_TOKEN": "wrong"})
    assert result.stderr.strip().splitlines()[-1] == "Error: Twilio: HTTP 401, error 20003: Authenticate"
    assert [r.authorised for r in fake.requests] == [False]


@pytest.mark.parametrize(
    "missing", ["MASKLINE_PUBLIC_URL", "MASKLINE_TWILIO_ACCOUNT_SID", "MASKLINE_TWILIO_AUTH_TOKEN"]
)
def test_it_refuses_without_its_settings(operator: Cli, fake: FakeTwilio, missing: str) -> None:
    result = operator.run("pool", "sync-twilio", ok=False, env={missing: ""})
    assert missing in result.stderr.strip().splitlines()[-1]
    assert fake.requests == []
