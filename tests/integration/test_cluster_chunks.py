"""Cluster runs send a slot's partitions in chunks, one Dask task each, and their progress in batches:
every partition still reports its start and end, and a partition that fails or kills its worker in
the middle of a chunk is the one named."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from agilab_panel import AGI, AgiEnv, EventBus, RunRequest
from agilab_panel.events import PartitionEvent
from agilab_panel.execute.cluster import cluster_pool
from agilab_panel.execute.result import RunError
from agilab_panel.install import worker_python
from agilab_panel.runtime import tasks

pytestmark = pytest.mark.integration
FAULTY_APPS = Path(__file__).parent / "apps"
ONE_SLOT = {"127.0.0.1": 1}


def _states(bus: EventBus) -> dict[str, list[str]]:
    states: dict[str, list[str]] = {}
    for event in bus.history:
        if isinstance(event, PartitionEvent):
            states.setdefault(event.label, []).append(event.state)
    return states


def test_a_slot_is_cut_into_consecutive_chunks_in_its_order():
    parts = [{"label": f"p{i}"} for i in range(1000)]
    cut = tasks.chunks(parts)
    assert [p for chunk in cut for p in chunk] == parts
    assert max(len(c) for c in cut) == tasks.CHUNK_MAX
    assert [len(c) for c in tasks.chunks(parts[:3])] == [1, 1, 1]  # a few partitions: one task each
    assert [len(c) for c in tasks.chunks(parts[:16])] == [4, 4, 4, 4]


async def test_every_partition_of_a_chunked_run_reports_start_and_end_in_few_messages(installed, use_home):
    use_home(installed("minimal_app"))
    env = AgiEnv("minimal_app", verbose=0)
    workers = {"127.0.0.1": 2}
    bus = EventBus()
    n = 400  # 200 per slot: chunks of 50
    try:
        started = time.time()
        result = await AGI.run(env, RunRequest(params={"partitions": n, "size": 10}, workers=workers,
                                               mode=AGI.DASK_MODE, verbose=0), events=bus)
        cluster, how = await cluster_pool.acquire(env, worker_python(env), workers, scheduler=None, cython_path=None,
                                                  bus=EventBus())
        assert how == "reused"
        messages = [msg for stamp, msg in await cluster.client.get_events(tasks.PROGRESS_TOPIC) if stamp >= started]
    finally:
        await AGI.shutdown()
    assert result.rows == n
    states = _states(bus)
    assert sorted(states) == sorted(p.label for p in result.partitions)
    assert all(s == ["started", "done"] for s in states.values()), states
    done = [e for e in bus.history if isinstance(e, PartitionEvent) and e.state == "done"]
    assert {e.worker for e in done} == {"127.0.0.1-0", "127.0.0.1-1"}
    records = [record for msg in messages for record in msg]
    assert len(records) == 2 * n  # a start and an end per partition, each sent once
    assert len(messages) < n / 4  # batched: not a message per record


async def test_a_partition_failing_inside_a_chunk_is_named_and_ends_its_chunk(installed, use_home):
    use_home(installed("faulty_app", modes_enabled=AGI.POOL_MODE | AGI.DASK_MODE, apps_path=FAULTY_APPS))
    env = AgiEnv("faulty_app", apps_path=FAULTY_APPS, verbose=0)
    bus = EventBus()
    request = RunRequest(params={"partitions": 16, "fail_on": 5, "seconds": 0.05}, workers=ONE_SLOT,
                         mode=AGI.DASK_MODE)  # chunks of 4: part-5 is the second of the second chunk
    try:
        with pytest.raises(RunError) as info:
            await AGI.run(env, request, events=bus, keep_cluster=True)
    finally:
        await AGI.shutdown()
    assert info.value.partition == "part-5" and info.value.worker == "127.0.0.1-0"
    assert "part-5" in str(info.value) and "was told to fail" in str(info.value)
    states = _states(bus)
    assert all(states[f"part-{i}"] == ["started", "done"] for i in range(5))
    assert states["part-5"] == ["started", "failed"]
    assert "part-6" not in states and "part-7" not in states  # the rest of its chunk never started


@pytest.mark.timeout(120)
async def test_a_worker_dying_inside_a_chunk_is_blamed_on_the_partition_it_ran(installed, use_home, live_children):
    use_home(installed("faulty_app", modes_enabled=AGI.POOL_MODE | AGI.DASK_MODE, apps_path=FAULTY_APPS))
    env = AgiEnv("faulty_app", apps_path=FAULTY_APPS, verbose=0)
    before = live_children()
    request = RunRequest(params={"partitions": 16, "die_on": 6, "seconds": 0.3}, workers=ONE_SLOT,
                         mode=AGI.DASK_MODE)  # part-6 is the third of the second chunk, and outlasts a flush
    try:
        with pytest.raises(RunError) as info:
            await AGI.run(env, request, events=EventBus())
    finally:
        await AGI.shutdown()
    assert info.value.partition == "part-6" and info.value.worker == "127.0.0.1-0"
    assert "died" in str(info.value) and "part-6" in str(info.value)
    assert live_children() - before == set()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", [AGI.DASK_MODE, AGI.DASK_MODE | AGI.POOL_MODE], ids=["chunks", "pool"])
async def test_a_slot_stops_its_app_worker_once_as_its_last_task_ends(installed, use_home, tmp_path, mode):
    """The tasks of a slot share one app worker per run; it stops as the slot's last task ends, so before
    the reduce (no round trip to the workers after the run's result)."""
    use_home(installed("faulty_app", modes_enabled=AGI.POOL_MODE | AGI.DASK_MODE, apps_path=FAULTY_APPS))
    env = AgiEnv("faulty_app", apps_path=FAULTY_APPS, verbose=0)
    log = tmp_path / "stops.txt"
    request = RunRequest(params={"partitions": 16, "stop_log": str(log)}, workers={"127.0.0.1": 2}, mode=mode)
    try:  # in chunks: 8 partitions per slot, 4 tasks of 2
        result = await AGI.run(env, request, events=EventBus())
    finally:
        await AGI.shutdown()
    assert result.ok and result.rows == 16
    stops = log.read_text().split()
    assert sorted(stops[:2]) == ["127.0.0.1-0", "127.0.0.1-1"] and stops[2:] == ["reduce"], stops


async def test_a_failed_run_stops_the_app_worker_its_slot_left(installed, use_home, tmp_path):
    """A run that fails with nothing left running keeps its cluster: the app worker of the failed task is
    stopped at the end of the run (a run that leaves tasks running ends its workers instead)."""
    use_home(installed("faulty_app", modes_enabled=AGI.POOL_MODE | AGI.DASK_MODE, apps_path=FAULTY_APPS))
    env = AgiEnv("faulty_app", apps_path=FAULTY_APPS, verbose=0)
    log = tmp_path / "stops.txt"
    request = RunRequest(params={"partitions": 1, "fail_on": 0, "stop_log": str(log)}, workers=ONE_SLOT,
                         mode=AGI.DASK_MODE)  # the slot's only task fails: it never ends well
    try:
        with pytest.raises(RunError, match="part-0"):
            await AGI.run(env, request, events=EventBus(), keep_cluster=True)
        assert log.read_text().split() == ["127.0.0.1-0"]  # stopped as the run ended (no reduce ran)
    finally:
        await AGI.shutdown()
