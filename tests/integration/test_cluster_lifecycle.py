"""Dask clusters leave nothing behind: no zombie under the engine, a bounded number of log folders,
and a cancelled run does not go on in the workers."""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from agilab_panel import AGI, AgiEnv, EventBus, RunRequest
from agilab_panel.events import PartitionEvent
from agilab_panel.execute.result import RunError
from agilab_panel.execute import rundirs
from proctable import running, until, zombies_below

pytestmark = pytest.mark.integration
FAULTY_APPS = Path(__file__).parent / "apps"

_HOLD_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""





def _started(bus: EventBus) -> list[str]:
    return [e.label for e in bus.history if isinstance(e, PartitionEvent) and e.state == "started"]


async def test_processes_that_end_on_their_own_are_not_left_zombies(installed, use_home):
    use_home(installed("minimal_app"))
    env = AgiEnv("minimal_app", verbose=0)
    me = psutil.Process()
    before = {p.pid for p in me.children()}
    old = {p.pid for p in me.children(recursive=True)}  # processes of earlier tests, not this engine's
    try:
        assert await AGI.warm(env)
        await AGI.run(env, RunRequest(params={"partitions": 2}, workers={"127.0.0.1": 2}, mode=AGI.DASK_MODE),
                      events=EventBus(), keep_cluster=True)
        kept = [p for p in me.children() if p.pid not in before]  # the warm runner and two Dask workers
        assert len(kept) == 3
        for proc in kept:  # an OOM kill, a crash: nobody asked them to stop
            proc.send_signal(signal.SIGKILL)
        assert await until(lambda: running({p.pid for p in kept}) == set())
        # collected: gone from the process table, not even a zombie (only the engine's own processes
        # are looked at: a process an earlier test left may end, or start a child, meanwhile)
        assert await until(lambda: _in_table(kept) == []), _in_table(kept)
    finally:
        await AGI.shutdown()
    assert _in_table(kept) == []
    assert [z for z in zombies_below(os.getpid()) if z.pid not in old and z.ppid() == os.getpid()] == []


def _in_table(procs: list[psutil.Process]) -> list[str]:
    """The processes of ``procs`` still in the process table, as "pid status"."""
    found = []
    for proc in procs:
        try:
            found.append(f"{proc.pid} {psutil.Process(proc.pid).status()}")
        except psutil.NoSuchProcess:
            pass
    return found


async def test_cluster_log_folders_are_bounded_and_kept_while_in_use(installed, use_home):
    use_home(installed("minimal_app"))
    env = AgiEnv("minimal_app", verbose=0)
    root = env.log_dir / "cluster"
    shutil.rmtree(root, ignore_errors=True)  # folders of earlier tests in this home
    old = [root / f"20000101-0000{i:02d}-aaaaaa" for i in range(25)]
    for folder in old:
        (folder / "work").mkdir(parents=True)
        (folder / "worker.log").write_text("an old run\n")
    held = old[0]  # the oldest, but a process (a cluster kept by another engine) still works in it
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(held / rundirs.IN_USE)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        await AGI.run(env, RunRequest(params={"partitions": 2}, workers={"127.0.0.1": 1}, mode=AGI.DASK_MODE),
                      events=EventBus(), keep_cluster=False)
    finally:
        await AGI.shutdown()
        holder.stdin.close()
        holder.wait()
    folders = sorted(p.name for p in root.iterdir())
    ours = [name for name in folders if not name.startswith("20000101")]
    assert len(ours) == 1 and len(folders) == rundirs.KEEP + 1  # the newest 20 (ours among them) and the held one
    assert held.name in folders and folders[1:] == sorted([ours[0], *(f.name for f in old[-(rundirs.KEEP - 1):])])
    assert (root / ours[0] / "127.0.0.1-0.log").is_file() and not (root / ours[0] / "work").exists()


async def test_a_cancelled_cluster_run_stops_the_partitions_its_workers_run(installed, use_home):
    use_home(installed("faulty_app", modes_enabled=AGI.POOL_MODE | AGI.DASK_MODE, apps_path=FAULTY_APPS))
    env = AgiEnv("faulty_app", apps_path=FAULTY_APPS, verbose=0)
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    bus = EventBus()
    request = RunRequest(params={"partitions": 2, "seconds": 120.0}, workers={"127.0.0.1": 2}, mode=AGI.DASK_MODE)
    task = asyncio.create_task(AGI.run(env, request, events=bus, keep_cluster=True))
    try:
        assert await until(lambda: len(_started(bus)) == 2)
        workers = {p.pid for p in me.children(recursive=True)} - before
        assert len(workers) == 2
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Dask cannot interrupt a running task: the workers running the cancelled partitions are stopped
        assert await until(lambda: running(workers) == set())
        assert zombies_below(os.getpid()) == []
    finally:
        await AGI.shutdown()


async def test_a_failed_cluster_run_does_not_leave_partitions_running_in_a_kept_cluster(installed, use_home):
    use_home(installed("faulty_app", modes_enabled=AGI.POOL_MODE | AGI.DASK_MODE, apps_path=FAULTY_APPS))
    env = AgiEnv("faulty_app", apps_path=FAULTY_APPS, verbose=0)
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    workers = {"127.0.0.1": 2}
    try:
        await AGI.run(env, RunRequest(params={"partitions": 2}, workers=workers, mode=AGI.DASK_MODE),
                      events=EventBus(), keep_cluster=True)
        warm = {p.pid for p in me.children(recursive=True)} - before
        assert len(warm) == 2
        failing = RunRequest(params={"partitions": 4, "fail_on": 0, "seconds": 120.0}, workers=workers,
                             mode=AGI.DASK_MODE)
        with pytest.raises(RunError) as info:
            await AGI.run(env, failing, events=EventBus(), keep_cluster=True)
        assert info.value.partition == "part-0"
        # the other worker was running a partition nobody waits for: that cluster is not kept
        assert await until(lambda: running(warm) == set())
        result = await AGI.run(env, RunRequest(params={"partitions": 2}, workers=workers, mode=AGI.DASK_MODE),
                               events=EventBus(), keep_cluster=True)
        assert result.cluster == "started" and result.rows == 2
    finally:
        await AGI.shutdown()


async def test_a_failed_partition_of_a_pooled_cluster_run_ends_its_task_at_once(installed, use_home):
    use_home(installed("faulty_app", modes_enabled=AGI.POOL_MODE | AGI.DASK_MODE, apps_path=FAULTY_APPS))
    env = AgiEnv("faulty_app", apps_path=FAULTY_APPS, verbose=0)
    bus = EventBus()
    request = RunRequest(params={"partitions": 4, "fail_on": 0, "seconds": 30.0}, workers={"127.0.0.1": 1},
                         mode=AGI.DASK_MODE | AGI.POOL_MODE)
    try:
        with pytest.raises(RunError) as info:
            await AGI.run(env, request, events=bus, keep_cluster=True)
    finally:
        await AGI.shutdown()
    assert info.value.partition == "part-0"
    assert _started(bus) == ["part-0"]  # the partitions queued behind it on the slot never started
