"""The service's Dask processes: started like a kept cluster, owned by the service's state file.

:class:`ServiceCluster` is a persistent :class:`~agilab_panel.execute.cluster.WorkerCluster` (its
scheduler and workers run in their own session and outlive the process that started them) whose
state is the service's: runs never adopt it, since its worker threads are taken by the loops.
A worker that died is started again with the command recorded at start; every process is ended
by :func:`end_processes`, which signals only pids whose command line names the service's folder
(a recycled pid is never signalled).
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from pathlib import Path

from ..execute.cluster import WorkerCluster, dask_process_env
from .queue import ServicePaths

__all__ = ["ServiceCluster", "respawn_worker", "owned_processes", "end_processes"]


class ServiceCluster(WorkerCluster):
    """A scheduler and one single-threaded worker per slot that stay up after this process ends."""

    def _state_file(self) -> Path:
        return ServicePaths.of(self.env.share, self.env.app).root / "cluster.json"

    def _write_state(self, sched_file: Path) -> None:
        """The service's state file records the processes (see :mod:`.state`)."""

    async def detach(self) -> None:
        """Close the client and stop following logs; the processes keep running for the service."""
        if self.client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.client.close(), 5)
            self.client = None
        if self._tail_task is not None:
            for tail in self._tails:
                tail.poll(self.bus)
            self._tail_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._tail_task
            self._tail_task = None
        self.procs = {}


def respawn_worker(command: list[str], cluster_dir: str, name: str, cython_path: str | None) -> int:
    """Start a slot's Dask worker again with its recorded command, in its own session; returns its pid."""
    log = Path(cluster_dir) / f"{name}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=dask_process_env(cython_path), cwd=cluster_dir, start_new_session=True)
    return proc.pid


def _running(proc: object) -> bool:
    """Alive and not a zombie; a zombie child of ours is reaped on the way."""
    import psutil

    try:
        if proc.status() != psutil.STATUS_ZOMBIE:  # type: ignore[attr-defined]
            return True
    except psutil.Error:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(proc.pid, os.WNOHANG)  # type: ignore[attr-defined]
    return False


def owned_processes(pids: dict[str, int | None], cluster_dir: str) -> dict[str, object]:
    """The live processes among ``pids`` that are ours: their command line names the cluster folder."""
    import psutil

    owned: dict[str, object] = {}
    for name, pid in pids.items():
        if not pid:
            continue
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            if _running(proc) and cluster_dir in " ".join(proc.cmdline()):
                owned[name] = proc
    return owned


def _wait_gone(procs: dict[str, object], until: float) -> dict[str, object]:
    while True:
        alive = {name: p for name, p in procs.items() if _running(p)}
        if not alive or time.monotonic() >= until:
            return alive
        time.sleep(0.05)


def end_processes(pids: dict[str, int | None], cluster_dir: str, deadline: float) -> tuple[list[str], dict[str, int]]:
    """SIGTERM, then SIGKILL in the deadline's last second; returns (ended names, {name: pid} still alive)."""
    import psutil

    procs = owned_processes(pids, cluster_dir)
    for proc in procs.values():
        with contextlib.suppress(psutil.Error):
            proc.terminate()  # type: ignore[attr-defined]
    alive = _wait_gone(procs, max(time.monotonic() + 0.2, deadline - 1.0))
    for proc in alive.values():
        with contextlib.suppress(psutil.Error):
            proc.kill()  # type: ignore[attr-defined]
    alive = _wait_gone(alive, max(time.monotonic() + 0.2, deadline))
    return [name for name in procs if name not in alive], {name: p.pid for name, p in alive.items()}  # type: ignore[attr-defined]
