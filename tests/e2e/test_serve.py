"""``maskline serve`` as a process: embedded Redis, health endpoints, clean stop."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from maskline.redis_backend import port_file
from tests.e2e.conftest import Cli, free_port, maskline_executable, stop, wait_for
from tests.e2e.test_no_number_leaks import find_leaks


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def get(self, path: str) -> tuple[int, dict[str, object]]:
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=10) as response:  # noqa: S310 (http://127.0.0.1)
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


def _healthz(server: Server) -> bool | None:
    try:
        return True if server.get("/healthz")[0] == 200 else None
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _server_cli(tmp_path: Path) -> Cli:
    """The CLI on SQLite in a tmp instance folder with NO Redis URL: serve embeds its own."""
    instance = tmp_path / "instance"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MASKLINE_")}
    env.update(
        {
            "MASKLINE_ENV": "development",
            "MASKLINE_INSTANCE_PATH": str(instance),
            "MASKLINE_DATABASE_URL": f"sqlite:///{instance / 'maskline.sqlite3'}",
            "MASKLINE_KEYS_FILE": str(instance / "keys.json"),
        }
    )
    return Cli(instance_path=instance, env=env)


@contextlib.contextmanager
def _serving(server_cli: Cli, tmp_path: Path) -> Iterator[Server]:
    server_cli.run("init")
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [maskline_executable(), "serve", "--port", str(port), "--workers", "2"],
            env=server_cli.env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    running = Server(process=process, base_url=f"http://127.0.0.1:{port}", log=log)
    try:
        wait_for(lambda: _healthz(running), process)
        yield running
    finally:
        stop(process)


@pytest.fixture
def server_cli(tmp_path: Path) -> Cli:
    return _server_cli(tmp_path)


@pytest.fixture
def server(server_cli: Cli, tmp_path: Path) -> Iterator[Server]:
    """A server of this test's own (for tests that stop it)."""
    with _serving(server_cli, tmp_path) as running:
        yield running


@pytest.fixture(scope="module")
def shared_cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return _server_cli(tmp_path_factory.mktemp("shared-serve"))


@pytest.fixture(scope="module")
def shared_server(shared_cli: Cli) -> Iterator[Server]:
    """One server for the tests that only look at it (a start costs seconds):
    none of them sends what another one counts."""
    with _serving(shared_cli, shared_cli.instance_path.parent) as running:
        yield running


def _embedded_pid(instance: Path) -> int:
    info = json.loads(port_file(instance).read_text())
    pid: int = info["pid"]
    return pid


def test_healthz_answers(shared_server: Server) -> None:
    assert shared_server.get("/healthz") == (200, {"status": "ok"})


def test_readyz_sees_the_database_and_the_embedded_redis(shared_server: Server) -> None:
    status, body = shared_server.get("/readyz")

    assert status == 200
    assert body == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}


def test_the_embedded_redis_port_is_recorded_under_the_instance_folder(
    shared_server: Server, shared_cli: Cli
) -> None:
    info = json.loads(port_file(shared_cli.instance_path).read_text())

    assert info["port"] > 0
    assert _alive(info["pid"])
    # Said once, by serve, not by each of its workers.
    (notice,) = [
        line for line in shared_server.log.read_text().splitlines() if "embedded development Redis" in line
    ]
    assert notice.startswith("WARNING: ") and f"127.0.0.1:{info['port']};" in notice


def test_serve_tells_a_newcomer_where_to_go_once(shared_server: Server) -> None:
    server = shared_server
    log = server.log.read_text()

    assert log.count(f"console          {server.base_url}/admin/") == 1
    assert "maskline admin create-user" in log and "maskline demo" in log
    assert f"maskline sim call --url {server.base_url}" in log


def test_sim_connects_to_the_development_server_with_no_token_flag(server: Server, server_cli: Cli) -> None:
    # `maskline init` made the development webhook token the server and sim share.
    server_cli.run("pool", "add", "+14155550100")
    server_cli.run(
        "bind",
        "--order",
        "o-1",
        "--mode",
        "axb",
        "--party",
        "buyer=+14155550132",
        "--party",
        "merchant=+12125550143",
    )

    result = server_cli.run(
        "sim", "call", "--url", server.base_url, "--from", "+12125550143", "--to", "+14155550100"
    )

    played = json.loads(result.stdout)  # stdout is the JSON alone
    assert played["outcome"] == "connected" and played["http_status"] == 200
    assert [c["status"] for c in played["callbacks"]] == ["ringing", "in-progress", "completed"]
    assert "alembic" not in result.stdout


def test_a_cli_command_uses_the_servers_embedded_redis(shared_server: Server, shared_cli: Cli) -> None:
    port = json.loads(port_file(shared_cli.instance_path).read_text())["port"]

    result = shared_cli.run("routes", "rebuild", env={"MASKLINE_LOG_LEVEL": "DEBUG"})

    assert f"using the embedded development Redis on 127.0.0.1:{port}" in result.stderr
    assert "in-process fakeredis" not in result.stderr


