"""Service mode on a real Dask cluster with real processes: start, start twice, submit, a worker killed
with SIGKILL while it processes a task, stop while tasks run, and what a stopped service refuses."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pandas as pd
import psutil
import pytest

from agilab_panel import AGI, AgiEnv
from agilab_panel.fsutil import atomic_write_text
from agilab_panel.service import queue as q
from agilab_panel.service.gate import evaluate_gate
from agilab_panel.service.heartbeat import read_heartbeats
from agilab_panel.service.state import read_state
from agilab_panel.settings import UnknownArgumentError

pytestmark = pytest.mark.integration
FAULTY_APPS = Path(__file__).parent.parent / "integration" / "apps"
WORKERS = {"127.0.0.1": 2}
SLOTS = ["127.0.0.1-0", "127.0.0.1-1"]


def service_processes(cluster_dir: str) -> list[int]:
    """Live processes (zombies aside) whose command line names the service's cluster folder."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and cluster_dir in " ".join(proc.info["cmdline"] or []):
            found.append(proc.info["pid"])
    return found


async def until(check, what: str, within: float = 120.0):  # noqa: ANN001, ANN201
    """Wait for ``check`` to hold (a guard against hanging, not a timing claim)."""
    deadline = time.monotonic() + within
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.02)
    return value


async def submit_and_kill_a_busy_worker(env: AgiEnv, heartbeat_timeout: float,
                                        seconds: float) -> tuple[q.ServicePaths, str, dict]:
    """Start the service, submit two tasks of ``seconds`` each and SIGKILL the worker process of a loop while it
    processes one; returns the queue's paths, the submission and that loop's heartbeat, once the worker is gone."""
    paths = q.ServicePaths.of(env.share, env.app)
    await AGI.serve(env, "start", workers=WORKERS, heartbeat_timeout=heartbeat_timeout)
    submission = await AGI.submit(env, partitions=2, seconds=seconds)
    beat = await until(lambda: next((b for b in read_heartbeats(paths.heartbeats).values()
                                     if b["state"] == "processing" and b["task"]), None), "a task processing")
    pid = beat["pid"]
    os.kill(pid, signal.SIGKILL)
    await until(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
                "the worker gone")
    return paths, submission, beat


async def _service(env: AgiEnv) -> AsyncIterator[AgiEnv]:
    paths = q.ServicePaths.of(env.share, env.app)
    assert read_state(paths) is None, "a service of an earlier test is still running"
    shutil.rmtree(paths.root, ignore_errors=True)  # the shared install's share: start from an empty queue
    yield env
    state = read_state(paths)
    if state is not None:
        await AGI.serve(env, "stop", stop_timeout=5)
        assert service_processes(state.cluster_dir) == []


@pytest.fixture
async def minimal(installed, use_home) -> AsyncIterator[AgiEnv]:
    use_home(installed("minimal_app"))
    async for env in _service(AgiEnv("minimal_app", verbose=0)):
        yield env


@pytest.fixture
async def faulty(installed, use_home) -> AsyncIterator[AgiEnv]:
    use_home(installed("faulty_app", modes_enabled=AGI.POOL_MODE | AGI.DASK_MODE, apps_path=FAULTY_APPS))
    async for env in _service(AgiEnv("faulty_app", apps_path=FAULTY_APPS, verbose=0)):
        yield env


