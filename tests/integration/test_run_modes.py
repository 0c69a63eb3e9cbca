"""Real runs: worker environments, subprocesses and Dask clusters, in every mode."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import psutil
import pytest

from agilab_panel import AGI, AgiEnv, EventBus, RunRequest
from agilab_panel.events import PartitionEvent, WorkerEvent
from agilab_panel.execute.result import RunError

pytestmark = pytest.mark.integration
FAULTY_APPS = Path(__file__).parent / "apps"
WORKERS = {"127.0.0.1": 2}


def _request(mode, **params) -> RunRequest:
    return RunRequest(params=params, workers=WORKERS, mode=mode, verbose=0)


async def test_minimal_app_gives_the_same_output_in_every_mode(installed, use_home):
    use_home(installed("minimal_app"))
    env = AgiEnv("minimal_app", verbose=0)
    frames = {}
    try:
        for mode in range(8):
            result = await AGI.run(env, _request(mode, partitions=5, size=3000), events=EventBus())
            assert result.ok and result.rows == 5, result.to_dict()
            frames[mode] = pd.read_parquet(result.output)
    finally:
        await AGI.shutdown()
    reference = frames.pop(0)
    assert reference["sum_squares"].map(int).tolist() == [sum(i * i for i in range(s, s + 3000)) for s in range(0, 15000, 3000)]
    for mode, frame in frames.items():
        pd.testing.assert_frame_equal(frame, reference, obj=f"mode {mode}")


async def test_rapids_without_a_gpu_is_an_error_naming_the_host(installed, use_home):
    use_home(installed("minimal_app"))
    env = AgiEnv("minimal_app", verbose=0)
    with pytest.raises(RunError) as info:
        await AGI.run(env, _request(AGI.RAPIDS_MODE, partitions=2, size=10), events=EventBus())
    assert socket.gethostname() in str(info.value) and "cuDF" in str(info.value)


async def test_cluster_run_streams_partition_progress_per_worker_slot(installed, use_home):
    use_home(installed("minimal_app"))
    env = AgiEnv("minimal_app", verbose=0)
    bus = EventBus()
    try:
        result = await AGI.run(env, _request(AGI.DASK_MODE, partitions=6, size=2000), events=bus)
    finally:
        await AGI.shutdown()
    events = [e for e in bus.history if isinstance(e, PartitionEvent)]
    for label in (p.label for p in result.partitions):
        states = [e.state for e in events if e.label == label]
        assert states == ["started", "done"], (label, states)
    assert {e.worker for e in events} == {"127.0.0.1-0", "127.0.0.1-1"}
    assert result.cluster == "started" and result.nodes == 1


async def test_an_edited_plan_is_honoured_by_cluster_runs_until_args_change(installed, use_home):
    use_home(installed("minimal_app"))
    env = AgiEnv("minimal_app", verbose=0)
    plan = await AGI.get_distrib(env, workers=WORKERS, events=EventBus(), partitions=4, size=1000)
    assert set(plan.assignment.values()) == {"127.0.0.1-0", "127.0.0.1-1"}
    for p in plan.partitions:
        plan.reassign(p.label, "127.0.0.1-1")
    AGI.save_plan(env, plan)
    try:
        result = await AGI.run(env, _request(AGI.DASK_MODE, partitions=4, size=1000), events=EventBus())
        assert result.plan_source == "saved" and "edited" in result.plan_note
        assert {p.worker for p in result.partitions} == {"127.0.0.1-1"}
        rebuilt = await AGI.run(env, _request(AGI.DASK_MODE, partitions=4, size=1001), events=EventBus())
    finally:
        await AGI.shutdown()
    assert rebuilt.plan_source == "rebuilt" and "size" in rebuilt.plan_note
    assert {p.worker for p in rebuilt.partitions} == {"127.0.0.1-0", "127.0.0.1-1"}


async def test_a_warm_cluster_is_reused_and_stopped_when_not_kept(installed, use_home, live_children):
    use_home(installed("minimal_app"))
    env = AgiEnv("minimal_app", verbose=0)
    before = live_children()
    first = await AGI.run(env, _request(AGI.DASK_MODE, partitions=2, size=10), events=EventBus())
    second = await AGI.run(env, _request(AGI.DASK_MODE, partitions=2, size=10), events=EventBus(), keep_cluster=False)
    assert (first.cluster, second.cluster) == ("started", "reused")
    assert live_children() - before == set()


@pytest.mark.parametrize("mode, processes", [(0, 1), (AGI.POOL_MODE, 2), (AGI.DASK_MODE, 2)])
async def test_partitions_run_in_the_processes_the_mode_promises(installed, use_home, live_children, mode, processes):
    """The pids come from the app's own code: mode 0 is one process, pool and Dask one per slot."""
    use_home(installed("faulty_app", modes_enabled=AGI.POOL_MODE | AGI.DASK_MODE, apps_path=FAULTY_APPS))
    env = AgiEnv("faulty_app", apps_path=FAULTY_APPS, verbose=0)
    bus = EventBus()
    try:
        result = await AGI.run(env, _request(mode, partitions=6, seconds=0.2), events=bus)
    finally:
        await AGI.shutdown()
    frame = pd.read_parquet(result.output)
    assert frame["index"].tolist() == list(range(6))
    pids = set(frame["pid"])
    assert len(pids) == processes and os.getpid() not in pids
    done = {e.label: e.worker for e in bus.history if isinstance(e, PartitionEvent) and e.state == "done"}
    assert len(done) == 6 and len(set(done.values())) == processes  # the progress names as many workers
    if mode == AGI.POOL_MODE:  # a pool worker is named after its process
        assert {f"pool-{pid}" for pid in pids} == set(done.values())


