"""Clusters someone else runs, and clusters kept across command-line processes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psutil
import pytest

from agilab_panel import AGI, AgiEnv, EventBus, RunRequest
from agilab_panel.install import worker_python

pytestmark = pytest.mark.integration
WORKERS = {"127.0.0.1": 2}


def _cli(dirs, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **{k: str(v) for k, v in dirs.items()}}
    return subprocess.run([sys.executable, "-m", "agilab_panel.cli", *args], capture_output=True, text=True, env=env,
                          timeout=180)


def _processes_under(path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if str(path) in " ".join(proc.info["cmdline"] or []) and proc.status() != psutil.STATUS_ZOMBIE:
            found.append(proc)
    return found


def test_a_kept_cluster_is_found_by_the_next_command_and_stopped_on_request(installed, use_home):
    dirs = installed("minimal_app")
    use_home(dirs)
    common = ["--app", "minimal_app", "--mode", "4", "--json", "--workers", json.dumps(WORKERS), "--set", "size=50"]
    first = _cli(dirs, "run", *common, "--keep-cluster")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["cluster"] == "started"
    kept = _processes_under(dirs["AGILAB_LOG_ABS"])
    assert len(kept) == 3  # scheduler + 2 workers outlive the command
    second = _cli(dirs, "run", *common)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["cluster"] == "reused"
    assert all(p.is_running() for p in kept)  # the second command did not start them, so it leaves them
    stopped = _cli(dirs, "cluster", "stop", "--app", "minimal_app", "--json")
    assert stopped.returncode == 0, stopped.stderr
    assert sorted(json.loads(stopped.stdout)["stopped"]) == sorted(p.pid for p in kept)
    assert _processes_under(dirs["AGILAB_LOG_ABS"]) == []


async def test_runs_on_a_scheduler_someone_else_started_and_leaves_it_running(installed, use_home, tmp_path):
    dirs = installed("minimal_app")
    use_home(dirs)
    env = AgiEnv("minimal_app", verbose=0)
    python = str(worker_python(env))
    sched_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([python, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(sched_file)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        procs += [subprocess.Popen([python, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(sched_file),
                                    "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1", "--no-dashboard"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
        for _ in range(300):
            if sched_file.exists():
                break
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"].removeprefix("tcp://")
        request = RunRequest(params={"partitions": 4, "size": 100}, scheduler=address, workers=WORKERS, mode=4)
        result = await AGI.run(env, request, events=EventBus())
        await AGI.shutdown()
        assert result.cluster == "connected" and result.rows == 4
        assert {p.worker for p in result.partitions} == {"127.0.0.1-0", "127.0.0.1-1"}
        assert all(p.poll() is None for p in procs)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
