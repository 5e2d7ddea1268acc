"""The one guard for every URL maskline calls out to.

Owner events, the Twilio face's callback, intercept and out-of-session URLs,
the Alibaba face's report URL, alerts and audit checkpoints all reach the
network through :class:`OutboundPolicy`, so that a tenant (or anyone who can
set a URL) cannot make maskline's worker or web process talk to what sits
behind it: a cloud metadata service, a database on the private network, an
admin port on loopback.

Two checks:

* **when a URL is set** (:meth:`OutboundPolicy.check_url`): the form (https;
  http only to loopback where loopback is allowed), and a host that is an
  address literal, in any spelling ``getaddrinfo`` would accept
  (``127.1``, ``0x7f000001``, ``[::ffff:127.0.0.1]``), or ``localhost``;
* **on every request** (:meth:`OutboundPolicy.post`): the host name is
  resolved once, *every* address it resolves to is checked, and the
  connection goes to the checked address itself. A resolver that answers
  differently the second time (DNS rebinding) is never asked a second time.
  TLS still verifies the certificate against the host name of the URL, and
  SNI carries that name. No proxy from ``HTTP(S)_PROXY`` is used (the
  connection is made here, not by urllib), and no redirect is followed (a
  3xx is an answer like any non-2xx, which callers count as a failure).

Refused: loopback, RFC 1918, link-local, CGNAT (100.64.0.0/10), unique local
(fc00::/7), site-local, multicast, unspecified, documentation and other
reserved ranges, and IPv6 forms that carry such an IPv4 address
(IPv4-mapped, IPv4-compatible, NAT64, 6to4). In other words: only addresses
that ``ipaddress`` calls global and not multicast. ``MASKLINE_OUTBOUND_ALLOW``
(CIDRs) opts specific ranges back in, and development and testing allow
loopback (and nothing else private) so a receiver on the same machine works.

This module is infrastructure: it imports nothing of maskline's.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from maskline import errors

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) -> the addresses it resolves to, as getaddrinfo would give them.
Resolver = Callable[[str, int], Sequence[str]]

MAX_URL = 2048
# What is read of an answer: its status is what counts; the body is drained
# only so that the connection closes cleanly.
MAX_ANSWER = 64 * 1024

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
_ULA = ipaddress.ip_network("fc00::/7")


class RefusedUrl(errors.InputError, ValueError):
    """maskline will not call this URL; the message says why, never the URL's query.

    ``kind`` is a short reason without the host name, for logs and stored errors.
    """

    def __init__(self, message: str, *, kind: str = "refused URL") -> None:
        super().__init__(message)
        self.kind = kind


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``getaddrinfo`` gives for ``host`` (TCP)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise RefusedUrl(f"the host name {host!r} does not resolve", kind="does not resolve") from None
    return [str(info[4][0]) for info in infos]


def parse_cidrs(name: str, value: str) -> tuple[IPNetwork, ...]:
    """``10.1.0.0/16, fd00:1::/64``: ValueError naming ``name`` on a bad item."""
    networks = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{name}: {item!r} is not a CIDR such as 10.20.0.0/16 or fd00:1::/64") from None
    return tuple(networks)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, compatible, NAT64, 6to4), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def classify(address: IPAddress) -> str | None:
    """Why ``address`` is not a public destination (None if it is)."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            reason = classify(inner)
            return f"{reason} (as an IPv6 form)" if reason else None
    checks: list[tuple[bool, str]] = [
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (any(address in n for n in _RFC1918) if address.version == 4 else False, "private (RFC 1918)"),
        (address in _CGNAT if address.version == 4 else False, "shared (CGNAT, 100.64.0.0/10)"),
        (address in _ULA if address.version == 6 else False, "unique local (fc00::/7)"),
        (isinstance(address, ipaddress.IPv6Address) and address.is_site_local, "site-local"),
    ]
    for hit, reason in checks:
        if hit:
            return reason
    if not address.is_global:
        return "reserved"
    return None


