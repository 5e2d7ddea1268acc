"""The embedded development Redis: fakeredis's TCP server in its own process.

``maskline serve`` starts ``python -m maskline.embedded_redis INSTANCE``; it
binds a free loopback port and records it (with its pid) in the instance
folder, where gunicorn workers and CLI commands find it. Development only.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType

from maskline.redis_backend import port_file


def _write_port_file(instance_path: Path, port: int) -> None:
    instance_path.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=instance_path, prefix=".redis-", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        json.dump({"port": port, "pid": os.getpid()}, handle)
    os.replace(tmp, port_file(instance_path))


def serve(instance_path: Path) -> None:
    from fakeredis import TcpFakeServer

    # Speak as Redis 7.0, the version maskline is deployed on.
    server = TcpFakeServer(("127.0.0.1", 0), server_type="redis", server_version=(7, 0))
    # A client that stays connected (a worker's pool, a shell) must not keep
    # the server alive after SIGTERM: connection threads die with the process.
    server.daemon_threads = True
    server.block_on_close = False
    port = int(server.server_address[1])
    _write_port_file(instance_path, port)

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        port_file(instance_path).unlink(missing_ok=True)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    # Silent: `maskline serve`, which starts this server, says so once.
    try:
        server.serve_forever()
    finally:
        port_file(instance_path).unlink(missing_ok=True)
        server.server_close()


if __name__ == "__main__":
    serve(Path(sys.argv[1]))