async def test_start_submit_status_start_again_and_stop_leave_nothing(minimal: AgiEnv) -> None:
    env = minimal
    paths = q.ServicePaths.of(env.share, env.app)
    started = await AGI.serve(env, "start", workers=WORKERS)
    assert started["started"] is True and started["status"] == "running", started["message"]
    state = read_state(paths)
    pids = {state.scheduler_pid, *(s.pid for s in state.slots.values())}
    assert len(pids) == 3 and set(service_processes(state.cluster_dir)) == pids
    assert [r["healthy"] for r in started["health"]["worker_health"]] == [True, True]
    assert json.loads(paths.health_file.read_text())["status"] == "running"

    again = await AGI.serve(env, "start", workers=WORKERS)
    assert again["started"] is False and "already running" in again["message"]
    assert read_state(paths).scheduler == state.scheduler and set(service_processes(state.cluster_dir)) == pids

    atomic_write_text(paths.pending / "0-corrupt.00000.json", "{ not a task")
    submission = await AGI.submit(env, partitions=4, size=100)
    record = await AGI.wait_submission(env, submission, timeout=120)
    assert record["status"] == "done" and len(record["tasks"]) == 2
    frame = pd.read_parquet(record["output"])
    assert frame["sum_squares"].map(int).tolist() == [sum(i * i for i in range(s, s + 100)) for s in range(0, 400, 100)]
    assert AGI.last_output(env) == Path(record["output"])
    workers_used = {json.loads((paths.done / f"{t}.json").read_text())["pid"] for t in record["tasks"]}
    assert workers_used <= pids - {state.scheduler_pid}
    corrupt = json.loads(await until(lambda: (paths.failed / "0-corrupt.00000.json").exists()
                                     and (paths.failed / "0-corrupt.00000.json").read_text(), "corrupt task failed"))
    assert corrupt["error"].startswith("corrupt task file: JSONDecodeError")

    with pytest.raises(UnknownArgumentError, match="'sizes'"):
        await AGI.submit(env, partitions=2, sizes=3)
    assert q.counts(paths) == {"pending": 0, "running": 0, "done": 2, "failed": 1}
    assert len(q.task_files(paths.submissions)) == 1

    status = await AGI.serve(env, "status")
    assert status["status"] == "running" and status["health"]["workers_healthy"] == SLOTS
    assert {r["future_state"] for r in status["health"]["worker_health"]} == {"pending"}  # the loops still run

    stopped = await AGI.serve(env, "stop")
    assert stopped["status"] == "stopped" and stopped["not_stopped"] == {}, stopped["message"]
    assert service_processes(state.cluster_dir) == [] and read_state(paths) is None
    assert json.loads(paths.health_file.read_text())["status"] == "stopped"
    with pytest.raises(RuntimeError, match="no service is running for app minimal_app"):
        await AGI.submit(env, partitions=2)
    assert q.counts(paths)["pending"] == 0

    restarted = await AGI.serve(env, "start", workers=WORKERS)  # the stopped loops' heartbeats do not count
    assert restarted["started"] is True and restarted["status"] == "running", restarted["message"]
    record = await AGI.wait_submission(env, await AGI.submit(env, partitions=2, size=10), timeout=120)
    assert record["status"] == "done"
    assert (await AGI.serve(env, "stop"))["not_stopped"] == {}


async def test_a_worker_killed_while_it_processes_a_task_is_reported_restarted_and_its_task_rerun(faulty: AgiEnv) -> None:
    env = faulty
    paths, submission, beat = await submit_and_kill_a_busy_worker(env, heartbeat_timeout=60, seconds=3.0)
    victim, task, killed_pid = beat["worker"], beat["task"], beat["pid"]

    status = await AGI.serve(env, "status")
    health = status["health"]
    row = next(r for r in health["worker_health"] if r["worker"] == victim)
    assert not row["healthy"] and re.fullmatch(r"stale-heartbeat\(\d+\.\ds\)", row["reason"]), row
    assert health["workers_restarted"] == [victim] and health["restart_reasons"] == {victim: row["reason"]}
    assert status["status"] == "degraded" and health["restarts_in_window"] == 1

    state = read_state(paths)
    new_pid = state.slots[victim].pid
    assert new_pid != killed_pid and psutil.pid_exists(new_pid) and state.slots[victim].incarnation == 2
    record = await AGI.wait_submission(env, submission, timeout=120)
    assert record["status"] == "done"
    rerun = json.loads((paths.done / f"{task}.json").read_text())
    assert rerun["attempts"] == 1 and rerun["interruptions"][0]["reason"] == row["reason"]
    counts = q.counts(paths)
    assert counts["done"] + counts["failed"] == len(record["tasks"]) == 2 and counts["failed"] == 0

    healthy = await AGI.serve(env, "health")
    assert healthy["workers_unhealthy_count"] == 0 and healthy["restart_rate"] == 0.5  # 1 restart, 2 slots
    gate = evaluate_gate(healthy, allow_idle=False, max_unhealthy=0, max_restart_rate=0.25)
    assert gate.code == 5
    stopped = await AGI.serve(env, "stop")
    assert stopped["not_stopped"] == {} and service_processes(state.cluster_dir) == []


