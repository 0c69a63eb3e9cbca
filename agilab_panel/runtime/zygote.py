"""A warm parent for local runs: imports the app once, then forks one child per job.

Started by the engine in the worker environment with one end of a Unix socket pair. For each job
the engine sends the job path and three descriptors (stdout, stderr, events); the zygote forks a
child that runs :mod:`agilab_panel.runtime.runner` on them, replies with the child's pid, and later
with its exit code. The zygote stays single-threaded so forking it is safe.

Each child leads its own process group (the engine cancels a run with one ``killpg``) and dies with
the zygote, which dies with the engine. The zygote is a subreaper: pool workers of a killed run come
back to it and are reaped, never left as zombies.

A *kept* zygote (``--keep-cluster`` at the command line) outlives the engine that started it, so the
next command finds it warm. It listens on an abstract Unix socket (only processes of the same user
are served: the peer's uid is checked) and serves several engines at once. Its owners: the state
file beside the jobs (which ``agilab-panel cluster stop`` reads to end it), and its idle timeout, after
which it removes that file and exits. When an engine's connection ends, the runs it left are killed:
a run never outlives the engine that asked for it.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time

from .lifecycle import become_subreaper, die_with_parent, kill_group

__all__ = ["main"]


def _preload(modules: list[str], paths: list[str]) -> None:
    for path in reversed(paths):
        if path and path not in sys.path:
            sys.path.insert(0, path)
    # the runner and its process pool machinery too: each forked run starts with them imported
    for name in ["pandas", "pyarrow.parquet", "multiprocessing.synchronize", f"{__package__}.runner", *modules]:
        try:
            importlib.import_module(name)
        except Exception as exc:  # the child will report the real error with its job
            print(f"zygote: could not preload {name}: {exc}", file=sys.stderr, flush=True)


def _child(job: str, fds: list[int], sockets: list[socket.socket], parent: int) -> None:  # pragma: no cover - after fork
    os.setpgid(0, 0)
    die_with_parent(parent)
    for sock in sockets:
        sock.close()
    out, err, events = fds
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.close(out)
    os.close(err)
    code = 1
    try:
        from . import runner

        code = runner.main([job, "--events-fd", str(events)])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _send(control: socket.socket, **message: object) -> None:
    with contextlib.suppress(OSError):  # an engine that went away learns nothing more
        control.send(json.dumps(message).encode())  # a SOCK_SEQPACKET pair: one send, one message


class _Server:
    """The engines connected to this zygote and the runs each of them asked for."""

    def __init__(self, listener: socket.socket | None) -> None:
        self.listener = listener
        self.selector = selectors.DefaultSelector()
        self.runs: dict[socket.socket, set[int]] = {}  # engine connection -> pids of its running runs
        if listener is not None:
            self.selector.register(listener, selectors.EVENT_READ)

    def add(self, conn: socket.socket) -> None:
        self.runs[conn] = set()
        self.selector.register(conn, selectors.EVENT_READ)
        _send(conn, ready=os.getpid())

    def drop(self, conn: socket.socket) -> None:
        """The engine went away: the runs it asked for end too."""
        for pid in self.runs.pop(conn, set()):
            kill_group(pid)
        self.selector.unregister(conn)
        conn.close()

    def accept(self) -> None:
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))[1]
        if uid != os.getuid():  # another user must not run code as this one
            conn.close()
            return
        conn.setblocking(True)
        self.add(conn)

    def serve(self, conn: socket.socket) -> None:
        try:
            message, fds, _, _ = socket.recv_fds(conn, 65536, 3)
        except OSError:
            message, fds = b"", []
        if not message:
            for fd in fds:
                os.close(fd)
            self.drop(conn)
            return
        request = json.loads(message)
        me = os.getpid()
        pid = os.fork()
        if pid == 0:
            _child(request["job"], fds, [*self.runs, *([self.listener] if self.listener else [])], me)
        try:  # also here, so the group exists before the engine can signal it
            os.setpgid(pid, pid)
        except OSError:  # the child did it first, or already ended
            pass
        for fd in fds:
            os.close(fd)
        self.runs[conn].add(pid)
        _send(conn, pid=pid, job=request["job"])

    def reap(self) -> None:
        """Collect every ended process below us: our runs (their exit goes to their engine) and adopted orphans."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for conn, pids in self.runs.items():
                if pid in pids:
                    pids.discard(pid)
                    _send(conn, exit=os.waitstatus_to_exitcode(status), pid=pid)
                    break

    def busy(self) -> bool:
        return bool(self.runs)


def _remove_state(path: str | None) -> None:
    """Remove the kept runner's state file, if it still names this process (a newer runner may own it)."""
    if not path:
        return
    with contextlib.suppress(OSError, ValueError):
        if json.loads(open(path, encoding="utf-8").read()).get("pid") == os.getpid():
            os.unlink(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agilab_panel.runtime.zygote")
    parser.add_argument("--control-fd", type=int, help="a connected socket: serve its engine, end with it")
    parser.add_argument("--listen-fd", type=int, help="a listening socket: a kept runner serving later engines")
    parser.add_argument("--idle-timeout", type=float, default=900.0, help="a kept runner ends after this many "
                                                                          "seconds without an engine")
    parser.add_argument("--state-file", help="a kept runner's state file, removed when it ends on its own")
    parser.add_argument("--preload", action="append", default=[])
    parser.add_argument("--path", action="append", default=[])
    parser.add_argument("--parent-pid", type=int, default=None, help="end when this process ends")
    ns = parser.parse_args(argv)
    if (ns.control_fd is None) == (ns.listen_fd is None):
        parser.error("give one of --control-fd and --listen-fd")
    if ns.parent_pid is not None:
        die_with_parent(ns.parent_pid)
    become_subreaper()
    _preload(ns.preload, ns.path)
    if ns.control_fd is not None:
        server = _Server(None)
        server.add(socket.socket(fileno=ns.control_fd))
    else:
        listener = socket.socket(fileno=ns.listen_fd)
        listener.setblocking(False)
        server = _Server(listener)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stopped: the state file goes too
    idle_since = time.monotonic()
    try:
        while True:
            for key, _ in server.selector.select(timeout=0.05):
                if key.fileobj is server.listener:
                    server.accept()
                else:
                    server.serve(key.fileobj)  # type: ignore[arg-type]
            server.reap()
            if server.listener is None and not server.busy():  # the engine went away
                return 0
            if server.busy():
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > ns.idle_timeout:
                return 0
    finally:
        _remove_state(ns.state_file)


if __name__ == "__main__":
    sys.exit(main())
