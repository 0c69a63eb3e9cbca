"""Entry point of local runs (mode without the cluster bit), started in the worker environment.

``python -m agilab_panel.runtime.runner JOB.json --events-fd N``: events go as JSON lines to file
descriptor N (partition progress, the result), while the app's own prints stay on stdout/stderr
for the log view. Pool processes share the descriptor: a write of at most PIPE_BUF bytes is atomic,
so a longer record (a long error, a wide result) goes to a file beside the job and the line only
names it. The run is its own process group and every pool worker dies with it.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import select
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from .job import Job, describe_error, make_worker, write_output
from .lifecycle import die_with_parent
from .lines import serialize_output

SPILL_PREFIX = "event-"  # files holding records too long for one atomic write, beside the job file
_ATOMIC = select.PIPE_BUF
_events_fd: int | None = None
_spill_dir: str | None = None
_state = threading.local()
_job: Job | None = None


def emit(kind: str, **data: Any) -> None:
    """Send one event record to the engine, whole, whatever its size and alphabet."""
    if _events_fd is None:
        return
    payload = (json.dumps({"kind": kind, "time": time.time(), **data}, default=str) + "\n").encode()
    if len(payload) > _ATOMIC:
        run = _job.run_id if _job is not None else "run"
        fd, path = tempfile.mkstemp(prefix=f"{SPILL_PREFIX}{run}-", suffix=".json", dir=_spill_dir)
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        payload = (json.dumps({"kind": "spilled", "file": os.path.basename(path)}) + "\n").encode()
    os.write(_events_fd, payload)


def _worker_for(worker_id: str) -> Any:
    worker = getattr(_state, "worker", None)
    if worker is None:
        assert _job is not None
        worker = make_worker(_job, worker_id)
        worker.work_init()
        _state.worker = worker
    return worker


def _pool_init(job_json: str, fd: int | None, spill_dir: str | None, parent: int) -> None:
    global _job, _events_fd, _spill_dir
    die_with_parent(parent)  # a killed run takes its pool with it
    _job, _events_fd, _spill_dir = Job.from_json(job_json), fd, spill_dir


def _run_one(label: str, payload: dict[str, Any], worker_id: str | None = None) -> tuple[str, Any]:
    if worker_id is None:
        process = _job is not None and _job.pool_backend == "process"
        worker_id = f"pool-{os.getpid()}" if process else f"thread-{threading.current_thread().name.rsplit('_', 1)[-1]}"
    start = time.perf_counter()
    emit("PartitionEvent", label=label, worker=worker_id, state="started")
    try:
        result = _worker_for(worker_id).work_pool(payload)
    except BaseException as exc:
        emit("PartitionEvent", label=label, worker=worker_id, state="failed", seconds=time.perf_counter() - start, error=describe_error(exc))
        raise
    emit("PartitionEvent", label=label, worker=worker_id, state="done", seconds=time.perf_counter() - start)
    return label, result


def _executor(job: Job, fd: int | None) -> Executor:
    if job.pool_backend == "thread":
        return ThreadPoolExecutor(max_workers=job.pool_size)
    return ProcessPoolExecutor(
        max_workers=job.pool_size,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_pool_init,
        initargs=(job.to_json(), fd, _spill_dir, os.getpid()),
    )


class WorkerDied(RuntimeError):
    """A pool process ended while the run needed it; ``dead`` maps its worker name to its exit code."""

    def __init__(self, dead: dict[str, int]) -> None:
        self.dead = dead
        names = ", ".join(f"{name} ({code})" for name, code in dead.items()) or "a pool process"
        super().__init__(f"{names} ended abruptly")


def _map_pool(pool: Executor, parts: list[tuple[str, Any]]) -> dict[str, Any]:
    futures = [pool.submit(_run_one, label, payload) for label, payload in parts]
    results: dict[str, Any] = {}
    try:
        for future in futures:
            label, result = future.result()
            results[label] = result
    except BrokenProcessPool as exc:
        # The executor terminates (SIGTERM) the survivors; the process that broke it ended otherwise.
        processes = dict(getattr(pool, "_processes", None) or {})
        pool.shutdown(wait=True)
        dead = {f"pool-{pid}": p.exitcode for pid, p in processes.items()
                if p.exitcode is not None and p.exitcode not in (0, -signal.SIGTERM)}
        raise WorkerDied(dead) from exc
    return results


def _abandon(pool: Executor) -> None:
    """The run has failed: drop the partitions not started, end the pool processes running the others
    (threads cannot be ended: they finish their partition, but nobody waits for them)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.kill()


def run(job: Job) -> dict[str, Any]:
    global _job
    _job = job
    parts = [(p["label"], p["payload"]) for _, p in job.partitions()]
    closer = make_worker(job, "reduce")  # imports the app once, before any pool forks
    results: dict[str, Any] = {}
    if job.mode & 1 and len(parts) > 1:
        pool = _executor(job, _events_fd)
        try:
            results = _map_pool(pool, parts)
        except BaseException:
            _abandon(pool)
            raise
        pool.shutdown(wait=True)
    else:
        for label, payload in parts:
            results[label] = _run_one(label, payload, "local")[1]
    frame = closer.work_done([(label, results[label]) for label in job.order])
    info = write_output(job, frame)
    closer.stop()
    worker = getattr(_state, "worker", None)
    if worker is not None:
        worker.stop()
    return info


def main(argv: list[str] | None = None) -> int:
    global _events_fd, _spill_dir
    parser = argparse.ArgumentParser(prog="agilab_panel.runtime.runner")
    parser.add_argument("job", type=Path)
    parser.add_argument("--events-fd", type=int, default=None)
    parser.add_argument("--parent-pid", type=int, default=None, help="end when this process ends")
    ns = parser.parse_args(argv)
    if ns.parent_pid is not None:
        die_with_parent(ns.parent_pid)
    _events_fd, _spill_dir = ns.events_fd, str(ns.job.parent)
    serialize_output()  # pool processes inherit it: their long lines do not mix
    job = Job.from_json(ns.job.read_text(encoding="utf-8"))
    try:
        info = run(job)
    except BaseException as exc:  # report, then fail: the engine names the partition and worker
        emit("error", error=describe_error(exc), broken=isinstance(exc, WorkerDied), dead=getattr(exc, "dead", {}))
        print(f"run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    emit("result", **info)
    return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # as a run forked by the warm runner does: no wait for abandoned pool threads
