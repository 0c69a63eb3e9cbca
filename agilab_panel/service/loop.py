"""The service loop: one per Dask worker slot, running in the worker environment until asked to stop.

A loop claims the oldest pending task by renaming it into running/, runs the task's partitions with
the app's worker (``work_init`` once per set of args, not per task), saves the partition results,
publishes the task to done/ or failed/ with the error, and, when it finished the last task of a
submission, reduces the submission's output like a RUN does. A thread beside it writes the
heartbeat about once per poll interval, and at once when the loop takes a task.

Idle loops sleep on an inotify watch of pending/ and control/, so a submission starts within
milliseconds; the poll interval is only the fallback where inotify is not available (not Linux, a
network file system). A loop ends when control/stop exists or its slot's control file names another
incarnation (a restarted loop replaces it); its last heartbeat says ``stopped`` and how it ended.

Imports: stdlib, the queue, and the runtime's job helpers (the worker environment has nothing else
of the engine's).
"""
from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import select
import sys
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write_text
from ..runtime.job import Job, describe_error, make_worker
from ..runtime.tasks import reduce_results
from .heartbeat import write_heartbeat
from .queue import (
    ServicePaths,
    claim,
    fail_corrupt,
    finish_submission,
    load_results,
    output_dir,
    parse_running,
    publish,
    save_results,
    submission_of,
    unfinished_submissions,
)

__all__ = ["Wakeup", "ServiceLoop", "serve", "reduce_submission", "finish_orphans", "finish_orphans_async"]

_IN_CLOSE_WRITE = 0x00000008
_IN_MOVED_TO = 0x00000080
_APP_WORKERS_KEPT = 4  # app workers kept initialised, one per recent set of args
_MIN_BEAT_GAP = 0.2  # seconds between two heartbeat writes (a busy loop claims many tasks a second)


class Wakeup:
    """Wait for a new file in some folders (inotify on Linux), or for the timeout (the polling fallback)."""

    def __init__(self, folders: list[Path]) -> None:
        self.fd = -1
        if not sys.platform.startswith("linux"):
            return
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, AttributeError):
            return
        if fd < 0:
            return
        for folder in folders:
            if libc.inotify_add_watch(fd, os.fsencode(str(folder)), _IN_MOVED_TO | _IN_CLOSE_WRITE) < 0:
                os.close(fd)
                return
        self.fd = fd

    @property
    def watching(self) -> bool:
        return self.fd >= 0

    def wait(self, timeout: float) -> bool:
        """True when a file arrived (events are drained), False on timeout."""
        if self.fd < 0:
            time.sleep(timeout)
            return False
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return False
        with contextlib.suppress(BlockingIOError):
            while os.read(self.fd, 65536):
                pass
        return True

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _dask_address() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except Exception:  # not inside a Dask task (a direct call)
        return ""


