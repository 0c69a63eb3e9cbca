"""SSH connections to remote hosts (asyncssh), with host keys verified against known_hosts.

- A host key that differs from the one recorded for the host is always refused.
- A host never seen before is refused unless ``trust_new_hosts`` is set: then its key is appended to
  known_hosts and a warning says so (trust on first use is an explicit, visible choice).
- Authentication is by key only: the key of the settings, else the SSH agent and ~/.ssh/id_*. No
  password is ever asked for, stored or logged.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh

from ..events import EventBus
from ..fsutil import atomic_write_text
from .errors import RemoteHostError
from .options import SshOptions, check_remote_host, check_user

__all__ = ["connect", "host_key_line"]


def _read_known(path: Path) -> asyncssh.SSHKnownHosts:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    return asyncssh.import_known_hosts(data.decode(errors="replace"))


def host_key_line(host: str, port: int, key: asyncssh.SSHKey) -> str:
    """The known_hosts line recording ``key`` for ``host`` (``[host]:port`` off port 22)."""
    pattern = host if port == 22 else f"[{host}]:{port}"
    return f"{pattern} {key.export_public_key().decode().strip()}\n"


@dataclass
class _Verdict:
    """What the host key check saw: called by asyncssh only for a key that known_hosts does not trust."""

    known: asyncssh.SSHKnownHosts
    trust_new: bool
    reason: str = ""
    new_key: asyncssh.SSHKey | None = None
    fingerprint: str = ""
    recorded: list[str] = field(default_factory=list)

    def __call__(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        self.fingerprint = key.get_fingerprint()
        recorded = asyncssh.match_known_hosts(self.known, host, addr, port)[0]
        if recorded:
            self.reason = "changed"
            return False
        if not self.trust_new:
            self.reason = "unknown"
            return False
        self.new_key = key
        return True


class _Client(asyncssh.SSHClient):
    def __init__(self, verdict: _Verdict) -> None:
        self._verdict = verdict

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        return self._verdict(host, addr, port, key)


def _key_error(host: str, verdict: _Verdict, known_hosts: Path) -> RemoteHostError:
    if verdict.reason == "changed":
        return RemoteHostError(host, "host-key-changed",
                               f"host key changed ({verdict.fingerprint} is not the key recorded in {known_hosts}): "
                               "refused; if the host was really reinstalled, remove its old line from known_hosts")
    return RemoteHostError(host, "host-key-unknown",
                           f"host key unknown ({verdict.fingerprint or 'not offered'} is not in {known_hosts}): add the "
                           "host's key to known_hosts (ssh-keyscan, checked with its owner) or turn on trusting new hosts")


async def connect(host: str, options: SshOptions, bus: EventBus | None = None, port: int = 22
                  ) -> asyncssh.SSHClientConnection:
    """An authenticated connection to ``host``, or one :class:`RemoteHostError` saying why not."""
    check_remote_host(host)
    user = check_user(options.user, host) if options.user else None
    known = _read_known(options.known_hosts)
    verdict = _Verdict(known, options.trust_new_hosts)
    kwargs: dict = {"username": user} if user else {}
    if options.key_path:
        key = Path(options.key_path).expanduser()
        if not key.is_file():
            raise RemoteHostError(host, "auth-refused", f"the SSH key {key} does not exist")
        kwargs["client_keys"] = [str(key)]
    try:
        conn = await asyncio.wait_for(asyncssh.connect(
            host.strip("[]"), port, known_hosts=known, client_factory=lambda: _Client(verdict),
            config=[str(options.config)] if options.config else None, password=None, kbdint_auth=False,
            preferred_auth="publickey", connect_timeout=options.connect_timeout, keepalive_interval=15,
            **kwargs), options.connect_timeout + 5)
    except asyncssh.HostKeyNotVerifiable:
        raise _key_error(host, verdict, options.known_hosts) from None
    except asyncssh.KeyExchangeFailed as exc:
        if verdict.reason or asyncssh.match_known_hosts(known, host, host, port)[0]:
            verdict.reason = verdict.reason or "changed"  # none of the recorded key types offered
            raise _key_error(host, verdict, options.known_hosts) from None
        raise RemoteHostError(host, "unreachable", f"SSH key exchange failed: {exc.reason}") from None
    except asyncssh.PermissionDenied:
        who = f"user {user}" if user else "the user of the SSH config (or this login name)"
        how = f"the key {options.key_path}" if options.key_path else "the SSH agent and ~/.ssh keys"
        raise RemoteHostError(host, "auth-refused", f"authentication refused for {who} with {how}: is its public "
                              "key in the host's ~/.ssh/authorized_keys?") from None
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
        raise RemoteHostError(host, "auth-refused", f"the SSH key {options.key_path} cannot be used ({exc}); a key "
                              "with a passphrase must be loaded into the SSH agent instead") from None
    except (OSError, asyncio.TimeoutError, asyncssh.Error) as exc:
        what = "timed out" if isinstance(exc, asyncio.TimeoutError) else (str(exc) or type(exc).__name__)
        raise RemoteHostError(host, "unreachable", f"unreachable over SSH on port {port}: {what}") from None
    if verdict.new_key is not None:
        _trust(host, port, verdict, options, bus)
    return conn


def _trust(host: str, port: int, verdict: _Verdict, options: SshOptions, bus: EventBus | None) -> None:
    """Record a host trusted on first use in known_hosts, and say so where the user looks."""
    path = options.known_hosts
    old = path.read_text() if path.is_file() else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, old + ("" if not old or old.endswith("\n") else "\n")
                      + host_key_line(host.strip("[]"), port, verdict.new_key))  # type: ignore[arg-type]
    if bus is not None:
        bus.log(f"trusted the new host key of {host} on first use ({verdict.fingerprint}); recorded in {path}",
                level="WARNING", source="install", host=host)
