"""An app preparing its inputs: a cancel stops it, and two prepares of the same inputs take turns."""
from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path

import pytest

from agilab_panel import AGI, AgiEnv, EventBus, RunRequest
from agilab_panel.distrib import prepare_inputs, resolve_inputs
from agilab_panel.prepare import THREAD_PREFIX, prepare_lock_path
from proctable import until

pytestmark = pytest.mark.integration
FAULTY_APPS = Path(__file__).parent / "apps"
WORKERS = {"127.0.0.1": 1}


def _inputs(folder: Path) -> list[Path]:
    return sorted(folder.glob("input-*.txt"))



def _prepare_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


@pytest.mark.parametrize("verb", ["distribute", "run"])
async def test_cancelling_stops_the_app_preparing_its_inputs(installed, use_home, verb):
    if verb == "run":
        use_home(installed("faulty_app", modes_enabled=AGI.POOL_MODE | AGI.DASK_MODE, apps_path=FAULTY_APPS))
    env = AgiEnv("faulty_app", apps_path=FAULTY_APPS, verbose=0)
    data_in = env.share / "faulty_app" / "data_in"
    params = {"partitions": 2, "prepare_files": 500, "prepare_seconds": 0.02}
    if verb == "distribute":
        call = AGI.get_distrib(env, workers=WORKERS, events=EventBus(), **params)
    else:
        call = AGI.run(env, RunRequest(params=params, workers=WORKERS, mode=0), events=EventBus())
    task = asyncio.create_task(call)
    try:
        assert await until(lambda: len(_inputs(data_in)) >= 3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert _prepare_threads() == []  # the generating thread has ended: nothing writes any more
        written = _inputs(data_in)
        await asyncio.sleep(25 * params["prepare_seconds"])
        assert _inputs(data_in) == written and len(written) < params["prepare_files"]
        assert not (data_in / "manifest.txt").exists()
    finally:
        await AGI.shutdown()


async def test_two_prepares_of_the_same_inputs_take_turns(agilab_dirs):
    env = AgiEnv("faulty_app", apps_path=FAULTY_APPS, verbose=0)
    data_in = env.share / "faulty_app" / "data_in"
    first_bus, second_bus = EventBus(), EventBus()
    first = asyncio.create_task(AGI.get_distrib(env, workers=WORKERS, events=first_bus, save=False,
                                                partitions=2, prepare_files=30, prepare_seconds=0.02))
    assert await until(lambda: len(_inputs(data_in)) >= 2)
    # other args: this prepare removes the inputs of the first before writing its own
    second = asyncio.create_task(AGI.get_distrib(env, workers=WORKERS, events=second_bus, save=False,
                                                 partitions=3, prepare_files=10, prepare_seconds=0.0))
    plans = await asyncio.gather(first, second)  # each plan checks that every input is of its own args
    assert [len(plan.partitions) for plan in plans] == [2, 3]
    assert any("another prepare" in line.text for line in second_bus.logs())
    assert (data_in / "manifest.txt").read_text() == "10 files, 0.0 s each"
    assert len(_inputs(data_in)) == 10


async def test_cancelling_a_service_submission_stops_the_app_preparing_its_inputs(installed, use_home):
    from agilab_panel.service import queue as q
    from agilab_panel.service.state import read_state

    use_home(installed("faulty_app", modes_enabled=AGI.POOL_MODE | AGI.DASK_MODE, apps_path=FAULTY_APPS))
    env = AgiEnv("faulty_app", apps_path=FAULTY_APPS, verbose=0)
    data_in = env.share / "faulty_app" / "data_in"
    params = {"partitions": 2, "prepare_files": 500, "prepare_seconds": 0.02}
    workers = {"127.0.0.1": 2}
    assert read_state(q.ServicePaths.of(env.share, env.app)) is None
    started = await AGI.serve(env, "start", workers=workers)
    assert started["started"] is True, started["message"]
    try:
        # a saved plan for these args, whose inputs are then lost: the submission prepares them again
        await AGI.get_distrib(env, workers=workers, events=EventBus(), **params)
        shutil.rmtree(data_in)
        task = asyncio.create_task(AGI.submit(env, events=EventBus(), **params))
        assert await until(lambda: len(_inputs(data_in)) >= 3 and not (data_in / "manifest.txt").exists())
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert _prepare_threads() == []
        written = _inputs(data_in)
        await asyncio.sleep(25 * params["prepare_seconds"])
        assert _inputs(data_in) == written and len(written) < params["prepare_files"]
    finally:
        await AGI.serve(env, "stop", stop_timeout=5)



@pytest.mark.parametrize(("app", "apps_path", "prepares"), [("minimal_app", None, False), ("faulty_app", FAULTY_APPS, True)])
async def test_only_an_app_with_a_prepare_takes_the_inputs_lock_before_a_run(agilab_dirs, monkeypatch, app, apps_path,
                                                                             prepares):
    """A run from a saved plan prepares the inputs first: an app without a ``prepare`` of its own has
    nothing to prepare, so no thread starts and no lock is taken (its runs pay neither)."""
    env = AgiEnv(app, apps_path=apps_path, verbose=0)
    inputs = resolve_inputs(env, {}, WORKERS)
    lock = prepare_lock_path(inputs.data_in)
    started: list[str] = []
    start = threading.Thread.start
    with monkeypatch.context() as patch:
        patch.setattr(threading.Thread, "start", lambda thread: (started.append(thread.name), start(thread))[1])
        await prepare_inputs(env, inputs)
    assert lock.exists() == prepares
    assert any(name.startswith(THREAD_PREFIX) for name in started) == prepares
