"""Host checks before any remote work: reachable, authenticated, host key known, Python >= 3.11, share
writable. Each failure is one :class:`RemoteHostError` naming the host and the fix."""
from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

import asyncssh

from ..events import EventBus
from .commands import run_captured
from .connect import connect
from .errors import RemoteHostError
from .options import SshOptions, check_remote_path

__all__ = ["HostFacts", "probe", "check_host", "check_hosts", "check_share"]

# A constant script (no user input): the host's home, system and its first Python >= 3.11.
_PROBE = r"""
echo "home=$HOME"
echo "system=$(uname -s) $(uname -m)"
for p in python3.13 python3.12 python3.11 python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "python=$(command -v "$p")"
    "$p" -c 'import sys; print("python_version=%d.%d.%d" % sys.version_info[:3])'
    break
  fi
done
echo "uv=$(command -v uv 2>/dev/null || true)"
"""
# Writes and removes a file in the share (argv[1]): the only proof that this user may write there.
_SHARE = """
import os, sys, tempfile
path = sys.argv[1]
if not os.path.isdir(path):
    print("missing"); sys.exit(0)
try:
    with tempfile.NamedTemporaryFile(dir=path, prefix=".agilab-write-check-"):
        pass
except OSError as exc:
    print("denied", exc.strerror); sys.exit(0)
print("ok")
"""


@dataclass(frozen=True)
class HostFacts:
    """What the checks learnt of a host (used by the install that follows)."""

    host: str
    user: str
    home: str
    system: str
    python: str
    python_version: str
    uv: str
    share: str


async def probe(conn: asyncssh.SSHClientConnection, host: str, share: str) -> HostFacts:
    """Check Python and the share on an open connection."""
    check_remote_path(share, host, "share")
    done = await run_captured(conn, ["sh", "-c", _PROBE], host)
    facts = dict(line.partition("=")[::2] for line in str(done.stdout).splitlines() if "=" in line)
    if not facts.get("python"):
        raise RemoteHostError(host, "no-python", "no Python >= 3.11 on the host's PATH (python3.11, python3.12, "
                              "python3.13 or python3): install one there")
    await check_share(conn, host, facts["python"], share)
    return HostFacts(host, str(conn.get_extra_info("username")), facts.get("home", ""), facts.get("system", ""),
                     facts["python"], facts.get("python_version", ""), facts.get("uv", ""), share)


async def check_share(conn: asyncssh.SSHClientConnection, host: str, python: str, share: str) -> None:
    """The share exists and this user can write in it there (a run checks it too: mounts come and go)."""
    check_remote_path(share, host, "share")
    written = await run_captured(conn, [python, "-c", _SHARE, share], host)
    answer = str(written.stdout).strip()
    if answer != "ok":
        why = "does not exist" if answer == "missing" else f"is not writable ({answer.removeprefix('denied ') or written.stderr})"
        raise RemoteHostError(host, "share-not-writable", f"the share {share} {why} for user "
                              f"{conn.get_extra_info('username')}: mount it there or give workers_data_path")


async def check_host(host: str, options: SshOptions, share: str, bus: EventBus | None = None) -> HostFacts:
    """Connect, check and disconnect; :class:`RemoteHostError` on the first failure."""
    check_remote_path(share, host, "share")  # refused before anything connects
    conn = await connect(host, options, bus)
    try:
        return await probe(conn, host, share)
    finally:
        conn.close()


async def check_hosts(hosts: Iterable[str], options: SshOptions, share: str,
                      bus: EventBus | None = None) -> dict[str, HostFacts | RemoteHostError]:
    """Check every host at once; each gets its facts or its own error."""
    hosts = list(dict.fromkeys(hosts))

    async def one(host: str) -> HostFacts | RemoteHostError:
        try:
            return await check_host(host, options, share, bus)
        except RemoteHostError as exc:
            return exc

    return dict(zip(hosts, await asyncio.gather(*(one(h) for h in hosts))))
