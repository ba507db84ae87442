"""Where a webhook may be sent: IPv6 forms that lead to an IPv4 address are judged by that
address, and tunnels (6to4, Teredo) are refused unless the clinic allows their network.
Literal addresses only: no DNS is asked."""

from __future__ import annotations

import ipaddress

import pytest

from billing.adapters.webhook_sender import UnsafeDestination, check, networks

REFUSED = {
    # IPv4-mapped (::ffff:0:0/96): loopback, the cloud metadata address, a private network
    "mapped loopback": "http://[::ffff:127.0.0.1]/hook",
    "mapped metadata": "http://[::ffff:a9fe:a9fe]/latest/meta-data",
    "mapped private": "http://[::ffff:10.0.0.1]/hook",
    # IPv4-compatible (::/96, deprecated): tunnelled automatically by old stacks
    "compatible loopback": "http://[::127.0.0.1]/hook",
    "compatible public": "http://[::8.8.8.8]/hook",
    # 6to4 (2002::/16): the IPv4 address is bits 16-47
    "6to4 metadata": "http://[2002:a9fe:a9fe::]/",
    "6to4 loopback": "http://[2002:7f00:1::]:8299/",
    "6to4 public": "http://[2002:808:808::]/",
    # Teredo (2001::/32): the client is the last 32 bits XORed with 0xffffffff
    "teredo loopback": "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
    "teredo public": "http://[2001:0:4136:e378:8000:63bf:f7f7:f7f7]/",
    # NAT64: the well-known prefix judged by the IPv4 address; the local-use one refused
    "nat64 loopback": "http://[64:ff9b::7f00:1]/hook",
    "nat64 metadata": "http://[64:ff9b::a9fe:a9fe]/hook",
    "nat64 private": "http://[64:ff9b::c0a8:1]/hook",
    "nat64 local use": "http://[64:ff9b:1::808:808]/hook",
    # and as before
    "loopback": "http://[::1]/hook",
    "link-local": "http://[fe80::1]/hook",
    "unique local": "http://[fd00::1]/hook",
    "ipv4 metadata": "http://169.254.169.254/latest/meta-data",
}
ACCEPTED = {
    "ipv4 public": "https://8.8.8.8/hook",
    "ipv6 public": "https://[2606:4700:4700::1111]/hook",
    "mapped public": "https://[::ffff:8.8.8.8]/hook",
    "nat64 public": "https://[64:ff9b::808:808]/hook",
}


def test_teredo_urls_above_name_the_client_address_they_claim() -> None:
    def client(url: str) -> ipaddress.IPv4Address:
        literal = url.split("[", 1)[1].split("]", 1)[0]
        teredo = ipaddress.IPv6Address(literal).teredo
        assert teredo is not None
        return teredo[1]

    assert client(REFUSED["teredo loopback"]) == ipaddress.IPv4Address("127.0.0.1")
    assert client(REFUSED["teredo public"]) == ipaddress.IPv4Address("8.8.8.8")


@pytest.mark.parametrize("url", REFUSED.values(), ids=REFUSED.keys())
def test_addresses_that_lead_into_private_networks_or_through_tunnels_are_refused(
    url: str,
) -> None:
    with pytest.raises(UnsafeDestination, match="not a public address"):
        check(url, [])


@pytest.mark.parametrize("url", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_public_addresses_are_accepted(url: str) -> None:
    host, port, addresses = check(url, [])
    assert port == 443 and [str(a) for a in addresses] == [str(ipaddress.ip_address(host))]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://[2002:a9fe:a9fe::]/", "2002::/16"),
        ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "2001::/32"),
        ("http://[::ffff:127.0.0.1]/hook", "::ffff:127.0.0.0/104"),
        ("http://[64:ff9b:1::808:808]/hook", "64:ff9b:1::/48"),
    ],
)
def test_a_network_the_clinic_allows_is_accepted_whatever_it_is(url: str, allowed: str) -> None:
    check(url, networks(allowed))