def test_a_cli_command_says_nothing_of_the_servers_embedded_redis(
    shared_server: Server, shared_cli: Cli
) -> None:
    for level in (None, "WARNING", "ERROR"):
        result = shared_cli.run("routes", "rebuild", env={"MASKLINE_LOG_LEVEL": level} if level else None)

        assert result.stdout.strip(), level
        assert "Redis" not in result.stderr, level


def test_sigterm_stops_the_server_and_the_embedded_redis(server: Server, server_cli: Cli) -> None:
    redis_pid = _embedded_pid(server_cli.instance_path)

    returncode = stop(server.process)

    assert returncode == 0
    assert not _alive(redis_pid)
    assert not port_file(server_cli.instance_path).exists()
    assert _healthz(server) is None


def test_without_a_server_a_cli_command_falls_back_to_in_process_fakeredis(server_cli: Cli) -> None:
    server_cli.run("init")

    noted = server_cli.run("routes", "rebuild", env={"MASKLINE_LOG_LEVEL": "INFO"})
    quiet = server_cli.run("routes", "rebuild")

    assert "in-process fakeredis" in noted.stderr
    assert "Redis" not in quiet.stderr


def _metric(text: str, name: str) -> float:
    """The value of an unlabelled sample in Prometheus' text format (0 if absent)."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_metrics_sum_every_gunicorn_worker(shared_server: Server) -> None:
    forged = 12
    for _ in range(forged):
        request = urllib.request.Request(  # noqa: S310 (http://127.0.0.1)
            shared_server.base_url + "/webhooks/twilio/voice", data=b"CallSid=CA1&From=x&To=y", method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)  # noqa: S310
        refused.value.close()  # an HTTPError holds the response's socket
        assert refused.value.code == 403
    with urllib.request.urlopen(shared_server.base_url + "/metrics", timeout=10) as response:  # noqa: S310
        text = response.read().decode()
    # Whichever of the two workers answered the scrape, it counts all of them.
    assert _metric(text, "maskline_webhook_signature_failures_total") == forged


def _raw_request(server: Server, request_line: bytes) -> bytes:
    """Send one request line as is (no client library normalises it); the answer's first line."""
    host, port = server.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request_line + b"\r\nHost: 127.0.0.1\r\n\r\n")
        return sock.recv(4096).split(b"\r\n", 1)[0]


def _status(server: Server, path: str) -> int:
    try:
        with urllib.request.urlopen(server.base_url + path, timeout=10) as response:  # noqa: S310 (loopback)
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return exc.code


def _log_lines_with(server: Server, marker: str, count: int) -> list[str] | None:
    lines = [line for line in server.log.read_text(errors="replace").splitlines() if marker in line]
    return lines if len(lines) >= count else None


FULL_WIDTH = "".join(chr(0xFF10 + int(d)) for d in "4155550132")  # 4155550132 in full-width digits


def test_the_access_log_masks_numbers_in_paths_and_keeps_the_request(shared_server: Server) -> None:
    paths = [
        "/v1/bindings/+14155550132",
        "/v1/bindings/%2B1%20415%20555%200132",
        "/v1/bindings/(415)%20555-0132",
        "/v1/bindings/" + urllib.parse.quote(FULL_WIDTH),
        "/v1/bindings?x=+14155550132&y=%2B1%20(415)%20555-0132",
        "/v1/bindings/13800138000?region=CN",
    ]
    for path in paths:
        assert _status(shared_server, path) in (401, 404)
    # gunicorn's error log quotes a request line it cannot parse.
    assert _raw_request(shared_server, b"GET /+1 415 555 0132 HTTP/1.1").startswith(b"HTTP/1.1 400")

    access = wait_for(
        lambda: _log_lines_with(shared_server, '"GET /v1/bindings', len(paths)), shared_server.process
    )
    refused = wait_for(lambda: _log_lines_with(shared_server, "Invalid request", 1), shared_server.process)

    log = shared_server.log.read_text(errors="replace")
    assert find_leaks("serve log", log) == []
    assert find_leaks("serve log", log, [FULL_WIDTH]) == []
    # Still useful: address, method, path (numbers masked), status, bytes, duration.
    line = re.compile(r'^127\.0\.0\.1 "GET (/v1/bindings[^"]*)" (\d{3}) \d+ \d+\.\d{6}s$')
    matches = [line.match(text) for text in access]
    assert all(matches), access
    # Two workers write the lines: in no particular order.
    assert sorted((m.group(1), m.group(2)) for m in matches if m) == [
        ("/v1/bindings", "401"),  # never the query string
        *[("/v1/bindings/[phone removed]", "401")] * 5,
    ]
    assert "[phone removed]" in refused[0]
    # gunicorn's own lines keep their ports and pids.
    assert re.search(r"Listening at: http://127\.0\.0\.1:\d+ \(\d+\)", log)