class ServiceLoop:
    """The loop of one slot; :meth:`run` returns when it is asked to stop."""

    def __init__(self, paths: ServicePaths, worker: str, incarnation: int, poll_interval: float) -> None:
        self.paths, self.worker, self.incarnation = paths, worker, incarnation
        self.poll_interval = max(0.01, float(poll_interval))
        self.state, self.task, self.tasks_done = "running", None, 0
        self.address = _dask_address()
        self._beat = threading.Event()
        self._stopping = threading.Event()
        self._app_workers: OrderedDict[str, Any] = OrderedDict()
        self._held: dict[str, list[tuple[str, Any, float]]] = {}  # the results of the task just run (saved too)

    # -- heartbeats --------------------------------------------------------------------------------
    def _write_beat(self, **extra: Any) -> None:
        write_heartbeat(self.paths.heartbeat_file(self.worker), worker=self.worker, incarnation=self.incarnation,
                        state=self.state, task=self.task, address=self.address, tasks_done=self.tasks_done, **extra)

    def _beats(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(OSError):  # a full disk must not kill the loop; the beat goes stale
                self._write_beat()
            self._beat.wait(self.poll_interval)
            self._beat.clear()
            self._stopping.wait(_MIN_BEAT_GAP)

    # -- control -----------------------------------------------------------------------------------
    def superseded(self) -> bool:
        """Asked to stop, or replaced by a restarted loop of another incarnation."""
        if self.paths.stop_flag.exists():
            return True
        try:
            return self.paths.slot_control(self.worker).read_text().strip() != str(self.incarnation)
        except FileNotFoundError:
            return False

    def run(self) -> dict[str, Any]:
        beats = threading.Thread(target=self._beats, daemon=True, name=f"agilab-heartbeat-{self.worker}")
        wake = Wakeup([self.paths.pending, self.paths.control])
        exit, error = "finished", ""
        beats.start()
        listing: list[str] = []
        try:
            while not self.superseded():
                path = claim(self.paths, self.worker, listing)
                if path is None:
                    wake.wait(self.poll_interval)
                    continue
                self._process(path)
        except BaseException as exc:
            exit, error = ("error" if isinstance(exc, Exception) else "cancelled"), describe_error(exc)
            raise
        finally:
            self._stopping.set()
            self._beat.set()
            beats.join(5)
            self.state, self.task = "stopped", None
            with contextlib.suppress(OSError):
                self._write_beat(exit=exit, error=error)
            wake.close()
            for app_worker in self._app_workers.values():
                with contextlib.suppress(Exception):
                    app_worker.stop()
            self._app_workers.clear()
        return {"worker": self.worker, "incarnation": self.incarnation, "tasks_done": self.tasks_done, "exit": exit}

    # -- one task ----------------------------------------------------------------------------------
    def _process(self, path: Path) -> None:
        name, _ = parse_running(path.name)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            job, partitions = _task_job(record, name, self.worker)
        except FileNotFoundError:  # requeued under our feet by a status that judged this loop dead
            return
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            fail_corrupt(self.paths, path, f"{type(exc).__name__}: {exc}")
            return
        self.state, self.task = "processing", name
        self._beat.set()
        started = time.time()
        ran = {"worker": self.worker, "pid": os.getpid(), "incarnation": self.incarnation, "started": started}
        try:
            results = self._run(job, partitions)
            save_results(self.paths, name, results)  # before done/: whoever reduces finds every result on disk
            self._held = {name: results}  # ... and this loop, if it reduces, need not read its own back
            finished = time.time()
            publish(self.paths, path, "done", {**record, **ran, "finished": finished, "seconds": finished - started,
                                               "partitions": [label for label, _, _ in results]})
        except Exception as exc:
            publish(self.paths, path, "failed", {**record, **ran, "finished": time.time(), "error": describe_error(exc)})
        finally:
            self.state, self.task = "running", None
            self.tasks_done += 1
        try:
            finish_submission(self.paths, submission_of(name), reduce=self._reduce,
                              owner={"worker": self.worker, "incarnation": self.incarnation, "pid": os.getpid()})
        finally:
            self._held = {}

    def _app_worker(self, job: Job) -> Any:
        key = json.dumps([job.worker_ref, job.mode, job.args, job.data_in, job.data_out, job.cython_path],
                         sort_keys=True, default=str)
        worker = self._app_workers.get(key)
        if worker is None:
            worker = make_worker(job, self.worker)
            worker.work_init()
            self._app_workers[key] = worker
            while len(self._app_workers) > _APP_WORKERS_KEPT:
                _, old = self._app_workers.popitem(last=False)
                with contextlib.suppress(Exception):
                    old.stop()
        self._app_workers.move_to_end(key)
        return worker

    def _run(self, job: Job, partitions: list[dict[str, Any]]) -> list[tuple[str, Any, float]]:
        worker = self._app_worker(job)

        def one(partition: dict[str, Any]) -> tuple[str, Any, float]:
            start = time.perf_counter()
            result = worker.work_pool(partition["payload"])
            return partition["label"], result, time.perf_counter() - start

        if job.mode & 1 and len(partitions) > 1:  # pool bit: a thread pool inside the worker, as in cluster runs
            with ThreadPoolExecutor(max_workers=max(1, job.pool_size)) as pool:
                return list(pool.map(one, partitions))
        return [one(p) for p in partitions]

    def _reduce(self, submission: dict[str, Any]) -> dict[str, Any]:
        return reduce_submission(self.paths, submission, self._held)


def reduce_submission(paths: ServicePaths, submission: dict[str, Any],
                      held: dict[str, list[tuple[str, Any, float]]] | None = None) -> dict[str, Any]:
    """``work_done`` over every partition of the submission in plan order, then the output file, in the
    submission's own folder under data_out (what ``work_done`` writes beside it goes there too)."""
    folder = output_dir(submission["job"]["data_out"], submission["id"])
    job = Job(**{**submission["job"], "data_out": str(folder)})
    info = reduce_results(job, *load_results(paths, submission["tasks"], held))
    if info.get("output"):
        atomic_write_text(paths.last_output, json.dumps(
            {"output": info["output"], "mode": job.mode, "time": time.time(), "submission": submission["id"]}),
            durable=False)
    return {**info, "output_dir": str(folder)}


def finish_orphans(root: str, live: dict[str, int]) -> dict[str, str]:
    """Close the submissions whose every task ended but whose finisher died before closing them.

    Runs in a worker process (the reduce needs the app's worker), asked by ``status`` under the
    service's lock. ``live`` maps each slot to the incarnation of its loop now: a finish marker held
    by any other (a loop since restarted, an earlier status) is stale and taken over, so the reduce
    still runs once. Returns {submission: its final status}.
    """
    paths = ServicePaths(Path(root))

    def stale(owner: dict[str, Any]) -> bool:
        worker = owner.get("worker")
        return not (worker in live and owner.get("incarnation") == live[worker])

    closed = {}
    for submission in unfinished_submissions(paths):
        record = finish_submission(paths, submission, reduce=lambda r: reduce_submission(paths, r),
                                   owner={"worker": "status", "pid": os.getpid()}, stale=stale)
        if record is not None:
            closed[submission] = str(record["status"])
    return closed


async def finish_orphans_async(root: str, live: dict[str, int]) -> dict[str, str]:
    """:func:`finish_orphans` off the worker's event loop (``Client.run`` awaits it there)."""
    return await asyncio.to_thread(finish_orphans, root, live)


def _task_job(record: Any, name: str, worker: str) -> tuple[Job, list[dict[str, Any]]]:
    """The job of a task file, checked enough that a wrong file fails here and not in the app."""
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    if record.get("id") != name:
        raise ValueError(f"its id {record.get('id')!r} is not its file name {name!r}")
    partitions = record["partitions"]
    if not isinstance(partitions, list) or not all(isinstance(p, dict) and "label" in p and "payload" in p
                                                   for p in partitions):
        raise ValueError("partitions must be a list of {label, payload}")
    job = Job(**record["job"])
    job.slots = {worker: partitions}
    return job, partitions


def serve(spec: dict[str, Any]) -> dict[str, Any]:
    """The Dask task of one slot's loop: ``spec`` = root, worker, incarnation, poll_interval."""
    loop = ServiceLoop(ServicePaths(Path(spec["root"])), str(spec["worker"]), int(spec["incarnation"]),
                       float(spec["poll_interval"]))
    return loop.run()
