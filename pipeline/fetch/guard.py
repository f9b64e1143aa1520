"""The address guard: which destinations a fetch may connect to, decided on the addresses a host resolves to.

By default only public addresses pass. A host is resolved once (:attr:`AddressGuard.resolver`); every
address it resolves to is checked, and the connection is then made to a checked address itself
(:mod:`pipeline.fetch.network`), never by a second lookup that a rebinding DNS server could answer
differently. Refused: loopback, private (RFC 1918, unique local), link-local (cloud metadata at
169.254.169.254), multicast, reserved, unspecified, shared (CGNAT 100.64.0.0/10) and every other address
that is not globally routable; an IPv4 address wrapped in IPv6 (``::ffff:a.b.c.d``, 6to4 ``2002::/16``,
NAT64 ``64:ff9b::/96``) is judged by the IPv4 address inside, Teredo is refused; and the names
``localhost`` and ``*.localhost`` are refused without a lookup. Numeric host forms (``2130706433``,
``0x7f.0.0.1``, ``017700000001``) resolve to the address they stand for and are judged by it.
``allow_private`` turns the check off (an intranet crawl, the tests on 127.0.0.1).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# host, port -> the addresses the host resolves to, as text (what socket.getaddrinfo gives).
Resolver = Callable[[str, int], Sequence[str]]

_SHARED = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598; Python's is_private does not count it
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address is the last 32 bits
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: local use, any translation behind it
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


class BlockedAddress(Exception):
    """A destination the guard refuses: the host, the address it resolved to (if any) and why."""

    def __init__(self, host: str, address: str | None, why: str) -> None:
        self.host = host
        self.address = address
        self.why = why
        where = f"{host} resolves to {address}" if address and address != host else f"{host}"
        super().__init__(f"{where}: {why}, not a public address (--allow-private lets it through)")


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (``socket.getaddrinfo``), in the system's order, each once.

    Raises:
        OSError: the name does not resolve (``socket.gaierror``).
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_refusal(address: IPAddress) -> str | None:
    """Why ``address`` is not a public destination (``"loopback"``, ``"private"`` ...), or ``None``."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded, form = _embedded_ipv4(address)
        if embedded is not None:
            why = address_refusal(embedded)
            # A public IPv4 address in one of these forms is that address (DNS64 hands out NAT64 ones).
            return f"{why} {embedded} in {form} form" if why else None
        if address.teredo is not None:
            return "Teredo (tunnels to an address it hides)"
        if address in _NAT64_LOCAL:
            return "local-use NAT64"
    for label, hit in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
        ("shared (CGNAT)", address in _SHARED),
    ):
        if hit:
            return label
    return None if address.is_global else "not globally routable"


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address | None, str]:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped, "IPv4-mapped"
    if address.sixtofour is not None:
        return address.sixtofour, "6to4"
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "NAT64"
    return None, ""


def name_refusal(host: str) -> str | None:
    """Why the host name itself is refused before any lookup (a name for this machine), or ``None``."""
    name = host.rstrip(".").lower()
    if name in _LOCAL_NAMES or name.endswith(".localhost"):
        return "a name for this machine"
    return None


def parse_address(text: str) -> IPAddress:
    """An address as a resolver gives it (an IPv6 zone such as ``%eth0`` is kept).

    Raises:
        ValueError: not an IP address.
    """
    return ipaddress.ip_address(text)


@dataclass(frozen=True, slots=True)
class AddressGuard:
    """Resolves a host once and refuses it unless every address is public (or ``allow_private``).

    Attributes:
        allow_private: let every address through (an intranet crawl; tests against 127.0.0.1).
        resolver: ``resolver(host, port)`` gives the host's addresses; tests pass a stub.
    """

    allow_private: bool = False
    resolver: Resolver = system_resolver

    def addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses to connect to for ``host``, each checked; one call of the resolver.

        Raises:
            BlockedAddress: the name, or any address it resolves to, is not public.
            OSError: the name does not resolve (or resolves to nothing usable).
        """
        if not self.allow_private and (why := name_refusal(host)):
            raise BlockedAddress(host, None, why)
        try:
            literal = parse_address(host.strip("[]"))
        except ValueError:
            texts = self.resolver(host, port)
        else:
            texts = [str(literal)]  # an address in the URL: nothing to look up
        resolved = []
        for text in texts:
            try:
                resolved.append(parse_address(text))
            except ValueError:
                raise OSError(f"{host} resolved to {text!r}, not an IP address") from None
        if not resolved:
            raise OSError(f"{host} resolves to no address")
        if not self.allow_private:
            for address in resolved:
                if why := address_refusal(address):
                    raise BlockedAddress(host, str(address), why)
        return resolved
