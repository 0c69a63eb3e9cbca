"""A warm parent for local runs: imports the app once, then forks one child per job.

Started by the engine in the worker environment with one end of a Unix socket pair. For each job
the engine sends the job path and three descriptors (stdout, stderr, events); the zygote forks a
child that runs :mod:`agilab_panel.runtime.runner` on them, replies with the child's pid, and later
with its exit code. The zygote stays single-threaded so forking it is safe.

Each child leads its own process group (the engine cancels a run with one ``killpg``) and dies with
the zygote, which dies with the engine. The zygote is a subreaper: pool workers of a killed run come
back to it and are reaped, never left as zombies.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import selectors
import socket
import sys

from .lifecycle import become_subreaper, die_with_parent

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


def _child(job: str, fds: list[int], control: socket.socket, parent: int) -> None:  # pragma: no cover - after fork
    os.setpgid(0, 0)
    die_with_parent(parent)
    control.close()
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
    control.send(json.dumps(message).encode())  # a SOCK_SEQPACKET pair: one send, one message


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agilab_panel.runtime.zygote")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--preload", action="append", default=[])
    parser.add_argument("--path", action="append", default=[])
    parser.add_argument("--parent-pid", type=int, default=None, help="end when this process ends")
    ns = parser.parse_args(argv)
    if ns.parent_pid is not None:
        die_with_parent(ns.parent_pid)
    become_subreaper()
    _preload(ns.preload, ns.path)
    control = socket.socket(fileno=ns.control_fd)
    _send(control, ready=os.getpid())
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    children: set[int] = set()
    while True:
        if selector.select(timeout=0.05):
            message, fds, _, _ = socket.recv_fds(control, 65536, 3)
            if not message:  # the engine went away
                return 0
            request = json.loads(message)
            me = os.getpid()
            pid = os.fork()
            if pid == 0:
                _child(request["job"], fds, control, me)
            try:  # also here, so the group exists before the engine can signal it
                os.setpgid(pid, pid)
            except OSError:  # the child did it first, or already ended
                pass
            for fd in fds:
                os.close(fd)
            children.add(pid)
            _send(control, pid=pid, job=request["job"])
        _reap(control, children)


def _reap(control: socket.socket, children: set[int]) -> None:
    """Collect every ended process below us: our runs (their exit goes to the engine) and adopted orphans."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid in children:
            children.discard(pid)
            _send(control, exit=os.waitstatus_to_exitcode(status), pid=pid)


if __name__ == "__main__":
    sys.exit(main())
