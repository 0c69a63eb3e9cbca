"""Functions the engine submits to Dask workers (cluster mode).

A worker process keeps one app worker per run (``work_init`` once) and runs its slot's partitions in
chunks, one Dask task per chunk of consecutive partitions: a Dask task costs the scheduler, the worker
and the engine about a millisecond, more than a tiny partition itself. Partition starts and ends are
reported through Dask's event log (the engine subscribes to the topic), a batch of them per message
at most every ``FLUSH_INTERVAL``. A slot's app worker stops as the slot's last task ends (its tasks
know how many they are), so a run that succeeds needs no round trip to the workers after its reduce;
``finish_run`` stops what a failed or cancelled run left. The reduce task calls ``work_done`` with
every result in plan order.
"""
from __future__ import annotations

import contextlib
import threading
import time
import traceback
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any

from .job import Job, make_worker, write_output

__all__ = ["PROGRESS_TOPIC", "FLUSH_INTERVAL", "CHUNK_MAX", "chunks", "run_partitions", "run_partitions_pooled",
           "reduce_results", "warm", "finish_run"]

PROGRESS_TOPIC = "agilab-progress"
FLUSH_INTERVAL = 0.1  # seconds a progress record may wait to share its message with later ones
CHUNK_MAX = 100  # partitions per Dask task at most
CHUNKS_PER_SLOT = 4  # a slot's partitions go in this many tasks at least, when it has as many
_workers: dict[tuple[str, str], Any] = {}
_ended: dict[tuple[str, str], int] = {}  # tasks of a run's slot that have succeeded, until its last one
_workers_lock = threading.Lock()


class PartitionSkipped(RuntimeError):
    """A pooled partition not started because another partition of its task had failed."""


def _dask_worker() -> Any:
    try:
        from distributed import get_worker

        return get_worker()
    except Exception:  # not inside a Dask task (direct call in tests)
        return None


class _Outbox:
    """This worker process's progress records on their way to the engine.

    Two messages per partition cost more than a tiny partition (the worker's event loop, the scheduler
    and the engine handle each): records wait here until ``FLUSH_INTERVAL`` has passed since the first
    of them, then go in one message, in the order they were made. A task flushes when it ends (so its
    records arrive before its result) and when a partition fails. A partition that runs longer than
    the interval is announced while it runs: a worker that dies during it is blamed on it (one that
    kills its worker sooner may be blamed on a partition just before it, whose end had not left).
    """

    def __init__(self, dask_worker: Any) -> None:
        self.dask_worker = dask_worker
        self.records: list[list[Any]] = []
        self.lock = threading.Lock()
        self.pending = threading.Event()
        threading.Thread(target=self._loop, name="agilab-progress", daemon=True).start()

    def add(self, record: list[Any]) -> None:
        with self.lock:
            self.records.append(record)
        self.pending.set()

    def flush(self) -> None:
        with self.lock:  # held while sending: two batches never overtake each other
            batch, self.records = self.records, []
            self.pending.clear()
            if batch:
                self.dask_worker.log_event(PROGRESS_TOPIC, batch)

    def _loop(self) -> None:
        while True:
            self.pending.wait()
            time.sleep(FLUSH_INTERVAL)
            with contextlib.suppress(Exception):  # a worker closing: its tasks' own flush reports it
                self.flush()


_outbox: _Outbox | None = None
_outbox_lock = threading.Lock()


def _progress() -> _Outbox | None:
    """The outbox of the Dask worker running this task (None outside Dask: nobody listens)."""
    global _outbox
    dask_worker = _dask_worker()
    if dask_worker is None:
        return None
    with _outbox_lock:
        if _outbox is None or _outbox.dask_worker is not dask_worker:
            _outbox = _Outbox(dask_worker)
        return _outbox


def _report(outbox: _Outbox | None, record: list[Any]) -> None:
    """One record, ``[slot, label, "started" | "done", seconds, time]``."""
    if outbox is not None:
        outbox.add(record)


