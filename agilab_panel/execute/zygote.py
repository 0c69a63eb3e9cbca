"""Engine side of the warm local runner (see :mod:`agilab_panel.runtime.zygote`).

One zygote per (app, worker environment) stays alive with the engine process and forks a child
per job, so a local run pays neither interpreter start-up nor pandas' import. It is restarted when
the app's code, the compiled kernels or the runtime change on disk, so a child never runs stale code.
It dies with the engine (a parent-death signal, armed at each level below it too) and stays out of
the terminal's process group: Ctrl-C reaches the engine, which cancels its runs and then stops it.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import weakref
from pathlib import Path

from ..runtime.lifecycle import kill_group
from .common import child_env

__all__ = ["Zygote", "zygote_for", "close_zygotes", "kill_zygotes"]

_RUNTIME = Path(__file__).resolve().parent.parent / "runtime"
LOG_LIMIT = 1 << 20  # bytes of runner.log kept before it is rotated


def _snapshot(folders: list[Path]) -> dict[str, float]:
    files: dict[str, float] = {}
    for folder in folders:
        if folder.is_file():  # e.g. the install state: a reinstall may have changed the packages
            files[str(folder)] = folder.stat().st_mtime
        elif folder.is_dir():
            for path in folder.rglob("*"):
                if path.suffix in (".py", ".so") and "__pycache__" not in path.parts:
                    with contextlib.suppress(OSError):
                        files[str(path)] = path.stat().st_mtime
    return files


class Zygote:
    """A started ``runtime.zygote`` process and the socket that drives it."""

    def __init__(self, python: Path, preload: list[str], paths: list[str], log: Path,
                 watch: list[Path] | None = None) -> None:
        self.python, self.preload, self.paths, self.log = python, preload, paths, log
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.watched = [Path(p) for p in paths if p] + [_RUNTIME, *(watch or [])]
        self.snapshot: dict[str, float] = {}
        self._exits: dict[int, asyncio.Future] = {}
        self._launches: dict[str, asyncio.Future] = {}  # job path -> pid of the run forked for it
        self._replies: asyncio.Queue = asyncio.Queue()
        self._reader: asyncio.Task | None = None
        self.loop = asyncio.get_running_loop()

    def kill(self) -> None:
        """Stop it without a loop (its own loop may be closed already)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.sock is not None:
            self.sock.close()

    async def start(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.snapshot = _snapshot(self.watched)
        cmd = [str(self.python), "-m", "agilab_panel.runtime.zygote", "--control-fd", str(child.fileno()),
               "--parent-pid", str(os.getpid())]
        cmd += [arg for m in self.preload for arg in ("--preload", m)] + [arg for p in self.paths for arg in ("--path", p)]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        rotate_log(self.log)
        with open(self.log, "ab") as err:
            # its own process group: Ctrl-C at a terminal is the engine's to handle (it stops the runs, then this)
            self.proc = subprocess.Popen(cmd, pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, stdout=err,
                                         stderr=err, env=child_env(), process_group=0)
        child.close()
        parent.setblocking(False)
        self.sock = parent
        self._reader = asyncio.create_task(self._read())
        ready = await asyncio.wait_for(self._replies.get(), 60)
        if "ready" not in ready:
            raise RuntimeError(f"local runner did not start: {ready}")

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.sock, 65536)
            if not data:  # the zygote ended, and its runs with it
                if self.proc is not None:
                    self.proc.poll()  # collect it now: no zombie waits for the next run
                for future in [*self._exits.values(), *self._launches.values()]:
                    if not future.done():
                        future.set_result(-signal.SIGKILL)
                return
            message = json.loads(data)
            if "exit" in message:
                future = self._exits.get(message["pid"])
                if future is not None and not future.done():
                    future.set_result(message["exit"])
            elif "job" in message:
                launch = self._launches.pop(message["job"], None)
                if launch is None or launch.done():  # its caller gave up (cancelled): end what it asked for
                    kill_group(message["pid"])
                else:
                    self._exits[message["pid"]] = loop.create_future()
                    launch.set_result(message["pid"])
            else:
                await self._replies.put(message)

    def usable(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and _snapshot(self.watched) == self.snapshot

    async def launch(self, job_path: str, fds: list[int]) -> int:
        """Fork a child running ``job_path`` with (stdout, stderr, events) write descriptors; returns its pid.

        The child leads its own process group. A caller cancelled before the reply never learns the
        pid, so the reader ends that run when the reply comes.
        """
        launch = self._launches[job_path] = self.loop.create_future()
        socket.send_fds(self.sock, [json.dumps({"job": job_path}).encode()], fds)
        pid = await asyncio.wait_for(launch, 30)
        if pid < 0:
            raise RuntimeError(f"the local runner ended before starting {job_path}; see {self.log}")
        return pid

    async def wait(self, pid: int) -> int:
        try:
            return await self._exits[pid]
        finally:
            self._exits.pop(pid, None)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self.sock is not None:
            self.sock.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait)


def rotate_log(path: Path, limit: int = LOG_LIMIT) -> None:
    """A log appended to by every start stays bounded: past ``limit`` bytes it becomes ``<name>.1``."""
    with contextlib.suppress(OSError):
        if path.stat().st_size > limit:
            os.replace(path, path.with_name(path.name + ".1"))


_zygotes: dict[tuple, Zygote] = {}
# Starts and stops take turns (per event loop): two callers asking at once get one runner, not two.
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _locks.get(loop)
    if lock is None:
        lock = _locks[loop] = asyncio.Lock()
    return lock


async def zygote_for(python: Path, worker_module: str, paths: list[str], log: Path,
                     watch: list[Path] | None = None) -> Zygote:
    """The warm runner for this environment and app, started or restarted as needed."""
    async with _lock():
        for old_key, old in list(_zygotes.items()):
            if old.loop.is_closed():
                _zygotes.pop(old_key).kill()
        key = (str(python), worker_module, tuple(paths))
        zygote = _zygotes.get(key)
        if zygote is not None and zygote.usable():
            return zygote
        if zygote is not None:
            await zygote.close()
        zygote = Zygote(python, [worker_module], paths, log, watch)
        try:
            await zygote.start()
        except BaseException:
            await zygote.close()
            raise
        _zygotes[key] = zygote
        return zygote


async def close_zygotes(within: Path | None = None) -> None:
    """Stop the warm runners of this process (only those whose Python lives in the folder ``within``)."""
    async with _lock():
        for key in [k for k in _zygotes if within is None or Path(k[0]).is_relative_to(within)]:
            zygote = _zygotes.pop(key)
            if zygote.loop is asyncio.get_running_loop():
                await zygote.close()
            else:
                zygote.kill()


def kill_zygotes() -> None:
    """Stop every warm runner of this process at once, without a loop (the loops that started them may be closed)."""
    while _zygotes:
        _zygotes.popitem()[1].kill()
