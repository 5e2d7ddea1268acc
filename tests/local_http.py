"""A real HTTP server on 127.0.0.1 in a thread, for the test peers maskline talks to."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# How often a server thread looks for shutdown(). socketserver's default, 0.5 s,
# is what every shutdown() waits on average half of: with two servers per test
# in the compat tiers that was a quarter of their wall-clock time, spent idle.
POLL_INTERVAL = 0.02


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """Serve ``handler`` on a free loopback port (yielded) until the block ends."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL}, daemon=True
    )
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
