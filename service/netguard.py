"""Refuse outbound URLs that point into the machine or its private network.

A webhook URL comes from configuration, but whoever writes it may not be whoever runs the
service, and a URL such as ``http://169.254.169.254/latest/meta-data/`` (a cloud metadata
service) or ``http://localhost:6379/`` turns a notifier into a way to reach internal services
(server-side request forgery). ``check_url`` resolves the host and refuses the URL when ANY
address it resolves to is not a public unicast address, unless the channel opts in with
``allow_private_network`` (tests, intranet receivers).

IPv6 forms that embed an IPv4 address (NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``, Teredo,
IPv4-mapped, -translated and -compatible) are judged by the IPv4 address they carry as well.

Limit: the HTTP client resolves the name again when it connects, so a DNS server that answers
differently the second time (DNS rebinding) is not stopped here. Redirects are never followed
by the senders, so a public URL cannot bounce a request inward.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from service.errors import DeliveryError

__all__ = ["BlockedURL", "Resolver", "address_problem", "check_host", "check_url"]

# socket.getaddrinfo's shape: (host, port, *, type=…) -> [(family, type, proto, name, sockaddr)]
Resolver = Callable[..., Sequence[tuple[Any, ...]]]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class BlockedURL(DeliveryError, ValueError):
    """A URL trialwatch will not send to; trying again cannot help (``retryable`` is False).

    Also a ``ValueError``, so settings validation can use ``check_url`` as a validator.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


def address_problem(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address (None when it is one).

    An IPv6 address that carries an IPv4 address inside it (mapped, translated, compatible,
    NAT64, 6to4, Teredo) is judged by that IPv4 address too: a gateway or relay on the path
    delivers ``64:ff9b::7f00:1`` or ``2002:a00:1::`` to 127.0.0.1 or 10.0.0.1.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL:
            return "non-public (NAT64 local-use)"
        for inner, form in _embedded_ipv4(address):
            problem = _plain_problem(inner)
            if problem is not None:
                return f"{problem} ({form} form of {inner})"
    return _plain_problem(address)


# RFC 8215: a NAT64 prefix for one network's own use; what it reaches is that network.
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_EMBEDDING: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (ipaddress.IPv6Network("::ffff:0:0/96"), "IPv4-mapped"),
    (ipaddress.IPv6Network("::ffff:0:0:0/96"), "IPv4-translated"),  # SIIT, RFC 2765
    (ipaddress.IPv6Network("64:ff9b::/96"), "NAT64"),  # RFC 6052 well-known prefix
    (ipaddress.IPv6Network("::/96"), "IPv4-compatible"),  # deprecated, RFC 4291
)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[tuple[ipaddress.IPv4Address, str]]:
    """The IPv4 addresses ``address`` embeds, each with the name of its form."""
    found = [
        (ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF), form)
        for network, form in _EMBEDDING
        if address in network
    ]
    if address.sixtofour is not None:
        found.append((address.sixtofour, "6to4"))
    if address.teredo is not None:
        server, client = address.teredo
        found += [(client, "Teredo"), (server, "Teredo server")]
    # :: and ::1 are themselves (unspecified, loopback), not IPv4-compatible 0.0.0.0/0.0.0.1
    return [(inner, form) for inner, form in found if int(address) > 1]


def _plain_problem(address: IPAddress) -> str | None:
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_unspecified:
        return "unspecified"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    # Shared (100.64/10), documentation, benchmarking and reserved ranges.
    return None if address.is_global else "non-public"


def check_url(url: str, allow_private: bool, *, resolve: Resolver = socket.getaddrinfo) -> None:
    """Raise ``BlockedURL`` unless ``url`` is http(s) and (unless ``allow_private``) every
    address its host resolves to is public. A host that does not resolve raises a retryable
    ``DeliveryError`` (DNS failures are usually passing). Messages name the host, never the
    whole URL: webhook paths and queries often carry tokens."""
    host, port = _host_and_port(url)
    check_host(host, port, allow_private, resolve=resolve)


def check_host(
    host: str, port: int, allow_private: bool, *, resolve: Resolver = socket.getaddrinfo
) -> None:
    """``check_url`` for a host and port of any protocol (apprise's json://, ntfy://, …)."""
    if allow_private:
        return
    for address in _resolve(host, port, resolve):
        problem = address_problem(address)
        if problem is not None:
            raise BlockedURL(
                f"host {host} resolves to {address}, a {problem} address; "
                "set allow_private_network = true on the channel to allow it"
            )


def _host_and_port(url: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is not a number, a malformed IPv6 literal
        raise BlockedURL("URL is malformed") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BlockedURL("URL must be http:// or https:// with a host")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def _resolve(host: str, port: int, resolve: Resolver) -> list[IPAddress]:
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DeliveryError(
            f"host {host} does not resolve ({exc.strerror})", retryable=True
        ) from None
    except UnicodeError:  # an IDNA label that cannot be encoded
        raise BlockedURL(f"host {host!r} is not a valid host name") from None
    addresses = []
    for info in infos:
        # An IPv6 link-local answer may carry a zone ("fe80::1%eth0").
        text = str(info[4][0]).split("%", 1)[0]
        addresses.append(ipaddress.ip_address(text))
    if not addresses:
        raise DeliveryError(f"host {host} resolves to no address", retryable=True)
    return addresses
