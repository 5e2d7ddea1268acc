"""``maskline demo`` run as a user runs it: the story's outcomes, and nothing left behind.

The demo ignores MASKLINE_* settings on purpose (it builds its settings from
an empty environment), so it can never write to a configured database, Redis
or key ring: these tests point MASKLINE_* at the test services, or at
nothing that exists, and check that the demo works and leaves them alone.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from maskline.db import Base
from maskline.demo import CAST
from maskline.sim.carrier import mask_number
from tests.conftest import TEST_DATABASE_URL
from tests.e2e.conftest import COMMAND_TIMEOUT, Cli, maskline_executable
from tests.e2e.test_no_number_leaks import US_FORMS, find_leaks

MASKED = {role: mask_number(number) for role, number in CAST.items()}


def flat(text: str) -> str:
    """The output with its line wrapping undone (the demo wraps long lines)."""
    return " ".join(text.split())


def sections(stdout: str) -> dict[int, str]:
    """The numbered sections, each flattened."""
    parts = re.split(r"^(\d)\. ", stdout, flags=re.MULTILINE)
    return {int(number): flat(body) for number, body in zip(parts[1::2], parts[2::2], strict=True)}


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    sections: dict[int, str]
    tmpdir: Path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One ``maskline demo`` for the story's tests, without any MASKLINE_* setting."""
    tmpdir = tmp_path_factory.mktemp("demo-tmp")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MASKLINE_")}
    completed = subprocess.run(
        [maskline_executable(), "demo"],
        env={**env, "TMPDIR": str(tmpdir)},
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    return Run(completed.returncode, completed.stdout, completed.stderr, sections(completed.stdout), tmpdir)


@pytest.fixture
def story(run: Run) -> dict[int, str]:
    assert run.returncode == 0, (run.stdout, run.stderr)
    return run.sections


def test_the_story_has_six_steps_and_a_happy_end(run: Run) -> None:
    assert run.returncode == 0
    assert sorted(run.sections) == [1, 2, 3, 4, 5, 6]
    assert "NOT AS EXPECTED" not in run.stdout and "FOUND" not in run.stdout
    assert flat(run.stdout).endswith("by no one after, and their number is nowhere but the vault.")
    assert "\x1b[" not in run.stdout  # no colour when stdout is not a terminal
    assert run.stderr == ""
    assert list(run.tmpdir.iterdir()) == []  # the throwaway folder is gone


def relays(story: dict[int, str]) -> tuple[str, str, str]:
    """(merchant's relay number, slip's relay number, extension) from step 1."""
    axb = re.search(r"merchant <-> buyer: bd_\w+ on (\+\d+)", story[1])
    axe = re.search(r"courier -> buyer: bd_\w+ on (\+\d+) ext\. (\d{4})", story[1])
    assert axb and axe
    return axb.group(1), axe.group(1), axe.group(2)


def test_step_1_binds_the_order_on_two_relay_numbers(story: dict[int, str]) -> None:
    assert "pool add: +14155550100, +14155550101, +14155550102" in story[1]
    merchant_x, slip_x, extension = relays(story)
    assert merchant_x != slip_x
    assert f'the shipping slip reads: "call {slip_x}, ext. {extension}"' in story[1]


def test_step_2_connects_merchant_and_buyer_with_the_relay_as_caller_id(story: dict[int, str]) -> None:
    x, _, _ = relays(story)
    assert (
        f"merchant {MASKED['merchant']} dials {x} -> connected to the buyer ({MASKED['buyer']}); "
        f"the buyer's phone shows {x}"
    ) in story[2]
    assert f"connected to the merchant ({MASKED['merchant']}); the merchant's phone shows {x}" in story[2]
    assert f"-> delivered to the buyer ({MASKED['buyer']}) from {x}:" in story[2]
    assert "Call [phone removed] or see [link removed]" in story[2]


def test_step_3_connects_the_courier_through_the_extension(story: dict[int, str]) -> None:
    _, x, extension = relays(story)
    assert (
        f'courier {MASKED["courier"]} dials {x}, keys {extension} hears: "Please enter the extension." '
        f"-> connected to the buyer ({MASKED['buyer']}); the buyer's phone shows {x}"
    ) in story[3]


def test_step_4_refuses_the_stranger_with_the_slip(story: dict[int, str]) -> None:
    _, x, extension = relays(story)
    assert f"stranger {MASKED['stranger']} dials {x}, keys {extension} then {extension}" in story[4]
    assert story[4].count("-> refused, no one was dialed (reason: stranger)") == 2
    assert "connected" not in story[4]


def test_step_5_ends_the_order_and_the_numbers_go_dead(story: dict[int, str]) -> None:
    assert len(re.findall(r"unbind bd_\w+ \(ax[be] on \+\d+\): unbound", story[5])) == 2
    assert story[5].count("-> refused, no one was dialed") == 2
    assert "connected" not in story[5]


def test_step_6_finds_the_buyers_number_in_no_dump(story: dict[int, str]) -> None:
    searched = re.findall(r"(SQL dump|raw file|Redis|log file)[^:]*: ([\d,]+) bytes", story[6])
    kinds = {kind for kind, _size in searched}
    assert kinds == {"SQL dump", "raw file", "Redis", "log file"}
    assert all(int(size.replace(",", "")) > 0 for kind, size in searched if kind != "raw file")
    assert story[6].count("-> buyer's number not found") == len(searched)
    assert re.search(r"it does hold the buyer's vault token pn_\w+", story[6])
    assert re.search(r"sealed in the vault: pn_\w+, AES-256-GCM ciphertext [0-9a-f]{24}", story[6])
    assert re.search(r"in clear only in the TwiML sent to the carrier: [1-9]\d* of", story[6])


def test_the_buyers_number_is_never_printed(run: Run) -> None:
    assert CAST["buyer"] == US_FORMS[0]  # the forms searched are the buyer's
    assert MASKED["buyer"] in run.stdout
    assert find_leaks("stdout", run.stdout, US_FORMS) == []
    assert find_leaks("stderr", run.stderr, US_FORMS) == []


@pytest.fixture
def tmpdir_env(tmp_path: Path) -> dict[str, str]:
    """A TMPDIR of the test's own, so that whatever the demo leaves can be seen."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    return {"TMPDIR": str(folder)}


def test_the_demo_touches_no_configured_database_or_redis(
    cli: Cli, tmpdir_env: dict[str, str], request: pytest.FixtureRequest
) -> None:
    """The cli's MASKLINE_* point at the test database and Redis (or a SQLite file
    in an instance folder): the demo leaves them as they were, empty."""
    cli.run("demo", env=tmpdir_env)
    assert list(Path(tmpdir_env["TMPDIR"]).iterdir()) == []
    assert not cli.instance_path.exists()
    if TEST_DATABASE_URL:
        engine = request.getfixturevalue("migrated_engine")
        with engine.connect() as conn:
            rows = {
                t.name: conn.execute(select(func.count()).select_from(t)).scalar()
                for t in Base.metadata.sorted_tables
            }
        assert set(rows.values()) == {0}, rows
    if cli.redis_url:
        client = redis.Redis.from_url(cli.redis_url)
        try:
            assert client.dbsize() == 0
        finally:
            client.close()


def test_the_demo_ignores_maskline_settings_that_could_not_work(cli: Cli, tmpdir_env: dict[str, str]) -> None:
    bogus = {
        "MASKLINE_ENV": "production",
        "MASKLINE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nothing",
        "MASKLINE_REDIS_URL": "redis://127.0.0.1:1/0",
        "MASKLINE_KEYS_FILE": "/nonexistent/keys.json",
        "MASKLINE_DEFAULT_REGION": "UK",  # not a region: reading it would be an error
        "MASKLINE_VOICE_LANGUAGE": "zh-CN",
    }
    result = cli.run("demo", env={**tmpdir_env, **bogus})
    assert "the buyer's phone shows" in result.stdout
    assert '"Please enter the extension."' in result.stdout
    assert list(Path(tmpdir_env["TMPDIR"]).iterdir()) == []


def test_keep_leaves_the_folder_and_says_where(cli: Cli, tmpdir_env: dict[str, str]) -> None:
    stdout = cli.run("demo", "--keep", env=tmpdir_env).stdout
    kept = re.search(r"kept the demo's folder \(database, key ring, log\): (\S+)", stdout)
    assert kept
    folder = Path(kept.group(1))
    assert folder.parent == Path(tmpdir_env["TMPDIR"])
    assert {"maskline.sqlite3", "keys.json", "maskline.log"} <= {p.name for p in folder.iterdir()}
    assert stat.S_IMODE((folder / "keys.json").stat().st_mode) == 0o600
