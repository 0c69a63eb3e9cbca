"""Cluster runs: partitions pinned to the Dask workers the plan names, progress from the client.

Each slot's partitions go in chunks of consecutive ones, one task per chunk restricted to the slot's
worker (a task per partition cost more than a tiny partition); starts and ends arrive in batches
through the worker event log. A failed partition or a worker that leaves ends the run at once with
an error naming both; the caller decides whether the cluster survives.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from ..events import EventBus, PartitionEvent, WorkerEvent
from ..runtime import tasks
from ..runtime.job import Job
from .cluster import WorkerCluster
from .result import PartitionStatus, RunError

__all__ = ["run_dask", "WATCH_INTERVAL"]

WATCH_INTERVAL = 0.25
DEATH_GRACE = 3.0  # seconds
HEARTBEAT_INTERVAL = 1.0  # seconds between two heartbeat events per worker


async def run_dask(job: Job, cluster: WorkerCluster, bus: EventBus) -> tuple[dict[str, Any], dict[str, PartitionStatus]]:
    from distributed import as_completed

    client = cluster.client
    statuses = {p["label"]: PartitionStatus(label=p["label"], worker=slot) for slot, p in job.partitions()}
    running: dict[str, str] = {}  # slot -> label last started there

    def on_progress(event: Any) -> None:
        _, batch = event
        for slot, label, state, seconds, stamp in batch:
            status = statuses.get(label)
            if status is None or status.status in ("done", "failed"):
                continue
            if state == "started":
                status.status = "started"
                running[slot] = label
            else:
                status.status, status.seconds = "done", seconds
            bus.emit(PartitionEvent(label=label, worker=slot, state=state, seconds=status.seconds, time=stamp))

    client.subscribe_topic(tasks.PROGRESS_TOPIC, on_progress)
    # Every task carries the job's common part (small: neither the partitions nor their order), so
    # the first task leaves at once, without a round trip to put the job on the workers first.
    common = job.slim(order=False)
    pooled = bool(job.mode & 1)
    futures = []
    owners: dict[str, str] = {}  # task key -> the slot it runs on
    for slot, parts in job.slots.items():
        if not parts:
            continue
        address = cluster.slot_workers[slot]
        if pooled:  # the slot's app worker stops as its task (or its last chunk) ends: ``of``
            futures.append(client.submit(tasks.run_partitions_pooled, common, slot, parts, 1, workers=[address],
                                         allow_other_workers=False, pure=False, key=f"agi-{job.run_id}-{slot}"))
        else:
            chunks = tasks.chunks(parts)
            futures.extend(client.map(tasks.run_partitions, [common] * len(chunks), [slot] * len(chunks), chunks,
                                      [len(chunks)] * len(chunks), workers=[address], allow_other_workers=False,
                                      pure=False, key=[f"agi-{job.run_id}-{slot}-{i}" for i in range(len(chunks))]))
        owners.update({str(f.key): slot for f in futures[len(owners):]})
    # Submitted with the partitions: the scheduler starts it as the last of them ends, not after their
    # results have reached this process and a new task has come back.
    reduce = client.submit(tasks.reduce_results, job.slim(), *futures, pure=False, key=f"agi-{job.run_id}-reduce")
    watch = asyncio.create_task(_watch_workers(cluster, running, statuses))
    beat: asyncio.Future | None = None
    ended = False
    try:
        async for future in as_completed(futures, with_results=False):
            if future.status == "error":
                exc = await future.exception()
                slot = owners.get(str(future.key))
                label = getattr(exc, "agi_partition", None)  # a task names the partition that failed
                if label is None or type(exc).__name__ == "KilledWorker":
                    label = _running_on(slot, job, statuses, running)
                if label and label in statuses:
                    statuses[label].status, statuses[label].error = "failed", f"{type(exc).__name__}: {exc}"
                    bus.emit(PartitionEvent(label=label, worker=slot, state="failed", error=statuses[label].error))
                if type(exc).__name__ == "KilledWorker":
                    raise RunError(f"worker {slot} died while running partition {label}", partition=label, worker=slot,
                                   details=str(exc))
                raise RunError(f"partition {label} failed on worker {slot}: {type(exc).__name__}: {exc}",
                               partition=label, worker=slot, details=str(exc))
            if watch.done():
                watch.result()
        beat = asyncio.ensure_future(_sample_heartbeats(cluster))  # and one as it ends, however short the run
        info = await _race(reduce, watch)
        await beat
        ended = True
        for status in statuses.values():  # results are in: a late progress message changes nothing
            if status.status != "done":
                status.status = "done"
                bus.emit(PartitionEvent(label=status.label, worker=status.worker, state="done", seconds=status.seconds))
        return info, statuses
    except BaseException:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.cancel([*futures, reduce]), 5)
        if any(s.status not in ("done", "failed") for s in statuses.values()):
            # Cancelling a future does not stop a task a worker thread runs: the cluster is not fit for another run
            cluster.stale = True
        raise
    finally:
        for task in (watch, beat):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        with contextlib.suppress(Exception):
            client.unsubscribe_topic(tasks.PROGRESS_TOPIC)
        if not ended and cluster.client is not None and cluster.alive():  # else every slot's app worker has stopped
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.run(tasks.finish_run, job.run_id), 10)


async def _race(future: Any, watch: asyncio.Task) -> Any:
    waiter = asyncio.ensure_future(future.result())
    done, _ = await asyncio.wait({waiter, watch}, return_when=asyncio.FIRST_COMPLETED)
    if watch in done:
        waiter.cancel()
        watch.result()
    return waiter.result()


def _running_on(slot: str | None, job: Job, statuses: dict[str, PartitionStatus], running: dict[str, str]) -> str | None:
    """The partition a slot was running: every task queued on a dead worker errs, so the task is no
    guide. The last one reported started, unless it ended; else the slot's first that did not end
    (the worker died less than ``tasks.FLUSH_INTERVAL`` after its start, which had not left)."""
    if slot is None:
        return None
    label = running.get(slot)
    if label is not None and statuses[label].status not in ("done", "failed"):
        return label
    return next((p["label"] for p in job.slots.get(slot, []) if statuses[p["label"]].status not in ("done", "failed")),
                label)


async def _watch_workers(cluster: WorkerCluster, running: dict[str, str], statuses: dict[str, PartitionStatus]) -> None:
    """Stream worker heartbeats, and end the run when a pinned worker leaves (its tasks could run nowhere else).

    The scheduler usually reports the killed task first (and names its partition exactly); the
    watchdog waits a short grace period for that before blaming the last partition seen starting.
    """
    first_seen: float | None = None
    await _sample_heartbeats(cluster)  # the plot has a point per worker as soon as the run starts
    last_beat = time.monotonic()
    while True:
        await asyncio.sleep(WATCH_INTERVAL)
        dead = cluster.dead_slots()
        if not dead and cluster.client is not None:
            with contextlib.suppress(Exception):
                info = await cluster._identity()
                workers = info.get("workers", {})
                dead = [s for s, a in cluster.slot_workers.items() if a not in workers and s in _used_slots(statuses)]
                if time.monotonic() - last_beat >= HEARTBEAT_INTERVAL:
                    last_beat = time.monotonic()
                    _heartbeats(cluster, workers)
        if not dead:
            continue
        first_seen = first_seen or time.monotonic()
        if time.monotonic() - first_seen < DEATH_GRACE:
            continue
        slot = dead[0]
        if cluster.bus is not None:
            cluster.bus.emit(WorkerEvent(worker=slot, state="left", address=cluster.slot_workers.get(slot, "")))
        label = running.get(slot) or next((s.label for s in statuses.values() if s.worker == slot and s.status != "done"), None)
        if label:
            statuses[label].status, statuses[label].error = "failed", f"worker {slot} died"
        raise RunError(f"worker {slot} died while running partition {label or '(none)'}", partition=label, worker=slot)


async def _sample_heartbeats(cluster: WorkerCluster) -> None:
    """One heartbeat event per slot now (a scheduler that does not answer is the watchdog's business)."""
    if cluster.bus is None or cluster.client is None:
        return
    with contextlib.suppress(Exception):
        info = await asyncio.wait_for(cluster._identity(), 5)
        _heartbeats(cluster, info.get("workers", {}))


def _heartbeats(cluster: WorkerCluster, workers: dict[str, Any]) -> None:
    """One WorkerEvent per slot: seconds since the scheduler last heard from its worker."""
    if cluster.bus is None:
        return
    now = time.time()
    for slot, address in cluster.slot_workers.items():
        seen = workers.get(address, {}).get("last_seen")
        if seen is not None:
            cluster.bus.emit(WorkerEvent(worker=slot, state="heartbeat", address=address, age=max(0.0, now - seen)))


def _used_slots(statuses: dict[str, PartitionStatus]) -> set[str]:
    return {s.worker for s in statuses.values() if s.status != "done"}
