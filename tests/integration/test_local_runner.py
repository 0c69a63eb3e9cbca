"""The warm local runner: forks per job, never runs stale code, and cancelled runs leave nothing."""
from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pandas as pd
import psutil
import pytest

from agilab_panel import AGI, AgiEnv, EventBus, RunRequest
from agilab_panel.events import PartitionEvent

pytestmark = pytest.mark.integration
FAULTY_APPS = Path(__file__).parent / "apps"


@pytest.fixture(scope="module")
def app_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("apps")
    shutil.copytree(Path(__file__).parent / "apps" / "faulty_app", root / "faulty_app",
                    ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    return root


async def test_the_warm_runner_restarts_when_the_app_code_changes(installed, use_home, app_copy):
    use_home(installed("faulty_app", modes_enabled=AGI.POOL_MODE, apps_path=app_copy))
    env = AgiEnv("faulty_app", apps_path=app_copy, verbose=0)
    request = RunRequest(params={"partitions": 2}, workers={"127.0.0.1": 1}, mode=0, verbose=0)
    try:
        first = await AGI.run(env, request, events=EventBus())
        assert pd.read_parquet(first.output)["pid_free_value"].tolist() == [0, 10]
        worker = app_copy / "faulty_app" / "src" / "faulty_app" / "worker.py"
        worker.write_text(worker.read_text().replace('"pid_free_value": [index * 10]', '"pid_free_value": [index * 100]'))
        second = await AGI.run(env, request, events=EventBus())
        assert pd.read_parquet(second.output)["pid_free_value"].tolist() == [0, 100]
    finally:
        await AGI.shutdown()


async def test_a_cancelled_local_run_kills_its_process(installed, use_home, live_children):
    use_home(installed("faulty_app", modes_enabled=AGI.POOL_MODE | AGI.DASK_MODE, apps_path=FAULTY_APPS))
    env = AgiEnv("faulty_app", apps_path=FAULTY_APPS, verbose=0)
    bus = EventBus()
    request = RunRequest(params={"partitions": 2, "seconds": 30.0}, workers={"127.0.0.1": 1}, mode=0, verbose=0)
    try:
        await AGI.run(env, RunRequest(params={"partitions": 1}, workers={"127.0.0.1": 1}, mode=0), events=EventBus())
        warm = live_children()  # the warm runner stays; the job's own process must not
        task = asyncio.create_task(AGI.run(env, request, events=bus))
        for _ in range(200):
            if any(isinstance(e, PartitionEvent) and e.state == "started" for e in bus.history):
                break
            await asyncio.sleep(0.05)
        assert len(live_children() - warm) == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.2)
        assert live_children() - warm == set()
    finally:
        await AGI.shutdown()
    assert not [p for p in psutil.Process().children(recursive=True) if "zygote" in " ".join(p.cmdline())]


async def test_warm_starts_the_runner_of_an_installed_app_only(installed, use_home, live_children):
    assert await AGI.warm(AgiEnv("mandelbrot", verbose=0)) is False  # not installed in this home
    use_home(installed("minimal_app"))
    env = AgiEnv("minimal_app", verbose=0)
    before = live_children()
    try:
        assert await AGI.warm(env) is True
        runner = live_children() - before
        assert len(runner) == 1  # the warm runner, before any run
        await AGI.run(env, RunRequest(params={"partitions": 1}, workers={"127.0.0.1": 1}, mode=0), events=EventBus())
        assert runner <= live_children()  # the run forked from it: no second runner
        assert len(live_children() - before) == 1
    finally:
        await AGI.shutdown()
    assert live_children() - before == set()