async def test_a_dead_worker_the_scheduler_still_lists_is_reported_and_replaced_under_its_name(faulty: AgiEnv) -> None:
    """The worker's process is gone but its connection is not closed (a child holds its sockets): the scheduler
    lists it for minutes. Status judges it by its process, takes it off the scheduler, and its slot's new worker
    joins under the slot's name."""
    from distributed import Client

    def keep_connections_open() -> int:  # defined here: sent to the worker by value
        """A forked child that holds the worker's sockets, so they stay open after the worker dies."""
        pid = os.fork()
        if pid == 0:  # the child only sleeps: it takes no lock the parent's threads may have held
            time.sleep(600)
            os._exit(0)
        return pid

    env = faulty
    paths = q.ServicePaths.of(env.share, env.app)
    await AGI.serve(env, "start", workers=WORKERS, heartbeat_timeout=60)
    state = read_state(paths)
    victim = SLOTS[0]
    old = state.slots[victim]
    async with Client(state.scheduler, asynchronous=True) as client:
        holder = (await client.run(keep_connections_open, workers=[old.address]))[old.address]
    try:
        os.kill(old.pid, signal.SIGKILL)
        await until(lambda: not psutil.pid_exists(old.pid) or psutil.Process(old.pid).status() == psutil.STATUS_ZOMBIE,
                    "the worker gone")
        async with Client(state.scheduler, asynchronous=True) as client:
            listed = {w["name"]: a for a, w in (await client.scheduler.identity(n_workers=-1))["workers"].items()}
        assert listed[victim] == old.address  # the scheduler has not seen it go

        status = await AGI.serve(env, "status")
        row = next(r for r in status["health"]["worker_health"] if r["worker"] == victim)
        assert not row["healthy"] and row["reason"].startswith("stale-heartbeat"), row
        assert status["health"]["workers_restarted"] == [victim]
        new = read_state(paths).slots[victim]
        assert new.pid != old.pid and new.address != old.address and new.incarnation == old.incarnation + 1
        async with Client(state.scheduler, asynchronous=True) as client:
            listed = {w["name"]: a for a, w in (await client.scheduler.identity(n_workers=-1))["workers"].items()}
        assert listed[victim] == new.address
        record = await AGI.wait_submission(env, await AGI.submit(env, partitions=2, seconds=0.1), timeout=120)
        assert record["status"] == "done"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(holder, signal.SIGKILL)


async def test_stop_while_tasks_run_is_bounded_ends_every_process_and_requeues_them(faulty: AgiEnv) -> None:
    env = faulty
    paths = q.ServicePaths.of(env.share, env.app)
    await AGI.serve(env, "start", workers=WORKERS)
    state = read_state(paths)
    submission = await AGI.submit(env, partitions=2, seconds=600.0)
    await until(lambda: sum(b["state"] == "processing" for b in read_heartbeats(paths.heartbeats).values()) == 2,
                "both loops processing")
    stopped = await AGI.serve(env, "stop", stop_timeout=3)
    assert stopped["status"] == "stopped" and stopped["not_stopped"] == {}
    assert sorted(stopped["stopped"]) == sorted([*SLOTS, "scheduler"])
    assert service_processes(state.cluster_dir) == [] and read_state(paths) is None
    tasks = q.read_submission(paths, submission)["tasks"]
    assert stopped["requeued"] == {t: "pending" for t in tasks}
    assert q.counts(paths) == {"pending": 2, "running": 0, "done": 0, "failed": 0}
    for task in tasks:
        record = json.loads((paths.pending / f"{task}.json").read_text())
        assert record["attempts"] == 1 and record["interruptions"][0]["reason"] == "the service stopped while it ran"


