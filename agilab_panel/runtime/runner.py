"""Entry point of local runs (mode without the cluster bit), started in the worker environment.

``python -m agilab_panel.runtime.runner JOB.json --events-fd N``: events go as JSON lines to file
descriptor N (partition progress, the result), while the app's own prints stay on stdout/stderr
for the log view. Writes under PIPE_BUF are atomic, so pool processes share the descriptor.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .job import Job, describe_error, make_worker, write_output

_events_fd: int | None = None
_state = threading.local()
_job: Job | None = None


def emit(kind: str, **data: Any) -> None:
    line = json.dumps({"kind": kind, "time": time.time(), **data}, default=str) + "\n"
    if _events_fd is None:
        return
    payload = line.encode()
    if len(payload) > 4000:  # keep writes atomic: trim long error texts
        data["error"] = str(data.get("error", ""))[:3000]
        payload = (json.dumps({"kind": kind, "time": time.time(), **data}, default=str)[:4000] + "\n").encode()
    os.write(_events_fd, payload)


def _worker_for(worker_id: str) -> Any:
    worker = getattr(_state, "worker", None)
    if worker is None:
        assert _job is not None
        worker = make_worker(_job, worker_id)
        worker.work_init()
        _state.worker = worker
    return worker


def _pool_init(job_json: str, fd: int | None) -> None:
    global _job, _events_fd
    _job, _events_fd = Job.from_json(job_json), fd


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
        initargs=(job.to_json(), fd),
    )


def run(job: Job) -> dict[str, Any]:
    global _job
    _job = job
    parts = [(p["label"], p["payload"]) for _, p in job.partitions()]
    closer = make_worker(job, "reduce")  # imports the app once, before any pool forks
    results: dict[str, Any] = {}
    if job.mode & 1 and len(parts) > 1:
        with _executor(job, _events_fd) as pool:
            futures = [pool.submit(_run_one, label, payload) for label, payload in parts]
            for future in futures:
                label, result = future.result()
                results[label] = result
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
    global _events_fd
    parser = argparse.ArgumentParser(prog="agilab_panel.runtime.runner")
    parser.add_argument("job", type=Path)
    parser.add_argument("--events-fd", type=int, default=None)
    ns = parser.parse_args(argv)
    _events_fd = ns.events_fd
    job = Job.from_json(ns.job.read_text(encoding="utf-8"))
    try:
        info = run(job)
    except BaseException as exc:  # report, then fail: the engine names the partition and worker
        emit("error", error=describe_error(exc))
        print(f"run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    emit("result", **info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
