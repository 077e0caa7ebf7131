"""Refuse outbound URLs that point into the machine or its private network.

A webhook URL comes from configuration, but whoever writes it may not be whoever runs the
service, and a URL such as ``http://169.254.169.254/latest/meta-data/`` (a cloud metadata
service) or ``http://localhost:6379/`` turns a notifier into a way to reach internal services
(server-side request forgery). ``check_url`` resolves the host and refuses the URL when ANY
address it resolves to is not a public unicast address, unless the channel opts in with
``allow_private_network`` (tests, intranet receivers).

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

__all__ = ["BlockedURL", "Resolver", "address_problem", "check_url"]

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
    """Why ``address`` is not a public unicast address (None when it is one)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
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
