"""Throwaway servers for drills: a PostgreSQL cluster of its own on a free loopback port,
and a Redis server of its own (``throwaway_redis``).

Never the shared services: each drill gets a fresh cluster in a temporary
directory (``initdb`` with trust authentication, then ``pg_ctl start`` with
``listen_addresses=127.0.0.1`` on a free port and its Unix socket in the same
directory), stopped and removed afterwards. PostgreSQL refuses to run as
root, so as root the server binaries run as the ``postgres`` OS user (through
``runuser``), which owns the directory.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis

# The machine's shared server; a drill must never start, stop or restart it.
SHARED_PORT = 5432
SERVER_USER = "postgres"
PG_CTL_WAIT_SECONDS = 60
START_ATTEMPTS = 3  # a free port can be taken between choosing it and binding it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    assert port != SHARED_PORT
    return port


def postgres_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if not candidates:
        pytest.fail("PostgreSQL server binaries not found (install Debian's postgresql)")
    return Path(candidates[-1])


class ServerCommandFailed(Exception):
    """initdb or pg_ctl failed; the message carries its output and the server log."""


@dataclass
class ThrowawayPostgres:
    bindir: Path
    base: Path
    port: int

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def logfile(self) -> Path:
        return self.base / "log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=PG_CTL_WAIT_SECONDS + 30, check=False
        )
        if done.returncode != 0:
            raise ServerCommandFailed(
                f"{' '.join(args[:1] + args[-1:])} exited {done.returncode}\n"
                f"{done.stdout}{done.stderr}\n--- server log (tail) ---\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def initdb(self) -> None:
        self._run("initdb", "-D", str(self.datadir), "-A", "trust", "-U", "postgres", "--no-sync")

    def pg_ctl(self, action: str, *extra: str) -> None:
        """``pg_ctl ACTION`` on this cluster, waiting until it is done."""
        assert self.port != SHARED_PORT
        # fsync=off: a drill's data needs to survive a server restart or crash,
        # not a machine crash, and the OS page cache gives it that.
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.base} -c fsync=off"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.datadir),
            "-o",
            options,
            "-l",
            str(self.logfile),
            "-w",
            "-t",
            str(PG_CTL_WAIT_SECONDS),
            action,
            *extra,
        )

    def start(self) -> None:
        self.pg_ctl("start")
        self.wait_ready()

    def restart(self, mode: str = "fast") -> None:
        """Stop (``fast``: sessions are terminated; ``immediate``: a crash) and start again."""
        self.pg_ctl("restart", "-m", mode)
        self.wait_ready()

    def stop(self) -> None:
        self.pg_ctl("stop", "-m", "immediate")

    def wait_ready(self, attempts: int = 100) -> None:
        """Until the server takes TCP connections (pg_ctl -w checks its socket)."""
        for _ in range(attempts):
            try:
                psycopg.connect(
                    host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", connect_timeout=2
                ).close()
                return
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise ServerCommandFailed(f"server on port {self.port} never took connections\n{self.log_tail()}")


def _server_base() -> Path:
    base = Path(tempfile.mkdtemp(prefix="maskline-pg-"))
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            shutil.rmtree(base)
            pytest.fail(f"running as root needs an OS user {SERVER_USER!r} to run PostgreSQL as")
        shutil.chown(base, SERVER_USER, SERVER_USER)
    return base


@pytest.fixture
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """A brand-new, running cluster; stopped and deleted when the test ends."""
    base = _server_base()
    server = ThrowawayPostgres(bindir=postgres_bindir(), base=base, port=free_port())
    try:
        server.initdb()
        for attempt in range(START_ATTEMPTS):
            try:
                server.start()
                break
            except ServerCommandFailed:
                if attempt == START_ATTEMPTS - 1:
                    raise
                server.port = free_port()
        yield server
    finally:
        try:
            if (server.datadir / "postmaster.pid").exists():  # running, or left half-started
                server.stop()
        finally:
            shutil.rmtree(base, ignore_errors=True)


# -- Redis ------------------------------------------------------------------------

# The machine's shared Redis; a drill must never stop or freeze it.
SHARED_REDIS_PORT = 6379
REDIS_START_ATTEMPTS = 200  # polls of 0.05 s for a new server to answer PING


@dataclass
class ThrowawayRedis:
    """A ``redis-server`` that keeps nothing (no RDB, no AOF): a restart comes back empty."""

    base: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, socket_connect_timeout=5)

    def start(self) -> None:
        """A new, empty server on this port; returns once it answers PING."""
        assert self.port != SHARED_REDIS_PORT
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server not found (install Debian's redis-server)")
        options = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [binary, *options, "--dir", str(self.base)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.wait_for_ping()

    def wait_for_ping(self, attempts: int = REDIS_START_ATTEMPTS) -> None:
        """Return once the server answers PING; fail if it exits or never does."""
        assert self.process is not None
        for _ in range(attempts):
            assert self.process.poll() is None, f"redis-server exited with {self.process.returncode}"
            try:
                with self.client() as client:
                    client.ping()
                return
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        raise AssertionError(f"redis-server on port {self.port} never answered PING")

    def kill(self) -> None:
        """SIGKILL: the server and everything in it are gone at once."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.thaw()  # a frozen server would not act on SIGTERM
            self.process.terminate()
            self.process.wait(timeout=PG_CTL_WAIT_SECONDS)


@pytest.fixture
def throwaway_redis() -> Iterator[ThrowawayRedis]:
    """A running, empty Redis on a free loopback port; stopped when the test ends."""
    base = Path(tempfile.mkdtemp(prefix="maskline-redis-"))
    server = ThrowawayRedis(base=base, port=free_port())
    try:
        server.start()
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(base, ignore_errors=True)
