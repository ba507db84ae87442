"""POSTing events to client systems' endpoints, without becoming a way into the clinic's
network: http(s) only, no redirects followed, a short timeout, and only to addresses on
the public internet unless listed in WEBHOOK_ALLOWED_NETWORKS.

The name is resolved and every address checked at each delivery, and the connection goes
to the address that was checked (TLS still verifies the name), so a name that resolves
differently the second time (DNS rebinding) cannot get past the check.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
import urllib3

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeDestination(ValueError):
    """A URL the service will not send to; the message says why."""


def networks(setting: str) -> list[IPNetwork]:
    """WEBHOOK_ALLOWED_NETWORKS: comma-separated CIDRs, e.g. `127.0.0.0/8,::1/128`."""
    try:
        return [ipaddress.ip_network(part.strip()) for part in setting.split(",") if part.strip()]
    except ValueError as error:
        raise RuntimeError(f"WEBHOOK_ALLOWED_NETWORKS: {error}") from None


# IPv6 forms that lead to an IPv4 address through a tunnel or translator whose far end is
# not ours to judge (6to4 2002::/16, Teredo 2001::/32, whose client is the last 32 bits
# XORed with 0xffffffff), that old stacks tunnel automatically (IPv4-compatible ::/96), or
# that only a local translator serves (NAT64 local use 64:ff9b:1::/48): refused unless
# allowed. Python calls some of them global.
TUNNELS = tuple(
    ipaddress.IPv6Network(net) for net in ("2002::/16", "2001::/32", "::/96", "64:ff9b:1::/48")
)
# Forms whose last 32 bits are the IPv4 address reached (IPv4-mapped, NAT64's well-known
# prefix): judged by that address.
CARRY_IPV4 = tuple(ipaddress.IPv6Network(net) for net in ("::ffff:0:0/96", "64:ff9b::/96"))


def _public(address: IPAddress) -> bool:
    """On the public internet, and so is any IPv4 address it stands for."""
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in net for net in TUNNELS):
            return False
        if any(address in net for net in CARRY_IPV4):
            return _public(ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF))
    return address.is_global and not (address.is_multicast or address.is_reserved)


def check(url: str, allowed: list[IPNetwork]) -> tuple[str, int, list[IPAddress]]:
    """The URL's host, port and the addresses it may be reached at; UnsafeDestination if
    it is not http(s), carries credentials, or resolves to a network not allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeDestination("The URL must start with https:// or http://.")
    if parts.username or parts.password:
        raise UnsafeDestination("The URL must not carry a user name or password.")
    try:
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeDestination("The URL's port is not a number from 1 to 65535.") from None
    if not host:
        raise UnsafeDestination("The URL names no host.")
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeDestination(f"{host} does not resolve.") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in found))
    for address in addresses:
        if not _public(address) and not any(address in net for net in allowed):
            raise UnsafeDestination(
                f"{host} resolves to {address}, which is not a public address "
                "(private, loopback and link-local networks are refused, and so are IPv6 "
                "tunnels to IPv4 and IPv6 forms of a private IPv4 address)."
            )
    return host, port, addresses


@dataclass(frozen=True, slots=True)
class Sent:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookSender:
    def __init__(self, allowed: list[IPNetwork], timeout_seconds: float = 10.0) -> None:
        self.allowed = allowed
        self.timeout = urllib3.Timeout(connect=min(5.0, timeout_seconds), read=timeout_seconds)

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Sent:
        """One POST; a redirect, a timeout or a refused destination is a failure."""
        started = time.monotonic()
        try:
            host, port, addresses = check(url, self.allowed)
        except UnsafeDestination as error:
            return Sent(None, str(error), 0)
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        pool: urllib3.HTTPConnectionPool
        if parts.scheme == "https":
            pool = urllib3.HTTPSConnectionPool(
                str(addresses[0]),
                port,
                server_hostname=host,
                assert_hostname=host,
                cert_reqs="CERT_REQUIRED",
                ca_certs=certifi.where(),
                timeout=self.timeout,
                retries=False,
            )
        else:
            pool = urllib3.HTTPConnectionPool(
                str(addresses[0]), port, timeout=self.timeout, retries=False
            )
        try:
            with pool:
                answer = pool.urlopen(
                    "POST",
                    target,
                    body=body,
                    headers={**headers, "Host": parts.netloc.rsplit("@", 1)[-1]},
                    redirect=False,
                    retries=False,
                    preload_content=False,
                )
                answer.read(4096)  # what a receiver says is not kept; the connection is
                answer.release_conn()
        except urllib3.exceptions.HTTPError as error:
            return Sent(None, f"{type(error).__name__}: {error}"[:500], _since(started))
        if 300 <= answer.status < 400:
            return Sent(answer.status, "redirects are not followed", _since(started))
        return Sent(answer.status, None, _since(started))


def _since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
