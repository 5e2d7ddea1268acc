"""Running the real ``maskline`` command: in process, or as a subprocess.

Each test gets its own instance folder and a MASKLINE_* environment: the test
PostgreSQL / Redis when MASKLINE_TEST_DATABASE_URL / MASKLINE_TEST_REDIS_URL
are set (both emptied first), a SQLite file in the instance folder and the
embedded (or in-process) Redis otherwise.

Commands run in this process through click's CliRunner, with that
environment in ``os.environ`` for the call: the same command objects, settings
and output streams as the console script, without an interpreter start and
the imports per command. ``real_cli`` (and :func:`serving`) run the installed
console script as a subprocess: a dozen smoke tests prove that path.
``initialised`` copies one migrated template database per worker (SQLite: a
file copy; PostgreSQL: the worker's database, migrated once and emptied per
test), then runs ``init``, which finds the schema current.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
import redis

from maskline.redis_backend import EmbeddedServer, read_embedded_server
from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL, clean_tables

# A bound on how long one command may run, so that a hang fails the test
# instead of stalling the suite. Not a performance assertion.
COMMAND_TIMEOUT = 120

T = TypeVar("T")


def maskline_executable() -> str:
    """The ``maskline`` console script of the interpreter running the tests."""
    candidate = Path(sys.executable).parent / "maskline"
    return str(candidate) if candidate.exists() else "maskline"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _clean_environ() -> dict[str, str]:
    """The test process's environment without any MASKLINE_* setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MASKLINE_")}


def _environ_changes(target: Mapping[str, str]) -> dict[str, str | None]:
    """What to set (and, as None, unset) in ``os.environ`` to make it ``target``
    as far as the command can tell: every MASKLINE_* setting, and any other
    variable that differs."""
    changes: dict[str, str | None] = {k: None for k in os.environ if k not in target}
    changes.update({k: v for k, v in target.items() if os.environ.get(k) != v})
    return changes


def invoke_in_process(
    args: tuple[str, ...], env: Mapping[str, str], stdin: str | None
) -> subprocess.CompletedProcess[str]:
    """``maskline ARGS`` through click's CliRunner, as if run with ``env``.

    An exception the command did not turn into an exit status is reported
    the way the interpreter would: a traceback on stderr, exit status 1.
    The root logger is restored afterwards (the command attaches handlers
    to the runner's streams).
    """
    from click.testing import CliRunner

    from maskline.cli import main

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        result = CliRunner().invoke(
            main, list(args), input=stdin, env=_environ_changes(env), prog_name="maskline"
        )
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(level)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "Traceback (most recent call last):\n" + "".join(
            traceback.format_exception(result.exception)
        )
    return subprocess.CompletedProcess(["maskline", *args], result.exit_code, result.stdout, stderr)


# Commands that set up their process: serve (gunicorn, and prometheus_client's
# multiprocess folder, which must be chosen before it is imported) and demo
# (a throwaway folder under TMPDIR, which tempfile reads once per process).
SUBPROCESS_COMMANDS = frozenset({"serve", "demo"})


@dataclass
class Cli:
    """Runs ``maskline`` with one instance folder; remembers every output.

    In process by default; ``in_process=False`` runs the console script.
    """

    instance_path: Path
    env: dict[str, str]
    outputs: list[tuple[str, str, str]] = field(default_factory=list)  # (command, stdout, stderr)
    in_process: bool = True

    def run(
        self,
        *args: str,
        ok: bool | None = True,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``maskline ARGS``; ``ok=True`` asserts exit 0, ``False`` non-zero, ``None`` neither."""
        full_env = {**self.env, **(env or {})}
        if self.in_process and args[:1] and args[0] not in SUBPROCESS_COMMANDS:
            completed = invoke_in_process(args, full_env, stdin)
        else:
            completed = subprocess.run(
                [maskline_executable(), *args],
                env=full_env,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
        self.outputs.append((" ".join(args), completed.stdout, completed.stderr))
        if ok is True:
            assert completed.returncode == 0, (args, completed.stdout, completed.stderr)
        elif ok is False:
            assert completed.returncode != 0, (args, completed.stdout, completed.stderr)
        return completed

    def out(self, *args: str) -> str:
        """The stripped stdout of a command that must succeed."""
        return self.run(*args).stdout.strip()

    @property
    def database_url(self) -> str:
        return self.env["MASKLINE_DATABASE_URL"]

    @property
    def redis_url(self) -> str | None:
        return self.env.get("MASKLINE_REDIS_URL")


@pytest.fixture
def instance_path(tmp_path: Path) -> Path:
    return tmp_path / "instance"


@pytest.fixture
def e2e_database(request: pytest.FixtureRequest, instance_path: Path) -> str:
    """The database URL for the command: the test PostgreSQL, emptied, or a SQLite
    file in the instance folder (none yet: ``initialised`` copies the template)."""
    if TEST_DATABASE_URL:
        # The schema is the session's; rows (and the registered key ring) are this test's.
        clean_tables(request.getfixturevalue("migrated_engine"))
        return TEST_DATABASE_URL
    return f"sqlite:///{instance_path / 'maskline.sqlite3'}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated to head once per worker, copied by ``initialised``."""
    from maskline import migrate
    from maskline.db import make_engine

    path = tmp_path_factory.mktemp("template") / "maskline.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    return path


def copy_template(request: pytest.FixtureRequest, cli: Cli) -> None:
    """Give ``cli``'s instance a migrated database without migrating it:
    PostgreSQL's is the session's (emptied), SQLite's a copy of the template."""
    if TEST_DATABASE_URL:
        return
    target = cli.instance_path / "maskline.sqlite3"
    if cli.database_url == f"sqlite:///{target}" and not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)


