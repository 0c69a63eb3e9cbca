"""Engine side of the warm local runner (see :mod:`agilab_panel.runtime.zygote`).

One zygote per (app, worker environment) stays alive with the engine process and forks a child
per job, so a local run pays neither interpreter start-up nor pandas' import. It is restarted when
the app's code, the compiled kernels or the runtime change on disk, so a child never runs stale code.
It dies with the engine (a parent-death signal, armed at each level below it too) and stays out of
the terminal's process group: Ctrl-C reaches the engine, which cancels its runs and then stops it.

A *kept* runner (``kept``: the path of its state file) outlives the engine instead, so successive
commands (``agilab-panel run --keep-cluster``) find it warm: each engine connects to it through the
abstract socket named in the state file. It is ended by :func:`stop_kept_runner` (``agilab-panel
cluster stop``), by its idle timeout (``AGILAB_RUNNER_IDLE_TIMEOUT`` seconds without an engine,
15 minutes by default), or by the next engine when the app's code or the install changed.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import weakref
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write_text
from ..runtime.lifecycle import kill_group
from .common import child_env

__all__ = ["Zygote", "zygote_for", "close_zygotes", "kill_zygotes", "stop_kept_runner", "KEPT_IDLE_ENV"]

_RUNTIME = Path(__file__).resolve().parent.parent / "runtime"
_MODULE = "agilab_panel.runtime.zygote"
LOG_LIMIT = 1 << 20  # bytes of runner.log kept before it is rotated
KEPT_IDLE_ENV = "AGILAB_RUNNER_IDLE_TIMEOUT"  # seconds a kept runner waits for an engine before it ends
KEPT_IDLE_TIMEOUT = 900.0


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


def _digest(snapshot: dict[str, float]) -> str:
    return hashlib.sha256(json.dumps(sorted(snapshot.items())).encode()).hexdigest()


def _idle_timeout() -> float:
    try:
        return max(0.0, float(os.environ.get(KEPT_IDLE_ENV, KEPT_IDLE_TIMEOUT)))
    except ValueError:
        return KEPT_IDLE_TIMEOUT


class Zygote:
    """A started ``runtime.zygote`` process and the socket that drives it."""

    def __init__(self, python: Path, preload: list[str], paths: list[str], log: Path,
                 watch: list[Path] | None = None, kept: Path | None = None) -> None:
        self.python, self.preload, self.paths, self.log = python, preload, paths, log
        self.kept = kept  # the state file of a runner that outlives this process
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self.sock: socket.socket | None = None
        self.connected = False
        self.watched = [Path(p) for p in paths if p] + [_RUNTIME, *(watch or [])]
        self.snapshot: dict[str, float] = {}
        self._exits: dict[int, asyncio.Future] = {}
        self._launches: dict[str, asyncio.Future] = {}  # job path -> pid of the run forked for it
        self._replies: asyncio.Queue = asyncio.Queue()
        self._reader: asyncio.Task | None = None
        self.loop = asyncio.get_running_loop()

    def kill(self) -> None:
        """Stop it without a loop (its own loop may be closed already); a kept runner is only let go."""
        if self.kept is None and self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.sock is not None:
            self.sock.close()
        self.connected = False

    def key(self) -> list[Any]:
        return [str(self.python), self.preload, self.paths]

    def _command(self, *args: str) -> list[str]:
        return [str(self.python), "-m", _MODULE, *args, *[a for m in self.preload for a in ("--preload", m)],
                *[a for p in self.paths for a in ("--path", p)]]

    def _popen(self, cmd: list[str], fd: int, **kw: Any) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        rotate_log(self.log)
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(cmd, pass_fds=(fd,), stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         env=child_env(), **kw)

    async def start(self) -> None:
        self.snapshot = _snapshot(self.watched)
        if self.kept is not None:
            return await self._start_kept()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # its own process group: Ctrl-C at a terminal is the engine's to handle (it stops the runs, then this)
        self._popen(self._command("--control-fd", str(child.fileno()), "--parent-pid", str(os.getpid())),
                    child.fileno(), process_group=0)
        child.close()
        await self._attach(parent)

    async def _start_kept(self) -> None:
        """Start a runner in its own session that serves this engine and later ones, and record it."""
        assert self.kept is not None
        address = f"agilab-runner-{os.getuid()}-{secrets.token_hex(8)}"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            listener.bind("\0" + address)  # abstract: no file to leave behind; the runner checks the peer's uid
            listener.listen(16)
            idle = _idle_timeout()
            self._popen(self._command("--listen-fd", str(listener.fileno()), "--idle-timeout", str(idle),
                                      "--state-file", str(self.kept)), listener.fileno(), start_new_session=True)
        finally:
            listener.close()
        assert self.proc is not None
        atomic_write_text(self.kept, json.dumps({"pid": self.proc.pid, "address": address, "key": self.key(),
                                                 "snapshot": _digest(self.snapshot), "idle_timeout": idle,
                                                 "log": str(self.log), "created": time.time()}, indent=2))
        try:
            await self.connect(address)
        except BaseException:  # it never served: it must not wait for its idle timeout
            self.proc.kill()
            await asyncio.to_thread(self.proc.wait)
            self.kept.unlink(missing_ok=True)
            raise

    async def connect(self, address: str) -> None:
        """Become one of the engines a kept runner serves."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(self.loop.sock_connect(sock, "\0" + address), 10)
        except BaseException:
            sock.close()
            raise
        await self._attach(sock)

    async def _attach(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock, self.connected = sock, True
        self._reader = asyncio.create_task(self._read())
        ready = await asyncio.wait_for(self._replies.get(), 60)
        if "ready" not in ready:
            raise RuntimeError(f"local runner did not start: {ready}")
        self.pid = ready["ready"]

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.sock, 65536)
            if not data:  # the zygote ended, and its runs with it
                self.connected = False
                if self.proc is not None:  # collect it now: no zombie waits for the next run
                    await self._collect()
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

    async def _collect(self) -> None:
        """Reap the ended zygote. Its socket closes before the kernel makes it a zombie, so the one
        ``poll()`` right after end-of-file can come too early; waiting a little in a thread cannot."""
        assert self.proc is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(self.proc.wait, 10)

    def usable(self) -> bool:
        alive = self.connected and (self.proc is None or self.proc.poll() is None)
        return alive and _snapshot(self.watched) == self.snapshot

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
        self.connected = False
        if self.kept is None and self.proc is not None and self.proc.poll() is None:
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
                     watch: list[Path] | None = None, kept: Path | None = None) -> Zygote:
    """The warm runner for this environment and app, started or restarted as needed.

    With ``kept`` (a state file), a runner kept by an earlier process is used when it runs the same
    code, else one is started that outlives this process.
    """
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
        zygote = Zygote(python, [worker_module], paths, log, watch, kept)
        try:
            if kept is None or not await _adopt(zygote, kept):
                await zygote.start()
        except BaseException:
            await zygote.close()
            raise
        _zygotes[key] = zygote
        return zygote