def chunks(partitions: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """A slot's partitions (in its order) cut into consecutive chunks, one Dask task each.

    At most ``CHUNK_MAX`` per chunk, and ``CHUNKS_PER_SLOT`` chunks when there are as many partitions
    (a few partitions stay one task each). Long chunks cost nothing the user sees: progress is sent
    while a chunk runs, a failed partition ends its chunk at once, and a cancelled run stops the workers.
    """
    size = max(1, min(CHUNK_MAX, -(-len(partitions) // CHUNKS_PER_SLOT)))
    return [partitions[i:i + size] for i in range(0, len(partitions), size)]


def _app_worker(job: Job, slot: str) -> Any:
    key = (job.run_id, slot)
    worker = _workers.get(key)
    if worker is None:
        worker = make_worker(job, slot)
        worker.work_init()
        _workers[key] = worker
    return worker


def _task_ended(job: Job, slot: str, of: int | None) -> None:
    """One of the ``of`` tasks of a slot has succeeded: after the last one, its app worker stops here and
    now, in the task (not in a round trip at the run's end). A failing ``stop`` is printed to the
    worker's log (followed into the run's), as ``finish_run`` never failed a run either."""
    if of is None:  # the caller stops it (finish_run)
        return
    key = (job.run_id, slot)
    with _workers_lock:
        if key not in _workers:  # finish_run came first (the run failed): nothing to count
            return
        done = _ended[key] = _ended.get(key, 0) + 1
        if done < of:
            return
        del _ended[key]
        worker = _workers.pop(key)
    _stop(worker)


def _stop(worker: Any) -> None:
    try:
        worker.stop()
    except Exception:
        traceback.print_exc()


def run_partitions(job: Job, slot: str, partitions: list[dict[str, Any]],
                   of: int | None = None) -> list[tuple[str, Any, float]]:
    """Consecutive partitions of one slot, in order, on its pinned worker; returns (label, result, seconds)
    of each. A failing partition ends the chunk at once, its exception naming it (``agi_partition``).
    ``of``: how many tasks the slot has in this run (its app worker stops after the last), None to
    leave that to ``finish_run``."""
    worker = _app_worker(job, slot)
    outbox = _progress()
    results = []
    try:
        for partition in partitions:
            label = partition["label"]
            _report(outbox, [slot, label, "started", 0.0, time.time()])
            start = time.perf_counter()
            try:
                result = worker.work_pool(partition["payload"])
            except BaseException as exc:
                exc.agi_partition = label  # type: ignore[attr-defined]  # pickled with the exception
                raise
            seconds = time.perf_counter() - start
            _report(outbox, [slot, label, "done", seconds, time.time()])
            results.append((label, result, seconds))
    finally:
        if outbox is not None:
            outbox.flush()
    _task_ended(job, slot, of)
    return results


def run_partitions_pooled(job: Job, slot: str, partitions: list[dict[str, Any]],
                          of: int | None = None) -> list[tuple[str, Any, float]]:
    """Cluster + pool: the worker maps its partitions over a thread pool (Dask workers are daemons).
    ``of`` as for :func:`run_partitions`."""
    worker = _app_worker(job, slot)
    outbox = _progress()
    failed = threading.Event()

    def one(partition: dict[str, Any]) -> tuple[str, Any, float]:
        if failed.is_set():  # a pool thread takes the next partition before the failure reaches shutdown()
            raise PartitionSkipped(partition["label"])
        _report(outbox, [slot, partition["label"], "started", 0.0, time.time()])
        start = time.perf_counter()
        try:
            result = worker.work_pool(partition["payload"])
        except BaseException as exc:
            failed.set()
            exc.agi_partition = partition["label"]  # type: ignore[attr-defined]  # pickled with the exception
            raise
        seconds = time.perf_counter() - start
        _report(outbox, [slot, partition["label"], "done", seconds, time.time()])
        return partition["label"], result, seconds

    pool = ThreadPoolExecutor(max_workers=max(1, job.pool_size))
    try:
        futures = [pool.submit(one, partition) for partition in partitions]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        errors = [f.exception() for f in futures if f in done and f.exception() is not None]
        first = next((e for e in errors if not isinstance(e, PartitionSkipped)), errors[0] if errors else None)
        if first is not None:  # the failing partition's own error, not one queued behind it
            raise first
        results = [f.result() for f in futures]
    finally:  # a failed partition fails the task now, not after the partitions queued behind it
        pool.shutdown(wait=False, cancel_futures=True)
        if outbox is not None:
            outbox.flush()
    _task_ended(job, slot, of)
    return results


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
    """Call ``stop`` on this process's app workers of a run that did not end well (run on every worker):
    a slot whose tasks all succeeded has stopped its own already. Returns how many it stopped."""
    with _workers_lock:
        keys = [k for k in _workers if k[0] == run_id]
        for key in [k for k in _ended if k[0] == run_id]:
            del _ended[key]
        workers = [_workers.pop(key) for key in keys]
    for worker in workers:
        _stop(worker)
    return len(workers)
