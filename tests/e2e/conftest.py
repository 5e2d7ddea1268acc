"""Running the real ``maskline`` command as a subprocess.

Each test gets its own instance folder and a MASKLINE_* environment: the test
PostgreSQL / Redis when MASKLINE_TEST_DATABASE_URL / MASKLINE_TEST_REDIS_URL
are set (both emptied first), a SQLite file in the instance folder and the
embedded (or in-process) Redis otherwise.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
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


@dataclass
class Cli:
    """Runs ``maskline`` with one instance folder; remembers every output."""

    instance_path: Path
    env: dict[str, str]
    outputs: list[tuple[str, str, str]] = field(default_factory=list)  # (command, stdout, stderr)

    def run(
        self,
        *args: str,
        ok: bool | None = True,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``maskline ARGS``; ``ok=True`` asserts exit 0, ``False`` non-zero, ``None`` neither."""
        completed = subprocess.run(
            [maskline_executable(), *args],
            env={**self.env, **(env or {})},
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
    """The database URL for the subprocess: the test PostgreSQL, emptied, or a fresh SQLite file."""
    if TEST_DATABASE_URL:
        # The schema is the session's; rows (and the registered key ring) are this test's.
        clean_tables(request.getfixturevalue("migrated_engine"))
        return TEST_DATABASE_URL
    return f"sqlite:///{instance_path / 'maskline.sqlite3'}"


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
def initialised(cli: Cli) -> Cli:
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