async def _adopt(zygote: Zygote, kept: Path) -> bool:
    """Connect ``zygote`` to the runner an earlier process kept, if it runs this very code; a runner
    that does not (other app code, a reinstall since) is stopped."""
    state = _read_state(kept)
    if state is None:
        return False
    zygote.snapshot = _snapshot(zygote.watched)
    if state.get("key") == zygote.key() and state.get("snapshot") == _digest(zygote.snapshot) and _is_runner(state, kept):
        try:
            await zygote.connect(str(state["address"]))
            return True
        except (OSError, asyncio.TimeoutError, RuntimeError):
            zygote.kill()
    await asyncio.to_thread(stop_kept_runner, kept)
    return False


def _read_state(path: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and isinstance(state.get("pid"), int) else None


def _is_runner(state: dict[str, Any], path: Path) -> bool:
    """The state's pid is still the runner it names (never signal a recycled pid)."""
    import psutil

    try:
        cmdline = psutil.Process(state["pid"]).cmdline()
    except psutil.Error:
        return False
    return _MODULE in cmdline and str(path) in cmdline


def stop_kept_runner(path: Path) -> list[int]:
    """End the runner a ``kept`` state file names (and the runs it holds); returns the pid ended, if any."""
    import psutil

    state = _read_state(path)
    stopped: list[int] = []
    if state is not None and _is_runner(state, path):
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(state["pid"])
            proc.terminate()  # it removes its state file and its runs die with it
            if not _ended(proc, 5):
                proc.kill()
                _ended(proc, 5)
            stopped.append(proc.pid)
    path.unlink(missing_ok=True)
    return stopped


def _ended(proc: Any, timeout: float) -> bool:
    """Wait for a process that is not our child (its parent reaps it; a zombie has ended)."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


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
