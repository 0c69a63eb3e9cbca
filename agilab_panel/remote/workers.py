"""Dask workers on remote hosts, started over SSH from each host's worker environment.

Each slot is one ``dask worker`` (single-threaded, no nanny, named after the slot so the plan can pin
partitions to it) listening on its host's own address only, speaking TLS with the cluster's
certificates (sent over SFTP, readable by the SSH user only). It runs under a small watchdog that
holds the SSH channel: when the channel closes — the cluster stops, or the controlling process dies
and its connection drops — the watchdog ends the worker's whole process group. Nothing is left on a
host after a run, whatever way it ended.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import asyncssh

from ..env import AgiEnv
from ..events import EventBus, LogLine
from ..install import STATE_FILE
from .commands import command_line, run_captured
from .connect import connect
from .errors import RemoteHostError
from .install import remote_wenv
from .options import SshOptions

__all__ = ["RemoteWorkers", "WATCHDOG"]

# Runs argv[1:] in its own process group (which dies with the watchdog) and ends that group when its
# stdin closes: the SSH channel is gone, so is the process that controls the cluster.
WATCHDOG = r"""
import ctypes, os, signal, subprocess, sys, threading
def child():
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: the worker dies with its watchdog
proc = subprocess.Popen(sys.argv[1:], preexec_fn=child, start_new_session=True, stdin=subprocess.DEVNULL)
def stop(*_):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os._exit(0)
def watch():
    while sys.stdin.buffer.read(4096):
        pass
    stop()
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGHUP, stop)
threading.Thread(target=watch, daemon=True).start()
sys.exit(proc.wait())
"""


@dataclass
class _Slot:
    host: str
    slot: str
    proc: asyncssh.SSHClientProcess
    pumps: list[asyncio.Task] = field(default_factory=list)


async def _installed(sftp: asyncssh.SFTPClient, state: PurePosixPath) -> bool:
    """Whether the host's last INSTALL completed every step."""
    try:
        async with sftp.open(str(state)) as f:
            return json.loads(await f.read()).get("ok") is True
    except (asyncssh.SFTPError, ValueError, AttributeError):
        return False


class RemoteWorkers:
    """The remote slots of one cluster: one SSH connection per host, one watched worker per slot."""

    def __init__(self, env: AgiEnv, workers: Mapping[str, int], options: SshOptions, bus: EventBus | None,
                 run_dir: str) -> None:
        self.env, self.workers, self.options = env, dict(workers), options
        self.bus = bus
        self.run_dir = run_dir  # a name for this cluster's folders on the hosts
        self.conns: dict[str, asyncssh.SSHClientConnection] = {}
        self.slots: dict[str, _Slot] = {}
        self.folders: dict[str, str] = {}  # host -> this cluster's folder there (certificates, scratch)

    def _emit(self, event: Any) -> None:
        if self.bus is not None:
            self.bus.emit(event)

    async def start(self, scheduler: str, tls: Mapping[str, str], extra_env: Mapping[str, str]) -> None:
        """Connect to every host and start its slots' workers against ``scheduler`` (a tls:// address);
        ``tls`` holds the PEM texts ``ca``, ``cert`` and ``key``."""
        await asyncio.gather(*(self._start_host(h, n, scheduler, tls, extra_env) for h, n in self.workers.items()))

    async def _start_host(self, host: str, count: int, scheduler: str, tls: Mapping[str, str],
                          extra_env: Mapping[str, str]) -> None:
        conn = await connect(host, self.options, self.bus)
        self.conns[host] = conn
        home = str((await run_captured(conn, ["sh", "-c", 'echo "$HOME"'], host)).stdout).strip()
        wenv = remote_wenv(home, self.env.app)
        python = str(wenv / ".venv" / "bin" / "python")
        folder = wenv / "clusters" / self.run_dir
        self.folders[host] = str(folder)
        async with conn.start_sftp_client() as sftp:
            if not await sftp.exists(python) or not await _installed(sftp, wenv / STATE_FILE):
                raise RemoteHostError(host, "command-failed", f"app {self.env.app!r} is not installed there (no "
                                      f"complete install in {wenv}): run INSTALL with this worker map")
            await sftp.makedirs(str(folder / "work"), exist_ok=True)
            await sftp.chmod(str(folder), 0o700)
            for name, text in tls.items():
                async with sftp.open(str(folder / f"{name}.pem"), "w", asyncssh.SFTPAttrs(permissions=0o600)) as f:
                    await f.write(text)
        env = [f"{k}={v}" for k, v in {**extra_env, "PYTHONPATH": str(wenv / "cython")}.items()]
        for i in range(count):
            slot = f"{host}-{i}"
            argv = ["env", *env, python, "-c", WATCHDOG, python, "-m", "distributed.cli.dask_worker", scheduler,
                    "--name", slot, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--memory-limit", "0",
                    "--host", host.strip("[]"), "--protocol", "tls", "--dashboard-address", "127.0.0.1:0",
                    "--death-timeout", "60", "--local-directory", str(folder / "work"),
                    "--tls-ca-file", str(folder / "ca.pem"), "--tls-cert", str(folder / "cert.pem"),
                    "--tls-key", str(folder / "key.pem"), "--preload", self.env.spec.worker_module]
            self._emit(LogLine(text=f"[{host}] $ {command_line(argv[:3] + argv[5:7])} ...", source="worker", host=slot))
            try:
                proc = await conn.create_process(command_line(argv), encoding="utf-8", errors="replace")
            except (asyncssh.Error, OSError) as exc:
                raise RemoteHostError(host, "unreachable", f"lost while starting worker {slot}: {exc}") from None
            entry = _Slot(host, slot, proc)
            entry.pumps = [asyncio.create_task(self._pump(proc.stdout, slot)),
                           asyncio.create_task(self._pump(proc.stderr, slot))]
            self.slots[slot] = entry

    async def _pump(self, reader: asyncssh.SSHReader, slot: str) -> None:
        from ..execute.cluster import _level

        with contextlib.suppress(asyncssh.Error, OSError):
            async for text in reader:
                text = text.rstrip("\r\n")
                self._emit(LogLine(text=text, source="worker", stream="stderr", level=_level(text), host=slot))  # type: ignore[arg-type]

    def dead_slots(self) -> list[str]:
        """Slots whose worker (or its SSH channel) has ended."""
        return [s for s, e in self.slots.items() if e.proc.exit_status is not None or e.proc.is_closing()]

    def alive(self) -> bool:
        return not self.dead_slots()

    async def close(self) -> None:
        """End every remote worker: closing its channel makes its watchdog stop the process group."""
        for entry in self.slots.values():
            with contextlib.suppress(Exception):
                entry.proc.stdin.write_eof()
        for entry in self.slots.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(entry.proc.wait_closed(), 10)
            entry.proc.close()
            for pump in entry.pumps:
                pump.cancel()
        for host, conn in self.conns.items():
            if host in self.folders:  # certificates and scratch space go with the cluster
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(run_captured(conn, ["rm", "-rf", "--", self.folders[host]], host), 10)
            conn.close()
        for conn in self.conns.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 10)
        self.slots.clear()
        self.conns.clear()
