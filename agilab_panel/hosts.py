"""Host names and worker maps: parsing and validation shared by settings, requests and plans.

Worker maps accept IPv4, IPv6 and DNS names; anything else is refused with a message that says why.
The listening rules live here too: what counts as loopback (reachable from this machine only), as
every interface, and as this machine at all.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Mapping
from functools import lru_cache

__all__ = ["is_local_host", "is_loopback", "is_wildcard", "own_addresses", "validate_host", "parse_host_port",
           "validate_workers", "slot_ids"]

_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
# Beyond these a worker map is a typo (an extra zero or two), not a cluster: refused before any plan
# or slot list is built for it (a million slots took hundreds of MB before anything was checked).
MAX_SLOTS_PER_HOST = 1024
MAX_SLOTS = 100_000


def validate_host(host: str) -> str:
    """Return the host unchanged when it is an IP address or a DNS name, else raise ValueError."""
    if not isinstance(host, str) or not host.strip():
        raise ValueError(f"host must be a non-empty string, got {host!r}")
    if host != host.strip():
        raise ValueError(f"host {host!r} has surrounding spaces")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(bare)
        return host
    except ValueError:
        pass
    if len(host) > 253 or not all(_DNS_LABEL.match(label) for label in host.rstrip(".").split(".")):
        raise ValueError(f"{host!r} is not an IPv4/IPv6 address or a DNS name")
    if re.fullmatch(r"[0-9.]+", host):
        raise ValueError(f"{host!r} is not a valid IPv4 address")
    return host


def parse_host_port(value: str, default_port: int | None = None) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]:port`` or a bare IPv6 address -> (host, port)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"scheduler must look like host[:port], got {value!r}")
    text = value.strip()
    if text.startswith("tcp://"):
        text = text[len("tcp://"):]
    port: str | None = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"{value!r}: missing ']' after the IPv6 address")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{value!r}: expected ':port' after ']'")
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host = text  # a bare IPv6 address or a host without a port
    validate_host(host)
    if port is None or port == "":
        if port == "":
            raise ValueError(f"{value!r}: empty port")
        return host, default_port
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r}: port must be an integer 1..65535")
    return host, int(port)


def validate_workers(workers: object) -> dict[str, int]:
    """A worker map ``{"host": slots}`` with positive int slots; a copy is returned."""
    if not isinstance(workers, Mapping):
        raise ValueError(f'workers must be a mapping like {{"127.0.0.1": 2}}, got {type(workers).__name__}')
    if not workers:
        raise ValueError("workers must name at least one host")
    result: dict[str, int] = {}
    for host, slots in workers.items():
        validate_host(host)
        if isinstance(slots, bool) or not isinstance(slots, int) or slots <= 0:
            raise ValueError(f"workers[{host!r}] must be a positive int (worker slots), got {slots!r}")
        if slots > MAX_SLOTS_PER_HOST:
            raise ValueError(f"workers[{host!r}] = {slots:,} worker slots: at most {MAX_SLOTS_PER_HOST:,} per host")
        result[host] = slots
    total = sum(result.values())
    if total > MAX_SLOTS:
        raise ValueError(f"workers: {total:,} worker slots over {len(result):,} hosts: at most {MAX_SLOTS:,} in all")
    return result


def slot_ids(workers: Mapping[str, int]) -> list[str]:
    """Stable worker slot ids: ``host-0``, ``host-1``... in map order."""
    return [f"{host}-{i}" for host, n in workers.items() for i in range(n)]


def is_loopback(host: str | None) -> bool:
    """True for ``localhost`` and loopback addresses: what only this machine can reach."""
    if not host:
        return False
    bare = host.strip("[]").lower()
    if bare == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str | None) -> bool:
    """True for a listen address meaning every interface (``0.0.0.0``, ``::``, empty or None)."""
    if not host:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def own_addresses() -> set[str]:
    """This machine's names and the addresses of all its network interfaces (not only its name's)."""
    import psutil

    found = {"localhost", socket.gethostname(), socket.getfqdn()}
    for addrs in psutil.net_if_addrs().values():
        for addr in addrs:
            if addr.family in (socket.AF_INET, socket.AF_INET6):
                found.add(addr.address.split("%")[0])  # fe80::1%eth0: the scope is not part of a Host header
    try:
        found |= {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
    except OSError:
        pass
    return found


@lru_cache(maxsize=256)
def is_local_host(host: str) -> bool:
    """True for loopback names and addresses, and for this machine's own names and addresses."""
    bare = host.strip("[]")
    return is_loopback(bare) or bare in own_addresses()
