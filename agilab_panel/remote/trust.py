"""Trusting a new host on the user's word: the key a host offers, shown before anything is recorded, and
the recording of exactly that key in known_hosts.

INSTALL refuses a host whose key is not in known_hosts (unless ``ssh_trust_new_hosts`` is on). The page
then shows the key the host offers (type and fingerprint) and a button; the button calls
:func:`trust_host_key` with the fingerprint the user saw, which asks the host again and records its key
only if it is still that one. A host whose recorded key differs from the one it offers is never
recorded over: the old line must be removed by hand, after checking with the host's owner.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import asyncssh

from ..fsutil import atomic_write_text
from .connect import _read_known, host_key_line
from .errors import RemoteHostError
from .options import SshOptions, check_remote_host

__all__ = ["HostKeyOffer", "host_key_offer", "trust_host_key"]

KeyStatus = Literal["known", "unknown", "changed"]


@dataclass(frozen=True)
class HostKeyOffer:
    """The key ``host`` offers and how known_hosts sees it: ``known`` (recorded), ``unknown`` (no line for
    the host: it may be trusted) or ``changed`` (another key recorded: refused)."""

    host: str
    port: int
    key_type: str
    fingerprint: str
    status: KeyStatus
    known_hosts: Path

    @property
    def message(self) -> str:
        """One line for the user: what the host offers and what can be done about it."""
        key = f"{self.key_type} key {self.fingerprint}"
        if self.status == "changed":
            return (f"host {self.host}: host key changed (it offers the {key}, not the key recorded in "
                    f"{self.known_hosts}): refused; if the host was really reinstalled, remove its old line from "
                    "known_hosts")
        if self.status == "unknown":
            return f"host {self.host}: not in {self.known_hosts}; it offers the {key}"
        return f"host {self.host}: its {key} is recorded in {self.known_hosts}"


async def _offered(host: str, options: SshOptions, port: int) -> tuple[asyncssh.SSHKey, KeyStatus]:
    """The key the host offers in a key exchange (no authentication), and its status in known_hosts."""
    check_remote_host(host)
    address = host.strip("[]")
    known = _read_known(options.known_hosts)
    recorded = list(asyncssh.match_known_hosts(known, address, address, port)[0])
    # with a key recorded, ask for that key's type, as a connection would: another type is no "change"
    algs = [a.decode() for k in recorded for a in k.sig_algorithms] or ()
    try:
        key = await asyncio.wait_for(asyncssh.get_server_host_key(
            address, port, server_host_key_algs=algs,
            config=[str(options.config)] if options.config else None), options.connect_timeout + 5)
    except asyncssh.KeyExchangeFailed:
        if recorded:  # none of the recorded key types is offered any more
            raise RemoteHostError(host, "host-key-changed", f"host key changed (none of the key types recorded in "
                                  f"{options.known_hosts} is offered): refused") from None
        raise RemoteHostError(host, "unreachable", "SSH key exchange failed") from None
    except (OSError, asyncio.TimeoutError, asyncssh.Error) as exc:
        what = "timed out" if isinstance(exc, asyncio.TimeoutError) else (str(exc) or type(exc).__name__)
        raise RemoteHostError(host, "unreachable", f"unreachable over SSH on port {port}: {what}") from None
    if key is None:
        raise RemoteHostError(host, "unreachable", "the host offered no host key")
    if not recorded:
        return key, "unknown"
    return key, "known" if any(k.public_data == key.public_data for k in recorded) else "changed"


async def host_key_offer(host: str, options: SshOptions, port: int = 22) -> HostKeyOffer:
    """Ask ``host`` for its key (a key exchange only: nothing runs there) and compare it with known_hosts."""
    key, status = await _offered(host, options, port)
    return HostKeyOffer(host, port, key.get_algorithm(), key.get_fingerprint(), status, options.known_hosts)


async def trust_host_key(host: str, fingerprint: str, options: SshOptions, port: int = 22) -> HostKeyOffer:
    """Record in known_hosts the key ``host`` offers, if it is the one of ``fingerprint`` (what the user
    saw and accepted) and the host has no other key recorded; the file is replaced atomically.

    :class:`RemoteHostError` (nothing written) when the host now offers another key, or when known_hosts
    records another key for it (``host-key-changed``: a changed key is never trusted from here).
    """
    key, status = await _offered(host, options, port)
    offer = HostKeyOffer(host, port, key.get_algorithm(), key.get_fingerprint(), status, options.known_hosts)
    if offer.fingerprint != fingerprint:
        raise RemoteHostError(host, "host-key-changed", f"the host now offers the {offer.key_type} key "
                              f"{offer.fingerprint}, not {fingerprint} as shown: not recorded")
    if status == "changed":
        raise RemoteHostError(host, "host-key-changed", offer.message.removeprefix(f"host {host}: "))
    if status == "known":
        return offer
    path = options.known_hosts
    old = path.read_text() if path.is_file() else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, old + ("" if not old or old.endswith("\n") else "\n")
                      + host_key_line(host.strip("[]"), port, key))
    return HostKeyOffer(host, port, offer.key_type, offer.fingerprint, "known", path)
