"""SSH options of the remote hosts, and the checks that keep user input out of remote shells.

Every remote command is built with ``shlex.join`` from an argument list; on top of that, host names,
user names and remote paths carrying shell metacharacters are refused before anything connects, so a
hostile worker map or settings file cannot run anything anywhere.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..hosts import validate_host
from .errors import RemoteHostError

__all__ = ["SshOptions", "check_user", "check_remote_path", "check_remote_host"]

_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
_SHELL_META = set(";&|$`<>(){}[]*?!~'\"\\#\n\r\t\0")


def check_remote_host(host: str) -> str:
    """A host name or address (no user@, no options, no shell syntax), else :class:`RemoteHostError`."""
    try:
        validate_host(host)
    except ValueError as exc:
        raise RemoteHostError(str(host), "refused-input", f"refused: {exc}") from None
    if host.startswith("-"):
        raise RemoteHostError(host, "refused-input", "refused: a host name may not start with '-'")
    return host


def check_user(user: str, host: str = "?") -> str:
    """A login name of letters, digits, ``_ . -`` (not leading ``-``), at most 32 characters."""
    if not isinstance(user, str) or not _USER.match(user):
        raise RemoteHostError(host, "refused-input", f"refused: SSH user {user!r} is not a plain login name")
    return user


def check_remote_path(path: str, host: str = "?", what: str = "remote path") -> str:
    """A path with no shell metacharacter and no leading ``-`` (it could pass for an option)."""
    if not isinstance(path, str) or not path:
        raise RemoteHostError(host, "refused-input", f"refused: {what} must be a non-empty string")
    bad = sorted({c for c in path if c in _SHELL_META or ord(c) < 32})
    if bad or path.startswith("-"):
        shown = "".join(bad) or "-"
        raise RemoteHostError(host, "refused-input", f"refused: {what} {path!r} contains shell metacharacters ({shown!r})")
    return path


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else default


@dataclass(frozen=True)
class SshOptions:
    """How to reach remote hosts: user (empty: from the SSH config, else this login), private key (empty:
    the SSH agent and ~/.ssh/id_*), known_hosts file, SSH config file, and whether a host never seen
    before may be trusted on first use (its key is then recorded in known_hosts, and said so)."""

    user: str = ""
    key_path: str = ""
    known_hosts: Path = Path("~/.ssh/known_hosts").expanduser()
    config: Path | None = None
    trust_new_hosts: bool = False
    connect_timeout: float = 20.0

    @classmethod
    def from_env(cls, user: str = "", key_path: str = "", trust_new_hosts: bool = False) -> SshOptions:
        """Options for the settings' user and key; known_hosts and config from ``AGILAB_SSH_KNOWN_HOSTS``
        and ``AGILAB_SSH_CONFIG`` when set, else the usual ~/.ssh files."""
        config = _env_path("AGILAB_SSH_CONFIG", Path("~/.ssh/config").expanduser())
        return cls(user=user or "", key_path=key_path or "",
                   known_hosts=_env_path("AGILAB_SSH_KNOWN_HOSTS", Path("~/.ssh/known_hosts").expanduser()),
                   config=config if config.is_file() else None, trust_new_hosts=bool(trust_new_hosts))

    @classmethod
    def from_settings(cls, cluster: Any) -> SshOptions:
        """Options from ``[cluster]`` (user, ssh_key_path, ssh_trust_new_hosts)."""
        return cls.from_env(getattr(cluster, "user", ""), getattr(cluster, "ssh_key_path", ""),
                            getattr(cluster, "ssh_trust_new_hosts", False))

    def __repr__(self) -> str:  # never more than the key's path
        return (f"SshOptions(user={self.user!r}, key_path={self.key_path!r}, known_hosts={str(self.known_hosts)!r}, "
                f"trust_new_hosts={self.trust_new_hosts})")
