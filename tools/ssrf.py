"""The SSRF guard of `fetch_page`: which hosts a fetch may reach, resolved once.

Every address a name resolves to must be public (no loopback, private, link-local incl.
169.254.169.254, CGNAT, unspecified, multicast, reserved, their IPv6 equivalents, IPv4-mapped
IPv6), and the loose IPv4 spellings `inet_aton` accepts (2130706433, 0177.0.0.1, 0x7f.1) are
read as the addresses they are. The caller then connects to the checked address itself
(`tools.fetch` pins it), so DNS rebinding between check and connect cannot happen.

What this is not: a firewall. It judges the addresses a fetch is about to use; it does not stop
other code from opening sockets (the sandbox has its own, stricter walls), and hosts in
`FetchSettings.allow_hosts` skip it (tests, the eval server).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from tools.base import ToolError
from tools.settings import FetchSettings

CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def loose_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """Parse the IPv4 spellings inet_aton accepts (1-4 parts, decimal/0octal/0xhex), or None.

    Done here rather than trusting the resolver, so the answer doesn't depend on the libc.
    """
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values = []
    for part in parts:
        if re.fullmatch(r"0[xX][0-9a-fA-F]*", part):
            values.append(int(part[2:] or "0", 16))
        elif re.fullmatch(r"0[0-7]*", part):
            values.append(int(part, 8))
        elif re.fullmatch(r"[1-9][0-9]*", part):
            values.append(int(part))
        else:
            return None
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = last
    for i, v in enumerate(head):
        number += v << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return loose_ipv4(host)


def refusal_reason(ip: IPAddress) -> str | None:
    """Why an address must not be fetched, or None when it is a public address."""
    if isinstance(ip, ipaddress.IPv6Address):  # IPv4 carried inside IPv6 is judged as IPv4
        nat64 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in NAT64 else None
        embedded = ip.ipv4_mapped or ip.sixtofour or nat64
        if embedded is not None:
            return refusal_reason(embedded)
    checks = [
        ("loopback", ip.is_loopback),
        ("unspecified", ip.is_unspecified),
        ("link-local", ip.is_link_local),
        ("carrier-grade NAT", isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved or not ip.is_global),
    ]
    return next((label for label, hit in checks if hit), None)


def is_allowed_host(host: str, port: int, settings: FetchSettings) -> bool:
    """Whether an allow_hosts entry ("host", "host:port", "[v6]", "[v6]:port") names this host."""
    for entry in settings.allow_hosts:
        parts = urlsplit(f"//{entry.strip().lower()}")
        try:
            entry_port = parts.port
        except ValueError:
            continue
        if (parts.hostname or "").rstrip(".") == host and entry_port in (None, port):
            return True
    return False


def resolve(host: str, port: int, deadline: float) -> list[Any]:
    """getaddrinfo, given up at the deadline: the resolver has no timeout of its own to pass,
    so it runs in a daemon thread that is left to finish on its own if it hangs."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as e:
            outcome.append(e)

    worker = threading.Thread(target=run, name="fetch-resolve", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if not outcome:
        raise ToolError(f"resolving host '{host}' took too long (over the overall deadline)")
    if isinstance(outcome[0], Exception):
        raise ToolError(f"could not resolve host '{host}': {outcome[0]}")
    return outcome[0]


def checked_addresses(host: str, port: int, deadline: float) -> list[str]:
    """Resolve once and return the addresses to connect to; refuse if any is not public.

    Every address must pass, not just one: a name with one public and one private record would
    otherwise let the connection land on the private one.
    """
    ip = literal_ip(host)
    if ip is not None:
        ips = [ip]
    else:
        infos = resolve(host, port, deadline)
        ips = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for candidate in ips:
        reason = refusal_reason(candidate)
        if reason is not None:
            raise ToolError(
                f"refused to fetch '{host}': it is a {reason} address ({candidate}); "
                "fetch_page only reads public web sites"
            )
    return list(dict.fromkeys(str(candidate) for candidate in ips))
