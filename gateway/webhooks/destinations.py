"""Where webhooks may go: URL rules and the address policy against server-side forgery.

A webhook URL is chosen by a tenant, and the worker calls it from inside our network. In
production a URL that names, or resolves to, a private, loopback, link-local, shared,
multicast or reserved address would let a tenant reach our own services (a cloud metadata
endpoint, the database), so it is refused, both when the endpoint is created and at every
delivery, because DNS answers change. At delivery the worker connects to the address it
checked (the URL's host stays in the Host header and TLS server name), so a second DNS
answer cannot slip past the check. The sandbox allows any address: tenants test against
receivers on their own machines.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import urllib.parse
from dataclasses import dataclass

from gateway.webhooks.errors import InvalidWebhookUrl

url_length_max = 2048
# What a URL looks like before its parts are checked: an http(s) scheme in any case (URL
# schemes are case-insensitive), then printable ASCII only (RFC 3986: an international
# host is written in punycode, other text percent-encoded), so no space or control
# character that `urlsplit` would quietly drop.
url_shape_pattern = r"^[Hh][Tt][Tt][Pp][Ss]?://[\x21-\x7e]+$"
_url_shape = re.compile(url_shape_pattern)
production_schemes = ("https",)
sandbox_schemes = ("http", "https")
resolve_timeout_seconds = 5.0

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class DestinationRefused(Exception):
    """The URL may not receive webhooks here; the message says why, for the tenant."""


async def check_new_destination(url: str, *, sandbox: bool) -> None:
    """Refuse a URL a new or changed endpoint may not have (`InvalidWebhookUrl`)."""
    try:
        await resolve(url, sandbox=sandbox)
    except DestinationRefused as refusal:
        raise InvalidWebhookUrl(str(refusal)) from None


@dataclass(frozen=True)
class Destination:
    """A checked URL: the address to connect to (None: let the client resolve) and the
    URL's own host for the Host header and TLS server name."""

    url: str
    host: str
    port: int
    address: IpAddress | None


def parse_url(url: str, *, sandbox: bool) -> urllib.parse.SplitResult:
    """The URL's parts, or `DestinationRefused` naming the rule it breaks."""
    if len(url) > url_length_max:
        raise DestinationRefused(f"the URL is longer than {url_length_max} characters")
    if _url_shape.match(url) is None:
        raise DestinationRefused(
            "the URL must be http(s):// then printable ASCII (punycode, percent-encoding)"
        )
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as error:  # An unclosed IPv6 bracket, say.
        raise DestinationRefused(f"the URL cannot be read: {error}") from None
    schemes = sandbox_schemes if sandbox else production_schemes
    if parts.scheme not in schemes:
        raise DestinationRefused(f"the URL's scheme must be {' or '.join(schemes)}")
    if not parts.hostname:
        raise DestinationRefused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise DestinationRefused("the URL may not carry credentials")
    if parts.fragment:
        raise DestinationRefused("the URL may not have a fragment")
    try:
        _ = parts.port
    except ValueError:
        raise DestinationRefused("the URL's port is not a number between 0 and 65535") from None
    return parts


def is_public(address: IpAddress) -> bool:
    """Whether an address is on the public internet (not private, loopback, link-local,
    carrier-grade shared, multicast, reserved or unspecified)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_public(address.ipv4_mapped)
    return address.is_global and not address.is_multicast


async def resolve(url: str, *, sandbox: bool) -> Destination:
    """Check the URL and, in production, every address its host resolves to."""
    parts = parse_url(url, sandbox=sandbox)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if sandbox:
        return Destination(url=url, host=host, port=port, address=None)
    addresses = await _addresses(host, port)
    refused = [a for a in addresses if not is_public(a)]
    if refused:
        raise DestinationRefused(f"{host} resolves to {refused[0]}, which is not a public address")
    return Destination(url=url, host=host, port=port, address=addresses[0])


async def _addresses(host: str, port: int) -> list[IpAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(resolve_timeout_seconds):
            answers = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError):
        raise DestinationRefused(f"{host} does not resolve") from None
    addresses = [ipaddress.ip_address(answer[4][0]) for answer in answers]
    if not addresses:
        raise DestinationRefused(f"{host} does not resolve")
    return addresses


def connect_url(destination: Destination) -> str:
    """The URL to connect to: the checked address in place of the host name."""
    if destination.address is None:
        return destination.url
    parts = urllib.parse.urlsplit(destination.url)
    literal = (
        f"[{destination.address}]"
        if isinstance(destination.address, ipaddress.IPv6Address)
        else str(destination.address)
    )
    netloc = f"{literal}:{destination.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def host_header(destination: Destination) -> str:
    """The Host header for a pinned connection: the URL's own host (and a non-default port)."""
    parts = urllib.parse.urlsplit(destination.url)
    host = f"[{destination.host}]" if ":" in destination.host else destination.host
    return host if parts.port is None else f"{host}:{parts.port}"
