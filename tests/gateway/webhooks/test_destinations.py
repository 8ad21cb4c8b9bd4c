"""Where webhooks may go. In production: https only, and no host that is or resolves to a
private, loopback, link-local, shared, multicast or reserved address; the connection goes to
the address that was checked, with the URL's host kept for Host and TLS. In sandbox: any."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.webhooks.destinations import (
    Destination,
    DestinationRefused,
    connect_url,
    host_header,
    is_public,
    parse_url,
    resolve,
)

refused_addresses = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "::1",
    "fe80::1",
    "fc00::1",
    "::ffff:127.0.0.1",
    "::",
]


@pytest.mark.parametrize("address", refused_addresses)
def test_internal_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_internet_addresses_are_public(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hooks",
        "https://[::1]:8443/hooks",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost/hooks",
        "http://93.184.215.14/hooks",
        "https://user:pass@93.184.215.14/hooks",
        "ftp://93.184.215.14/",
        "https:///nohost",
        "https://no-such-host.invalid/hooks",
    ],
)
async def test_production_refuses_internal_or_unsafe_destinations(url: str) -> None:
    with pytest.raises(DestinationRefused):
        await resolve(url, sandbox=False)


async def test_production_pins_the_checked_address_and_keeps_the_name() -> None:
    destination = await resolve("https://93.184.215.14:8443/in?x=1", sandbox=False)
    assert destination.address == ipaddress.ip_address("93.184.215.14")
    assert connect_url(destination) == "https://93.184.215.14:8443/in?x=1"
    named = Destination(
        url="https://hooks.example.com/in",
        host="hooks.example.com",
        port=443,
        address=ipaddress.ip_address("2606:4700::1111"),
    )
    assert connect_url(named) == "https://[2606:4700::1111]:443/in"
    assert host_header(named) == "hooks.example.com"


async def test_sandbox_allows_local_receivers_over_http() -> None:
    destination = await resolve("http://127.0.0.1:9000/hooks", sandbox=True)
    assert destination.address is None
    assert connect_url(destination) == "http://127.0.0.1:9000/hooks"


def test_every_url_rule_holds_in_sandbox_too() -> None:
    for url in (
        "ftp://x/",
        "http://u:p@x/",
        "http://x/#frag",
        "http://x:99999/",
        "x" * 3000,
        # Printable ASCII only: `urlsplit` would quietly drop the tab and keep the rest.
        "http://x/a\tb",
        " http://x/",
        "https://\U00080d47",
        "hTTPs://c]",  # an unclosed IPv6 bracket, which `urlsplit` raises on
    ):
        with pytest.raises(DestinationRefused):
            parse_url(url, sandbox=True)


def test_a_scheme_in_any_case_is_taken() -> None:
    assert parse_url("HTTPS://example.com/hooks", sandbox=False).scheme == "https"