@pytest.fixture
def e2e_redis() -> Iterator[str | None]:
    """The test Redis database, emptied before and after, or None (embedded)."""
    if not TEST_REDIS_URL:
        yield None
        return
    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    yield TEST_REDIS_URL
    client.flushdb()
    client.close()


def maskline_environ(
    instance_path: Path, database_url: str, redis_url: str | None, **settings: str
) -> dict[str, str]:
    """The environment of a ``maskline`` subprocess: this process's, minus any
    MASKLINE_* setting, plus the instance, database and Redis (None: embedded)
    and ``settings`` (MASKLINE_* names)."""
    env = _clean_environ()
    env.update(
        {
            "MASKLINE_ENV": "development",
            "MASKLINE_INSTANCE_PATH": str(instance_path),
            "MASKLINE_DATABASE_URL": database_url,
            "MASKLINE_KEYS_FILE": str(instance_path / "keys.json"),
            "MASKLINE_DEFAULT_REGION": "US",
            # The key file changes under running commands in rotation tests.
            "MASKLINE_KEYRING_RELOAD_SECONDS": "0",
        }
    )
    if redis_url:
        env["MASKLINE_REDIS_URL"] = redis_url
    env.update(settings)
    return env


@pytest.fixture
def cli(instance_path: Path, e2e_database: str, e2e_redis: str | None) -> Cli:
    return Cli(instance_path=instance_path, env=maskline_environ(instance_path, e2e_database, e2e_redis))


@pytest.fixture
def real_cli(cli: Cli) -> Cli:
    """``cli`` running the installed console script as a subprocess."""
    cli.in_process = False
    return cli


@pytest.fixture
def initialised(request: pytest.FixtureRequest, cli: Cli) -> Cli:
    """``cli`` after ``maskline init`` on a copy of the migrated template."""
    copy_template(request, cli)
    cli.run("init")
    return cli


@contextlib.contextmanager
def embedded_redis(instance_path: Path) -> Iterator[int]:
    """Run the embedded development Redis for ``instance_path``; yields its port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "maskline.embedded_redis", str(instance_path)],
        stderr=subprocess.DEVNULL,
    )
    try:
        port = wait_for(lambda: _own_port(read_embedded_server(instance_path), process.pid), process)
        yield port
    finally:
        stop(process)


def _own_port(server: EmbeddedServer | None, pid: int) -> int | None:
    return server.port if server is not None and server.pid == pid else None


def wait_for(probe: Callable[[], T | None], process: subprocess.Popen[bytes], *, attempts: int = 600) -> T:
    """Poll ``probe()`` until it returns a value (bounded); fail if ``process`` exits first."""
    for _ in range(attempts):
        value = probe()
        if value is not None:
            return value
        assert process.poll() is None, f"process exited with {process.returncode} before it was ready"
        time.sleep(0.05)  # polling for readiness, bounded by ``attempts``
    raise AssertionError("gave up waiting for the process to become ready")


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then wait (bounded); SIGKILL only if it will not stop."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=COMMAND_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


@dataclass
class RunningServer:
    """A ``maskline serve`` process; its stdout and stderr go to ``log``."""

    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _answers_healthz(base_url: str) -> bool | None:
    try:
        with urllib.request.urlopen(base_url + "/healthz", timeout=10) as response:  # noqa: S310 (loopback)
            return True if response.status == 200 else None
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


@contextlib.contextmanager
def serving(cli: Cli, log: Path, *, workers: int = 2) -> Iterator[RunningServer]:
    """``maskline serve`` with ``cli``'s environment on a free loopback port,
    until ``/healthz`` answers; stopped (SIGTERM) on exit."""
    port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [maskline_executable(), "serve", "--port", str(port), "--workers", str(workers)],
            env=cli.env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = RunningServer(process=process, base_url=f"http://127.0.0.1:{port}", log=log)
    try:
        # A generous bound: start-up (migrations check, route rebuild, workers) on a busy machine.
        wait_for(lambda: _answers_healthz(server.base_url), process, attempts=2400)
        yield server
    finally:
        stop(process)
