"""Functions the engine submits to Dask workers (cluster mode).

A worker process keeps one app worker per run (``work_init`` once), reports partition starts through
Dask's event log (the engine subscribes to the topic), and the reduce task calls ``work_done`` with
every result in plan order.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

from .job import Job, make_worker, write_output

__all__ = ["PROGRESS_TOPIC", "run_partition", "run_partitions_pooled", "reduce_results", "warm", "finish_run"]

PROGRESS_TOPIC = "agilab-progress"
_workers: dict[tuple[str, str], Any] = {}


class PartitionSkipped(RuntimeError):
    """A pooled partition not started because another partition of its task had failed."""


def _dask_worker() -> Any:
    try:
        from distributed import get_worker

        return get_worker()
    except Exception:  # not inside a Dask task (direct call in tests)
        return None


def _log(event: dict[str, Any], worker: Any = None) -> None:
    worker = worker or _dask_worker()
    if worker is not None:
        worker.log_event(PROGRESS_TOPIC, event)


def _app_worker(job: Job, slot: str) -> Any:
    key = (job.run_id, slot)
    worker = _workers.get(key)
    if worker is None:
        worker = make_worker(job, slot)
        worker.work_init()
        _workers[key] = worker
    return worker


def run_partition(job: Job, slot: str, partition: dict[str, Any]) -> tuple[str, Any, float]:
    """One partition on its pinned worker; returns (label, result, seconds)."""
    label = partition["label"]
    dask_worker = _dask_worker()
    _log({"label": label, "slot": slot, "state": "started", "time": time.time()}, dask_worker)
    start = time.perf_counter()
    result = _app_worker(job, slot).work_pool(partition["payload"])
    seconds = time.perf_counter() - start
    _log({"label": label, "slot": slot, "state": "done", "seconds": seconds, "time": time.time()}, dask_worker)
    return label, result, seconds


def run_partitions_pooled(job: Job, slot: str, partitions: list[dict[str, Any]]) -> list[tuple[str, Any, float]]:
    """Cluster + pool: the worker maps its partitions over a thread pool (Dask workers are daemons)."""
    worker = _app_worker(job, slot)
    dask_worker = _dask_worker()
    failed = threading.Event()

    def one(partition: dict[str, Any]) -> tuple[str, Any, float]:
        if failed.is_set():  # a pool thread takes the next partition before the failure reaches shutdown()
            raise PartitionSkipped(partition["label"])
        _log({"label": partition["label"], "slot": slot, "state": "started", "time": time.time()}, dask_worker)
        start = time.perf_counter()
        try:
            result = worker.work_pool(partition["payload"])
        except BaseException as exc:
            failed.set()
            exc.agi_partition = partition["label"]  # type: ignore[attr-defined]  # pickled with the exception
            raise
        seconds = time.perf_counter() - start
        _log({"label": partition["label"], "slot": slot, "state": "done", "seconds": seconds, "time": time.time()}, dask_worker)
        return partition["label"], result, seconds

    pool = ThreadPoolExecutor(max_workers=max(1, job.pool_size))
    try:
        futures = [pool.submit(one, partition) for partition in partitions]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        errors = [f.exception() for f in futures if f in done and f.exception() is not None]
        first = next((e for e in errors if not isinstance(e, PartitionSkipped)), errors[0] if errors else None)
        if first is not None:  # the failing partition's own error, not one queued behind it
            raise first
        return [f.result() for f in futures]
    finally:  # a failed partition fails the task now, not after the partitions queued behind it
        pool.shutdown(wait=False, cancel_futures=True)


def reduce_results(job: Job, *results: Any) -> dict[str, Any]:
    """``work_done`` over every partition result, in plan order, then the output file."""
    by_label: dict[str, Any] = {}
    for item in results:
        for label, value, _ in item if isinstance(item, list) else [item]:
            by_label[label] = value
    closer = make_worker(job, "reduce")
    frame = closer.work_done([(label, by_label[label]) for label in job.order])
    info = write_output(job, frame)
    closer.stop()
    return info


def warm(worker_ref: str, src_path: str) -> bool:
    """Import the app's worker module ahead of the first task (paid at cluster start, not per run)."""
    import importlib
    import sys

    if src_path not in sys.path:
        sys.path.insert(0, src_path)
    importlib.import_module(worker_ref.partition(":")[0])
    return True


def finish_run(run_id: str) -> int:
    """Call ``stop`` on this process's app workers of a run (run on every worker at the end)."""
    done = 0
    for key in [k for k in _workers if k[0] == run_id]:
        try:
            _workers.pop(key).stop()
        finally:
            done += 1
    return done
