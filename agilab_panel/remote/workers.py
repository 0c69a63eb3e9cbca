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
from ..install_check import STATE_FILE
from .checks import check_share
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
                 run_dir: str, share: str | None = None) -> None:
        self.env, self.workers, self.options = env, dict(workers), options
        self.share = share  # checked on every worker host before its workers start
        self.bus = bus
        self.run_dir = run_dir  # a name for this cluster's folders on the hosts
        self.conns: dict[str, asyncssh.SSHClientConnection] = {}
        self.slots: dict[str, _Slot] = {}
        self.folders: dict[str, str] = {}  # host -> this cluster's folder there (certificates, scratch)
        self.scheduler: _Slot | None = None  # the cluster's scheduler, when it runs on one of the hosts

    def _emit(self, event: Any) -> None:
        if self.bus is not None:
            self.bus.emit(event)

    async def start(self, scheduler: str, tls: Mapping[str, str], extra_env: Mapping[str, str]) -> None:
        """Connect to every host and start its slots' workers against ``scheduler`` (a tls:// address);
        ``tls`` holds the PEM texts ``ca``, ``cert`` and ``key``."""
        await asyncio.gather(*(self._start_host(h, n, scheduler, tls, extra_env) for h, n in self.workers.items()))

    async def _prepare(self, host: str, tls: Mapping[str, str]
                       ) -> tuple[asyncssh.SSHClientConnection, str, PurePosixPath]:
        """The host's connection, worker Python and this cluster's folder there (certificates sent), once per host."""
        if host in self.folders:  # prepared for the scheduler already
            folder = PurePosixPath(self.folders[host])
            return self.conns[host], str(folder.parent.parent / ".venv" / "bin" / "python"), folder
        conn = await connect(host, self.options, self.bus)
        self.conns[host] = conn
        home = str((await run_captured(conn, ["sh", "-c", 'echo "$HOME"'], host)).stdout).strip()
        wenv = remote_wenv(home, self.env.app)
        python = str(wenv / ".venv" / "bin" / "python")
        folder = wenv / "clusters" / self.run_dir
        async with conn.start_sftp_client() as sftp:
            if not await sftp.exists(python) or not await _installed(sftp, wenv / STATE_FILE):
                raise RemoteHostError(host, "command-failed", f"app {self.env.app!r} is not installed there (no "
                                      f"complete install in {wenv}): run INSTALL with this worker map")
            self.folders[host] = str(folder)  # removed at the end from here on
            await sftp.makedirs(str(folder / "work"), exist_ok=True)
            await sftp.chmod(str(folder), 0o700)
            for name, text in tls.items():
                async with sftp.open(str(folder / f"{name}.pem"), "w", asyncssh.SFTPAttrs(permissions=0o600)) as f:
                    await f.write(text)
        return conn, python, folder

    def _tls_args(self, folder: PurePosixPath) -> list[str]:
        return ["--tls-ca-file", str(folder / "ca.pem"), "--tls-cert", str(folder / "cert.pem"),
                "--tls-key", str(folder / "key.pem")]

    async def _launch(self, conn: asyncssh.SSHClientConnection, host: str, name: str, argv: list[str]) -> _Slot:
        """Start ``argv`` (``env ... python -c WATCHDOG python -m ...``) with its output followed as ``name``."""
        source = "scheduler" if name == "scheduler" else "worker"
        self._emit(LogLine(text=f"[{host}] $ {command_line(argv[:3] + argv[5:7])} ...", source=source, host=name))
        try:
            proc = await conn.create_process(command_line(argv), encoding="utf-8", errors="replace")
        except (asyncssh.Error, OSError) as exc:
            raise RemoteHostError(host, "unreachable", f"lost while starting {name}: {exc}") from None
        entry = _Slot(host, name, proc)
        entry.pumps = [asyncio.create_task(self._pump(proc.stdout, name, source)),
                       asyncio.create_task(self._pump(proc.stderr, name, source))]
        return entry

    async def start_scheduler(self, host: str, port: int, tls: Mapping[str, str], extra_env: Mapping[str, str],
                              timeout: float = 60.0) -> str:
        """Start the cluster's scheduler on ``host`` (from its worker environment, under the watchdog, TLS,
        listening on that host's address only, HTTP on its loopback); returns its tls:// address."""
        conn, python, folder = await self._prepare(host, tls)
        sched_file = folder / "scheduler.json"
        env = [f"{k}={v}" for k, v in extra_env.items()]
        argv = ["env", *env, python, "-c", WATCHDOG, python, "-m", "distributed.cli.dask_scheduler",
                "--host", host.strip("[]"), "--port", str(port), "--protocol", "tls", *self._tls_args(folder),
                "--no-dashboard", "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(sched_file)]
        self.scheduler = await self._launch(conn, host, "scheduler", argv)
        deadline = asyncio.get_running_loop().time() + timeout
        async with conn.start_sftp_client() as sftp:
            while True:
                if self.scheduler.proc.exit_status is not None or self.scheduler.proc.is_closing():
                    raise RemoteHostError(host, "command-failed",
                                          "the Dask scheduler exited while starting: see the Run logs")
                with contextlib.suppress(asyncssh.SFTPError, ValueError, KeyError):
                    async with sftp.open(str(sched_file)) as f:
                        return str(json.loads(await f.read())["address"])
                if asyncio.get_running_loop().time() > deadline:
                    raise RemoteHostError(host, "command-failed",
                                          f"the Dask scheduler did not start within {timeout:.0f}s")
                await asyncio.sleep(0.1)

    async def _start_host(self, host: str, count: int, scheduler: str, tls: Mapping[str, str],
                          extra_env: Mapping[str, str]) -> None:
        conn, python, folder = await self._prepare(host, tls)
        if self.share:
            await check_share(conn, host, python, self.share)
        wenv = folder.parent.parent
        env = [f"{k}={v}" for k, v in {**extra_env, "PYTHONPATH": str(wenv / "cython")}.items()]
        for i in range(count):
            slot = f"{host}-{i}"
            argv = ["env", *env, python, "-c", WATCHDOG, python, "-m", "distributed.cli.dask_worker", scheduler,
                    "--name", slot, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--memory-limit", "0",
                    "--host", host.strip("[]"), "--protocol", "tls", "--dashboard-address", "127.0.0.1:0",
                    "--death-timeout", "60", "--local-directory", str(folder / "work"), *self._tls_args(folder),
                    "--preload", self.env.spec.worker_module]
            self.slots[slot] = await self._launch(conn, host, slot, argv)

    async def _pump(self, reader: asyncssh.SSHReader, slot: str, source: str = "worker") -> None:
        from ..execute.cluster import _level

        with contextlib.suppress(asyncssh.Error, OSError):
            async for text in reader:
                text = text.rstrip("\r\n")
                self._emit(LogLine(text=text, source=source, stream="stderr", level=_level(text), host=slot))  # type: ignore[arg-type]

    def dead_slots(self) -> list[str]:
        """Slots whose worker (or its SSH channel) has ended; ``scheduler`` when a remote scheduler has."""
        entries = {**self.slots, **({"scheduler": self.scheduler} if self.scheduler else {})}
        return [s for s, e in entries.items() if e.proc.exit_status is not None or e.proc.is_closing()]

    def alive(self) -> bool:
        return not self.dead_slots()

    async def close(self) -> None:
        """End every remote worker, then the scheduler: closing a channel makes its watchdog stop the
        process group."""
        await self._end(list(self.slots.values()))
        if self.scheduler is not None:
            await self._end([self.scheduler])
            self.scheduler = None
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
        self.folders.clear()

    @staticmethod
    async def _end(entries: list[_Slot]) -> None:
        for entry in entries:
            with contextlib.suppress(Exception):
                entry.proc.stdin.write_eof()
        for entry in entries:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(entry.proc.wait_closed(), 10)
            entry.proc.close()
            for pump in entry.pumps:
                pump.cancel()
