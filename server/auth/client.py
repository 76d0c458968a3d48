"""Who is on the other end of the connection: the client address of a request.

The address is what the throttle counts failures against and what the audit
log records, so it must not be something a client can choose.  It is the
peer's address (``REMOTE_ADDR``) unless the peer is one of ``[server]
trusted_proxies``; only then is ``X-Forwarded-For`` read, from the right (each
proxy appends the address it received the request from), skipping addresses
that are themselves trusted proxies.  Entries to the left of the first
untrusted one were written by the client, so they are never believed.

A header that cannot be parsed is ignored from the first bad entry on: the
answer is then the last hop we can vouch for (a trusted proxy).  Addresses are
returned in canonical form (``ipaddress``'s ``str``), IPv4-mapped IPv6
addresses as IPv4, so one client has one spelling.  Grouping addresses (IPv6
by /64) is the throttle's business, not this module's.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["Network", "client_address", "parse_address"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Longest X-Forwarded-For header read; a longer one is ignored (a proxy chain is short).
_MAX_FORWARDED = 4096


@functools.lru_cache(maxsize=4096)  # a pure function on the path of every request
def parse_address(text: str) -> Address | None:
    """An address from ``1.2.3.4``, ``1.2.3.4:5678``, ``2001:db8::1`` or ``[2001:db8::1]:443``; None if malformed.

    Some proxies write the client's port after the address; it is dropped.
    IPv4-mapped IPv6 addresses (``::ffff:1.2.3.4``, seen on dual-stack
    sockets) come back as IPv4.
    """
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        text = host
    elif text.count(":") == 1:  # IPv4 with a port; IPv6 has two colons or more
        host, _, port = text.partition(":")
        if not port.isdigit():
            return None
        text = host
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, proxies: Iterable[Network]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_address(environ: Mapping[str, Any], trusted_proxies: Iterable[Network]) -> str:
    """The address of the client that sent this WSGI request (see the module docstring).

    Never fails: a missing or unparseable ``REMOTE_ADDR`` is returned as given
    (``""`` when absent), so the caller still has one key per peer.
    """
    remote_text = str(environ.get("REMOTE_ADDR") or "")
    remote = parse_address(remote_text)
    if remote is None:
        return remote_text.strip()
    proxies = tuple(trusted_proxies)
    if not proxies or not _trusted(remote, proxies):
        return str(remote)
    header = environ.get("HTTP_X_FORWARDED_FOR")
    if not isinstance(header, str) or len(header) > _MAX_FORWARDED:
        return str(remote)
    client = remote
    for entry in reversed(header.split(",")):
        hop = parse_address(entry)
        if hop is None:
            break  # written by someone we cannot vouch for: stop at the last good hop
        client = hop
        if not _trusted(hop, proxies):
            break
    return str(client)