async def test_waiting_on_a_submission_restarts_a_loop_that_died_meanwhile(faulty: AgiEnv) -> None:
    env = faulty
    paths, submission, beat = await submit_and_kill_a_busy_worker(env, heartbeat_timeout=2, seconds=1.0)
    record = await AGI.wait_submission(env, submission, timeout=120)  # no status called here: the wait does it
    assert record["status"] == "done"
    (restart,) = read_state(paths).restarts
    assert restart["worker"] == beat["worker"] and restart["reason"].startswith("stale-heartbeat(")
    assert json.loads((paths.done / f"{beat['task']}.json").read_text())["attempts"] == 1


async def test_a_service_on_a_scheduler_someone_else_started_leaves_its_processes_running(minimal: AgiEnv,
                                                                                          tmp_path: Path) -> None:
    from agilab_panel.install import worker_python

    env = minimal
    paths = q.ServicePaths.of(env.share, env.app)
    python = str(worker_python(env))
    sched_file = tmp_path / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([python, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(sched_file)], **quiet)]
    try:
        procs += [subprocess.Popen([python, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(sched_file),
                                    "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1", "--no-dashboard"], **quiet)
                  for _ in range(2)]
        await until(sched_file.exists, "the scheduler file")
        address = json.loads(sched_file.read_text())["address"].removeprefix("tcp://")
        started = await AGI.serve(env, "start", scheduler=address, workers=WORKERS)
        assert started["status"] == "running" and "(connected)" in started["message"], started["message"]
        assert read_state(paths).external is True
        record = await AGI.wait_submission(env, await AGI.submit(env, partitions=2, size=10), timeout=120)
        assert record["status"] == "done", record
        status = await AGI.serve(env, "status")
        assert status["status"] == "running" and status["health"]["workers_restarted"] == []
        stopped = await AGI.serve(env, "stop")
        assert stopped["status"] == "stopped" and "keep running" in stopped["message"]
        beats = read_heartbeats(paths.heartbeats)
        assert sorted(beats) == SLOTS and {b["state"] for b in beats.values()} == {"stopped"}
        assert all(p.poll() is None for p in procs)  # someone else's processes: never signalled
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


async def test_a_loop_that_dies_in_its_reduce_leaves_the_submission_to_status_which_closes_it(faulty: AgiEnv,
                                                                                             tmp_path: Path) -> None:
    env = faulty
    paths = q.ServicePaths.of(env.share, env.app)
    await AGI.serve(env, "start", workers=WORKERS, heartbeat_timeout=2)
    flag = tmp_path / "died-in-reduce"
    submission = await AGI.submit(env, partitions=2, die_in_reduce=str(flag))
    record = await AGI.wait_submission(env, submission, timeout=180)  # every task done: the wait's status closes it
    assert flag.exists(), "the loop that finished the last task did not die in the reduce"
    assert record["status"] == "done", record.get("errors")
    assert pd.read_parquet(record["output"])["index"].map(int).tolist() == [0, 1]
    (restart,) = read_state(paths).restarts  # the dead loop was restarted by the same status
    assert q.counts(paths) == {"pending": 0, "running": 0, "done": 2, "failed": 0}
    assert q.unfinished_submissions(paths) == [] and not (paths.results / submission).exists()
    status = await AGI.serve(env, "status")
    assert status["closed_submissions"] == {} and q.read_submission(paths, submission) == record  # closed once
    assert (await AGI.serve(env, "stop"))["not_stopped"] == {}
