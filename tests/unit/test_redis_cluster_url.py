"""MASKLINE_REDIS_URL=redis+cluster://...: parsed and checked in settings."""

from __future__ import annotations

from pathlib import Path

import fakeredis
import pytest
from limits.storage import storage_from_string

from config import SettingsError, load_settings
from config.redis_url import ClusterUrl, is_cluster_url, parse_cluster_url
from maskline.limiter_storage import LazyClusterStorage
from maskline.redis_backend import is_cluster, ping, storage_uri


def _load(url: str, tmp_path: Path) -> str | None:
    env = {"MASKLINE_REDIS_URL": url, "MASKLINE_INSTANCE_PATH": str(tmp_path)}
    return load_settings(environ=env).redis_url


@pytest.mark.parametrize(
    ("url", "nodes"),
    [
        ("redis+cluster://10.0.0.1:7000", (("10.0.0.1", 7000),)),
        ("redis+cluster://a.example:7000,b.example:7001/", (("a.example", 7000), ("b.example", 7001))),
        ("REDIS+CLUSTER://h:1/0", (("h", 1),)),
        ("redis+cluster://[::1]:7000", (("::1", 7000),)),
    ],
)
def test_good_cluster_urls_name_their_startup_nodes(
    url: str, nodes: tuple[tuple[str, int]], tmp_path: Path
) -> None:
    assert _load(url, tmp_path) == url
    assert parse_cluster_url("X", url).nodes == nodes


def test_credentials_are_parsed_and_kept_out_of_repr() -> None:
    url = parse_cluster_url("X", "redis+cluster://app:s%40cret@h:7000")
    assert (url.username, url.password) == ("app", "s@cret")
    assert "cret" not in repr(url) and isinstance(url, ClusterUrl)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+cluster://", "names no node"),
        ("redis+cluster://h:7000,,h:7001", "names no node"),
        ("redis+cluster://h", "node 1 is not host:port"),
        ("redis+cluster://h:7000,h:port", "node 2 is not host:port"),
        ("redis+cluster://h:70000", "not between 1 and 65535"),
        ("redis+cluster://h:0", "not between 1 and 65535"),
        ("redis+cluster://bad_host!:7000", "node 1 is not host:port"),
        ("redis+cluster://h:7000/1", "only database 0"),
        ("redis+cluster://h:7000/0?ssl=true", "options after"),
    ],
)
def test_bad_cluster_urls_are_refused_naming_the_variable(url: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=message) as caught:
        _load(url, tmp_path)
    assert str(caught.value).startswith("MASKLINE_REDIS_URL")


def test_an_error_never_repeats_a_password(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        _load("redis+cluster://:hunter2,h:7000", tmp_path)  # a forgotten "@"
    assert "hunter2" not in str(caught.value)


def test_single_redis_urls_are_not_cluster_urls() -> None:
    assert not is_cluster_url("redis://127.0.0.1:6379/0") and not is_cluster_url(None)


def test_the_rate_limiter_gets_the_cluster_url_for_a_storage_that_connects_on_first_use(
    tmp_path: Path,
) -> None:
    url = "redis+cluster://h:7000,h:7001"
    # limits' own cluster storage would ask h:7000 for the slot map here, and fail.
    storage = storage_from_string(storage_uri(url, instance_path=tmp_path))
    assert isinstance(storage, LazyClusterStorage)


def test_a_single_redis_is_pinged_as_itself() -> None:
    client = fakeredis.FakeRedis()
    assert not is_cluster(client) and ping(client)