def _literal(host: str) -> IPAddress | None:
    """``host`` as an address if it is one in any form the resolver would take."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        # inet_aton takes the legacy forms getaddrinfo also takes: 127.1, 0x7f.0.0.1, 2130706433.
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


@dataclass(frozen=True, kw_only=True)
class OutboundPolicy:
    """Where maskline may connect: public addresses, plus ``allow``, plus loopback if ``loopback``.

    ``resolve`` and ``tls`` are here so tests can play a rebinding resolver
    and trust their own certificate authority; production uses the system's.
    """

    allow: tuple[IPNetwork, ...] = ()
    loopback: bool = False
    resolve: Resolver = system_resolver
    tls: ssl.SSLContext | None = field(default=None, compare=False)

    @classmethod
    def for_settings(cls, *, production: bool, allow: Iterable[IPNetwork] = ()) -> OutboundPolicy:
        """Production allows public addresses and ``allow``; elsewhere loopback too."""
        return cls(allow=tuple(allow), loopback=not production)

    # -- checks ----------------------------------------------------------------------

    def refusal(self, address: IPAddress) -> str | None:
        """Why a connection to ``address`` is refused (None if it is allowed)."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # an allow-list of IPv4 CIDRs covers the mapped form
        if any(address in network for network in self.allow if network.version == address.version):
            return None
        reason = classify(address)
        if reason == "loopback" and self.loopback:
            return None
        return reason

    def check_url(self, url: str, *, field: str = "the URL") -> str:
        """``url`` (stripped) if maskline may be told to call it, else :class:`RefusedUrl`.

        The messages start with ``field``, so an API error or a CLI line names it.
        """
        url = url.strip()
        if len(url) > MAX_URL:
            raise RefusedUrl(f"{field} is longer than {MAX_URL} characters")
        if any(c.isspace() or ord(c) < 32 or c == "\\" for c in url):
            raise RefusedUrl(f"{field} contains spaces, backslashes or control characters")
        try:
            parts = urlsplit(url)
            host = parts.hostname
            _ = parts.port  # raises on a bad port
        except ValueError:
            raise RefusedUrl(f"{field} cannot be parsed") from None
        if parts.scheme not in ("https", "http") or not host:
            raise RefusedUrl(f"{field} must be https://host/path")
        if parts.username is not None or parts.password is not None:
            # Requests are signed instead; credentials in a URL end up in logs.
            raise RefusedUrl(f"{field} must not carry a user name or password")
        if parts.fragment:
            raise RefusedUrl(f"{field} must not have a #fragment")
        host = host.rstrip(".").lower()
        address = _literal(host)
        if host == "localhost" or host.endswith(".localhost"):
            address = ipaddress.ip_address("127.0.0.1")
        if address is not None:
            reason = self.refusal(address)
            if reason:
                raise RefusedUrl(
                    f"{field} points at a {reason} address, which maskline never calls "
                    "(MASKLINE_OUTBOUND_ALLOW opts a range in)"
                )
        if parts.scheme == "http" and not (self.loopback and address is not None and address.is_loopback):
            raise RefusedUrl(f"{field} must be https (http only to a loopback address, in development)")
        return url

    def addresses(self, host: str, port: int) -> list[IPAddress]:
        """``host`` resolved once, every address checked: RefusedUrl if any is refused."""
        literal = _literal(host)
        if host.lower() in ("localhost",) or host.lower().endswith(".localhost"):
            literal = ipaddress.ip_address("127.0.0.1")
        found = (
            [literal] if literal is not None else [ipaddress.ip_address(a) for a in self.resolve(host, port)]
        )
        if not found:
            raise RefusedUrl(f"the host name {host!r} does not resolve", kind="does not resolve")
        for address in found:
            reason = self.refusal(address)
            if reason:
                # Every address, not just the first: the one connected to is
                # whichever answers, and a name may list a public and a private one.
                raise RefusedUrl(
                    f"{host!r} resolves to a {reason} address, which maskline never calls",
                    kind=f"resolves to a {reason} address",
                )
        return found

    # -- requests ----------------------------------------------------------------------

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        """POST ``body`` to ``url``; the HTTP status (a redirect is returned, never followed).

        Raises :class:`RefusedUrl` for a refused URL or address, ``OSError``
        (``ssl.SSLError`` included) when no answer came.
        """
        return self.post_answer(url, body, headers, timeout)[0]

    def post_answer(
        self, url: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> tuple[int, bytes]:
        """:meth:`post`, with the first MAX_ANSWER bytes of the answer's body."""
        url = self.check_url(url)
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        secure = parts.scheme == "https"
        port = parts.port or (443 if secure else 80)
        address = self.addresses(host, port)[0]
        connection: http.client.HTTPConnection
        if secure:
            context = self.tls or ssl.create_default_context()
            connection = _PinnedHTTPS(host, port, address=str(address), timeout=timeout, context=context)
        else:
            connection = _PinnedHTTP(host, port, address=str(address), timeout=timeout)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request("POST", target, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read(MAX_ANSWER)
            return response.status, answer
        finally:
            connection.close()


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to the checked address, whatever the host name would resolve to now."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """As :class:`_PinnedHTTP`, then TLS verified against the URL's host name (also the SNI)."""

    def __init__(
        self, host: str, port: int, *, address: str, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        try:
            self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
