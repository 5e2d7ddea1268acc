"""The outbound guard on the wire: a rebinding resolver, TLS to the checked
address, no proxy, no redirect. Real sockets on loopback addresses (the
whole of 127.0.0.0/8 is this machine's), opted in by an allow-list as an
operator would opt in a range of their own."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from maskline.outbound import OutboundPolicy, RefusedUrl
from tests.local_http import POLL_INTERVAL

TRUSTED = ipaddress.ip_network("127.0.0.2/32")  # "the operator's receiver"


class _Hits:
    def __init__(self) -> None:
        self.paths: list[str] = []
        self.hosts: list[str] = []


def _handler(hits: _Hits, status: int) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            hits.paths.append(self.path)
            hits.hosts.append(self.headers.get("Host", ""))
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "http://127.0.0.1:1/internal")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextlib.contextmanager
def listening(
    address: str, port: int = 0, *, status: int = 200, tls: ssl.SSLContext | None = None
) -> Iterator[tuple[int, _Hits]]:
    hits = _Hits()
    server = ThreadingHTTPServer((address, port), _handler(hits, status))
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL}, daemon=True
    )
    thread.start()
    try:
        yield int(server.server_address[1]), hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Rebinding:
    """Answers a public-looking (allowed) address first, then the one it means to reach."""

    def __init__(self, first: str, then: str) -> None:
        self.answers = [first, then]
        self.asked = 0

    def __call__(self, host: str, port: int) -> list[str]:
        answer = self.answers[min(self.asked, 1)]
        self.asked += 1
        return [answer]


def test_a_name_that_resolves_to_loopback_is_refused_before_any_connection() -> None:
    with listening("127.0.0.1") as (port, internal):
        policy = OutboundPolicy(resolve=lambda host, p: ["127.0.0.1"])

        with pytest.raises(RefusedUrl, match="resolves to a loopback address"):
            policy.post(f"https://hooks.example.com:{port}/in", b"{}", {}, 5)

    assert internal.paths == []


def _certificate_authority(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(a server context for ``name`` under a fresh CA, a client context trusting only that CA)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "maskline test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


def test_tls_checks_the_certificate_against_the_url_s_host_name_and_sends_it_as_sni(tmp_path: Path) -> None:
    server_tls, client_tls = _certificate_authority(tmp_path, "hooks.example.com")
    seen_sni: list[str | None] = []
    server_tls.sni_callback = lambda sock, name, ctx: seen_sni.append(name)
    with listening("127.0.0.2", tls=server_tls) as (port, trusted):
        policy = OutboundPolicy(allow=(TRUSTED,), resolve=lambda host, p: ["127.0.0.2"], tls=client_tls)

        assert policy.post(f"https://hooks.example.com:{port}/in", b"{}", {}, 5) == 200
        # The same address under another name: the certificate does not match it.
        with pytest.raises(ssl.SSLCertVerificationError):
            policy.post(f"https://other.example.com:{port}/in", b"{}", {}, 5)

    assert trusted.paths == ["/in"]
    assert seen_sni[0] == "hooks.example.com"


def test_a_rebinding_resolver_cannot_switch_the_connection_to_loopback(tmp_path: Path) -> None:
    server_tls, client_tls = _certificate_authority(tmp_path, "hooks.example.com")
    with (
        listening("127.0.0.2", tls=server_tls) as (port, trusted),
        listening("127.0.0.1", port, tls=server_tls) as (_, internal),
    ):
        resolver = Rebinding("127.0.0.2", "127.0.0.1")
        policy = OutboundPolicy(allow=(TRUSTED,), resolve=resolver, tls=client_tls)

        statuses = [policy.post(f"https://hooks.example.com:{port}/in", b"{}", {}, 5)]
        # The next request resolves again, gets loopback, and is refused before connecting.
        with pytest.raises(RefusedUrl, match="loopback"):
            policy.post(f"https://hooks.example.com:{port}/in", b"{}", {}, 5)

    assert statuses == [200]
    assert resolver.asked == 2  # once per request: the check and the connection share one answer
    assert trusted.paths == ["/in"] and internal.paths == []
    assert trusted.hosts == [f"hooks.example.com:{port}"]


def test_proxy_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    with listening("127.0.0.2") as (port, trusted), listening("127.0.0.1") as (proxy_port, proxy):
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy_port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)

        assert OutboundPolicy(loopback=True).post(f"http://127.0.0.2:{port}/in", b"{}", {}, 5) == 200

    assert proxy.paths == [] and trusted.paths == ["/in"]


def test_a_redirect_is_an_answer_never_followed() -> None:
    with listening("127.0.0.1", status=302) as (port, hits):
        status = OutboundPolicy(loopback=True).post(f"http://127.0.0.1:{port}/in", b"{}", {}, 5)

    assert status == 302
    assert hits.paths == ["/in"]  # nothing asked for /internal
