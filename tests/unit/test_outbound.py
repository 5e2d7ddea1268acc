"""The outbound guard's rules: which addresses and URLs maskline never calls."""

from __future__ import annotations

import ipaddress

import pytest

from config import SettingsError, load_settings
from maskline.outbound import OutboundPolicy, RefusedUrl, parse_cidrs

PRODUCTION = OutboundPolicy()
DEVELOPMENT = OutboundPolicy(loopback=True)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "RFC 1918"),
        ("172.16.5.4", "RFC 1918"),
        ("192.168.1.1", "RFC 1918"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "CGNAT"),
        ("100.127.255.254", "CGNAT"),
        ("fd00:ec2::254", "unique local"),
        ("fc00::1", "unique local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.10", "reserved"),
        ("198.18.0.1", "reserved"),
        ("2001:db8::1", "reserved"),
        ("fec0::1", "site-local"),
        # IPv6 forms that carry a refused IPv4 address
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:10.0.0.1", "RFC 1918"),
        ("::127.0.0.1", "loopback"),
        ("64:ff9b::a00:1", "RFC 1918"),
        ("2002:a9fe:a9fe::1", "link-local"),
    ],
)
def test_non_public_addresses_are_refused_with_their_kind(address: str, reason: str) -> None:
    refusal = PRODUCTION.refusal(ipaddress.ip_address(address))

    assert refusal is not None and reason in refusal


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert PRODUCTION.refusal(ipaddress.ip_address(address)) is None


def test_development_allows_loopback_and_nothing_else_private() -> None:
    assert DEVELOPMENT.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert DEVELOPMENT.refusal(ipaddress.ip_address("::ffff:127.0.0.1")) is None
    assert DEVELOPMENT.refusal(ipaddress.ip_address("10.0.0.1")) is not None
    assert DEVELOPMENT.refusal(ipaddress.ip_address("169.254.169.254")) is not None


def test_an_allowed_range_is_opted_in_and_only_it() -> None:
    policy = OutboundPolicy(allow=parse_cidrs("X", "10.20.0.0/16, fd00:1::/64"))

    assert policy.refusal(ipaddress.ip_address("10.20.3.4")) is None
    assert policy.refusal(ipaddress.ip_address("::ffff:10.20.3.4")) is None
    assert policy.refusal(ipaddress.ip_address("fd00:1::5")) is None
    assert policy.refusal(ipaddress.ip_address("10.21.0.1")) is not None
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is not None


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/hook",
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[::ffff:a9fe:a9fe]/hook",
        "https://localhost/hook",
        "https://api.localhost/hook",
        "https://127.1/hook",
        "https://2130706433/hook",
        "https://0x7f000001/hook",
        "https://0177.0.0.1/hook",
        "https://0/hook",
        "https://100.64.1.1/hook",
        "https://[fd00::1]/hook",
    ],
)
def test_urls_at_internal_addresses_are_refused_when_set(url: str) -> None:
    with pytest.raises(RefusedUrl, match=r"^CallbackUrl points at an? .* address"):
        PRODUCTION.check_url(url, field="CallbackUrl")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://hooks.example.com/", "must be https"),
        ("ftp://hooks.example.com/", "https://host/path"),
        ("https://user:pw@hooks.example.com/", "user name"),
        ("https://hooks.example.com/a\\b", "backslashes"),
    ],
)
def test_malformed_urls_are_refused_naming_the_field(url: str, reason: str) -> None:
    with pytest.raises(RefusedUrl, match=f"^the URL .*{reason}"):
        PRODUCTION.check_url(url)


def test_development_takes_http_to_loopback_only() -> None:
    assert DEVELOPMENT.check_url("http://127.0.0.1:9000/x") == "http://127.0.0.1:9000/x"
    with pytest.raises(RefusedUrl, match="must be https"):
        DEVELOPMENT.check_url("http://hooks.example.com/x")


def test_every_resolved_address_is_checked() -> None:
    # A name with a public and a private address: whichever answers is what a
    # connection reaches, so one refused address refuses the name.
    policy = OutboundPolicy(resolve=lambda host, port: ["93.184.215.14", "10.0.0.7"])

    with pytest.raises(RefusedUrl, match="resolves to a private"):
        policy.addresses("hooks.example.com", 443)


def test_the_allow_list_is_a_setting_and_refuses_a_bad_cidr() -> None:
    settings = load_settings(environ={"MASKLINE_OUTBOUND_ALLOW": "10.9.0.0/16"})
    assert settings.outbound_allow == (ipaddress.ip_network("10.9.0.0/16"),)
    with pytest.raises(SettingsError, match="MASKLINE_OUTBOUND_ALLOW: 'ten' is not a CIDR"):
        load_settings(environ={"MASKLINE_OUTBOUND_ALLOW": "ten"})


@pytest.mark.parametrize("name", ["ALERTS_URL", "ALIYUN_REPORT_URL", "AUDIT_CHECKPOINT_URL"])
def test_the_operator_s_own_urls_pass_the_same_guard(name: str) -> None:
    environ = {
        "MASKLINE_ENV": "production",
        f"MASKLINE_{name}": "https://169.254.169.254/x",
        "MASKLINE_ALERTS_SECRET": "s",
        "MASKLINE_ALIYUN_REPORT_SECRET": "s",
    }
    with pytest.raises(SettingsError, match=f"MASKLINE_{name} points at a link-local address"):
        load_settings(environ=environ)