@pytest.mark.parametrize("mode, worker", [(0, "local"), (AGI.DASK_MODE, "127.0.0.1-")])
async def test_a_failing_partition_names_partition_and_worker(installed, use_home, live_children, mode, worker):
    use_home(installed("faulty_app", modes_enabled=AGI.POOL_MODE | AGI.DASK_MODE, apps_path=FAULTY_APPS))
    env = AgiEnv("faulty_app", apps_path=FAULTY_APPS, verbose=0)
    before = live_children()
    with pytest.raises(RunError) as info:
        await AGI.run(env, _request(mode, fail_on=2), events=EventBus(), keep_cluster=False)
    assert info.value.partition == "part-2" and info.value.worker.startswith(worker)
    assert "part-2" in str(info.value) and "was told to fail" in str(info.value)
    assert live_children() - before == set()


@pytest.mark.timeout(120)
async def test_a_dying_worker_ends_the_run_and_leaves_no_process(installed, use_home, live_children):
    use_home(installed("faulty_app", modes_enabled=AGI.POOL_MODE | AGI.DASK_MODE, apps_path=FAULTY_APPS))
    env = AgiEnv("faulty_app", apps_path=FAULTY_APPS, verbose=0)
    before = live_children()
    with pytest.raises(RunError) as info:
        await AGI.run(env, _request(AGI.DASK_MODE, die_on=3, seconds=0.2), events=EventBus())
    assert info.value.worker.startswith("127.0.0.1-")
    assert info.value.partition == "part-3" and "part-3" in str(info.value)
    assert live_children() - before == set()  # a broken cluster is never kept
    await AGI.shutdown()


async def test_benchmark_writes_a_table_per_mode(installed, use_home):
    use_home(installed("minimal_app"))
    env = AgiEnv("minimal_app", verbose=0)
    try:
        result = await AGI.run(env, _request([0, AGI.POOL_MODE, AGI.DASK_MODE], partitions=4, size=5000), events=EventBus())
    finally:
        await AGI.shutdown()
    saved = json.loads(env.benchmark_path.read_text())["modes"]
    assert set(saved) == {"0", "1", "4"}
    assert sorted(row["order"] for row in saved.values()) == [1, 2, 3]
    assert min(row["delta_pct"] for row in saved.values()) == 0.0
    assert saved["4"]["nodes"] == 1 and saved["4"]["workers"] == 2
    assert result.table == saved


def test_cli_run_prints_json_and_stops_the_cluster_it_started(installed, use_home):
    dirs = installed("minimal_app")
    use_home(dirs)
    env = {**os.environ, **{k: str(v) for k, v in dirs.items()}}
    proc = subprocess.run(
        [sys.executable, "-m", "agilab_panel.cli", "run", "--app", "minimal_app", "--mode", "dp", "--json",
         "--workers", json.dumps(WORKERS), "--set", "partitions=3", "--set", "size=100"],
        capture_output=True, text=True, env=env, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["mode"] == 5 and data["rows"] == 3 and data["cluster"] == "started"
    home = str(dirs["AGILAB_HOME"].parent)
    leftovers = [p for p in psutil.process_iter(["cmdline"]) if home in " ".join(p.info["cmdline"] or [])]
    assert leftovers == []


def test_cli_failure_is_one_line_and_non_zero(installed, use_home):
    dirs = installed("minimal_app")
    env = {**os.environ, **{k: str(v) for k, v in dirs.items()}}
    proc = subprocess.run([sys.executable, "-m", "agilab_panel.cli", "run", "--app", "minimal_app", "--set", "bogus=1"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0 and "bogus" in proc.stderr


async def test_one_warm_cluster_per_app_a_new_worker_map_replaces_it(installed, use_home, live_children):
    use_home(installed("minimal_app"))
    env = AgiEnv("minimal_app", verbose=0)
    before = live_children()
    try:
        await AGI.run(env, RunRequest(params={"partitions": 2}, workers={"127.0.0.1": 2}, mode=4), events=EventBus())
        two = live_children() - before
        result = await AGI.run(env, RunRequest(params={"partitions": 2}, workers={"127.0.0.1": 1}, mode=4),
                               events=EventBus())
        one = live_children() - before
        assert result.cluster == "started" and len(two) == 2 and len(one) == 1 and not (one & two)
    finally:
        await AGI.shutdown()


async def test_a_cluster_run_streams_worker_heartbeats(installed, use_home):
    use_home(installed("faulty_app", modes_enabled=AGI.POOL_MODE | AGI.DASK_MODE, apps_path=FAULTY_APPS))
    env = AgiEnv("faulty_app", apps_path=FAULTY_APPS, verbose=0)
    bus = EventBus()
    try:
        await AGI.run(env, _request(AGI.DASK_MODE, partitions=4, seconds=1.0), events=bus)
    finally:
        await AGI.shutdown()
    beats = [e for e in bus.history if isinstance(e, WorkerEvent) and e.state == "heartbeat"]
    assert {e.worker for e in beats} == {"127.0.0.1-0", "127.0.0.1-1"}
    assert all(0 <= e.age < 10 for e in beats)
