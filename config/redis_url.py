"""``redis+cluster://`` URLs: which nodes to ask for a Redis Cluster's layout.

``redis+cluster://[[user]:password@]host:port[,host:port...][/0]`` names one
or more startup nodes; the client learns the rest of the cluster from them.
A cluster has only database 0, so any other database number is refused
rather than silently ignored. Errors name the variable and never repeat the
URL, which may carry a password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from maskline import errors

CLUSTER_SCHEME = "redis+cluster://"

# A DNS name or IPv4 address, or an IPv6 address in brackets.
_HOST_PORT = re.compile(
    r"^(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?))"
    r":(?P<port>[0-9]{1,5})\Z"
)


class RedisUrlError(errors.InputError, ValueError):
    """A Redis URL maskline cannot use; the message names the variable."""


@dataclass(frozen=True, kw_only=True)
class ClusterUrl:
    """A parsed ``redis+cluster://`` URL (``password`` is never in a repr)."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:
        return f"ClusterUrl(nodes={self.nodes!r})"


def is_cluster_url(url: str | None) -> bool:
    """True for a ``redis+cluster://`` URL (the scheme is case-insensitive)."""
    return url is not None and url.lower().startswith(CLUSTER_SCHEME)


def parse_cluster_url(name: str, url: str) -> ClusterUrl:
    """Startup nodes and credentials of a ``redis+cluster://`` URL, checked."""
    if not is_cluster_url(url):
        raise RedisUrlError(f"{name} must start with {CLUSTER_SCHEME}")
    rest = url[len(CLUSTER_SCHEME) :]
    if "?" in rest or "#" in rest:
        raise RedisUrlError(f"{name}: options after '?' are not supported in a {CLUSTER_SCHEME} URL")
    netloc, slash, path = rest.partition("/")
    if slash and path not in ("", "0"):
        raise RedisUrlError(f"{name}: a Redis Cluster has only database 0, not {path!r}")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    nodes = []
    for position, part in enumerate(hosts.split(","), start=1):
        if not part.strip():
            raise RedisUrlError(f"{name} names no node, or an empty one (host:port[,host:port...])")
        # The node's position, not its text: a mistyped URL may put a password here.
        match = _HOST_PORT.match(part.strip())
        if not match:
            raise RedisUrlError(f"{name}: node {position} is not host:port")
        port = int(match.group("port"))
        if not 1 <= port <= 65535:
            raise RedisUrlError(f"{name}: the port of node {position} is not between 1 and 65535")
        nodes.append((match.group("ipv6") or match.group("host"), port))
    return ClusterUrl(nodes=tuple(nodes), username=username, password=password)
