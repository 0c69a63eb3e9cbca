"""Local runs own their processes: a cancel, Ctrl-C or a killed engine leaves none behind, and a
worker that dies is named with its partition; results and log lines arrive whole, whatever their size."""
from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from agilab_panel import AGI, AgiEnv, EventBus, RunRequest
from agilab_panel.events import PartitionEvent
from agilab_panel.execute.result import RunError
from proctable import running, until, zombies_below

pytestmark = pytest.mark.integration
FAULTY_APPS = Path(__file__).parent / "apps"
MODES = AGI.POOL_MODE | AGI.DASK_MODE
SLOW = {"partitions": 4, "seconds": 120.0}
WORKERS = {"127.0.0.1": 2}


def _faulty_worker_module():
    path = FAULTY_APPS / "faulty_app" / "src" / "faulty_app" / "worker.py"
    spec = importlib.util.spec_from_file_location("faulty_worker", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


text_of = _faulty_worker_module().text_of





def _started(bus: EventBus) -> dict[str, str]:
    return {e.label: e.worker for e in bus.history if isinstance(e, PartitionEvent) and e.state == "started"}


def _env(installed, use_home) -> AgiEnv:
    use_home(installed("faulty_app", modes_enabled=MODES, apps_path=FAULTY_APPS))
    return AgiEnv("faulty_app", apps_path=FAULTY_APPS, verbose=0)


@pytest.mark.parametrize("warm", [True, False], ids=["warm-runner", "fresh-interpreter"])
async def test_a_cancelled_pool_run_ends_its_pool_processes(installed, use_home, warm):
    env = _env(installed, use_home)
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    bus = EventBus()
    task = asyncio.create_task(AGI.run(env, RunRequest(params=SLOW, workers=WORKERS, mode=AGI.POOL_MODE),
                                       events=bus, keep_cluster=warm))
    try:
        assert await until(lambda: len(_started(bus)) == 2)
        pool = {int(worker.removeprefix("pool-")) for worker in _started(bus).values()}
        kept = {p.pid for p in me.children()} - before if warm else set()  # the warm runner outlives runs
        run = {p.pid for p in me.children(recursive=True)} - before - kept
        assert len(pool) == 2 and pool < run  # the pool processes, and the run process above them
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await until(lambda: not running(run))
        assert zombies_below(os.getpid()) == []
        assert running(kept) == kept
    finally:
        await AGI.shutdown()


@pytest.mark.parametrize("how", ["ctrl-c", "SIGTERM", "SIGKILL"])
def test_a_cli_run_interrupted_or_killed_leaves_no_process(installed, use_home, how):
    dirs = installed("faulty_app", modes_enabled=MODES, apps_path=FAULTY_APPS)
    env = {**os.environ, **{k: str(v) for k, v in dirs.items()}}
    cmd = [sys.executable, "-m", "agilab_panel.cli", "run", "--app", "faulty_app", "--apps-path", str(FAULTY_APPS),
           "--mode", "p", "--workers", json.dumps(WORKERS), "--set", "partitions=4", "--set", "seconds=120"]
    # its own group, as a shell gives a foreground job: Ctrl-C signals that whole group
    cli = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, process_group=0)
    try:
        below: set[int] = set()
        for _ in range(2400):  # the warm runner, the run, and its two pool processes
            below = {p.pid for p in psutil.Process(cli.pid).children(recursive=True)}
            if len(below) >= 4 or cli.poll() is not None:
                break
            time.sleep(0.05)
        assert len(below) >= 4, cli.communicate(timeout=30)
        if how == "ctrl-c":
            os.killpg(cli.pid, signal.SIGINT)
        else:
            cli.send_signal(getattr(signal, how))
        _, err = cli.communicate(timeout=120)
        if how == "ctrl-c":
            assert cli.returncode == 130 and err.strip().splitlines()[-1] == "interrupted"
        for _ in range(2400):
            if not running(below):
                break
            time.sleep(0.05)
        assert running(below) == set()
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()


@pytest.mark.parametrize("mode", [0, AGI.POOL_MODE], ids=["mode-0", "pool"])
@pytest.mark.parametrize("die_signal, how", [(0, "exit code 17"), (signal.SIGKILL, "killed by SIGKILL")],
                         ids=["os._exit", "SIGKILL"])
async def test_a_local_worker_that_dies_is_named_with_its_partition(installed, use_home, mode, die_signal, how):
    env = _env(installed, use_home)
    bus = EventBus()
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    params = {"partitions": 4, "die_on": 2, "die_signal": int(die_signal), "seconds": 0.2}
    try:
        with pytest.raises(RunError) as info:
            await AGI.run(env, RunRequest(params=params, workers=WORKERS, mode=mode), events=bus)
        worker = _started(bus)["part-2"]  # "local" in mode 0, "pool-<pid>" in a process pool
        assert worker == "local" if mode == 0 else worker.startswith("pool-")
        assert info.value.partition == "part-2" and info.value.worker == worker
        assert f"worker {worker} died ({how}) while running partition part-2" in str(info.value)
        failed = [e for e in bus.history if isinstance(e, PartitionEvent) and e.state == "failed"]
        assert [(e.label, e.worker) for e in failed] == [("part-2", worker)]
        run = {p.pid for p in psutil.Process().children(recursive=True)} - before
        assert await until(lambda: len(running(run)) <= 1)  # at most the warm runner stays
    finally:
        await AGI.shutdown()


@pytest.mark.parametrize("mode", [0, AGI.POOL_MODE], ids=["mode-0", "pool"])
async def test_a_wide_result_and_a_100kb_line_arrive_whole(installed, use_home, mode):
    env = _env(installed, use_home)
    bus = EventBus()
    params = {"partitions": 2, "wide": 400, "print_chars": 100_000}
    try:
        result = await AGI.run(env, RunRequest(params=params, workers=WORKERS, mode=mode), events=bus)
    finally:
        await AGI.shutdown()
    assert len(result.columns) == 403 and result.columns[-1] == "extra_column_0399" and result.rows == 2
    printed = [e.text for e in bus.logs() if e.source == "run" and e.stream == "stdout"]
    assert printed.count(text_of(100_000)) == 2


@pytest.mark.parametrize("mode", [0, AGI.POOL_MODE], ids=["mode-0", "pool"])
async def test_an_error_message_of_any_length_and_alphabet_arrives_whole(installed, use_home, mode):
    env = _env(installed, use_home)
    message = text_of(100_000)
    try:
        with pytest.raises(RunError) as info:
            await AGI.run(env, RunRequest(params={"partitions": 3, "fail_on": 1, "message_chars": 100_000},
                                          workers=WORKERS, mode=mode), events=EventBus())
    finally:
        await AGI.shutdown()
    assert info.value.partition == "part-1"
    assert info.value.details.startswith(f"ValueError: {message}\n")
    assert str(info.value) == f"partition part-1 failed on worker {info.value.worker}: ValueError: {message}"


async def test_job_files_left_by_killed_runs_and_the_runner_log_stay_bounded(installed, use_home):
    env = _env(installed, use_home)
    await AGI.shutdown()  # the runner log is rotated when a runner starts
    jobs = env.user_app_dir / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    for left in [*jobs.glob("job-*.json"), *jobs.glob("event-*.json")]:  # by the killed engines of other tests
        left.unlink()
    for i in range(30):  # what runs killed with their engine leave
        for name in (f"job-stale{i:02d}-x.json", f"event-stale{i:02d}-x.json"):
            (jobs / name).write_text("{}")
            os.utime(jobs / name, (1_000_000 + i, 1_000_000 + i))
    (jobs / "runner.log").write_bytes(b"an old line\n" * 200_000)
    try:
        await AGI.run(env, RunRequest(params={"partitions": 2}, workers=WORKERS, mode=0), events=EventBus())
    finally:
        await AGI.shutdown()
    assert sorted(p.name for p in jobs.glob("job-*.json")) == [f"job-stale{i:02d}-x.json" for i in range(10, 30)]
    assert sorted(p.name for p in jobs.glob("event-*.json")) == [f"event-stale{i:02d}-x.json" for i in range(10, 30)]
    assert (jobs / "runner.log.1").stat().st_size == len(b"an old line\n") * 200_000
    assert b"an old line" not in (jobs / "runner.log").read_bytes()


@pytest.mark.parametrize("warm", [True, False], ids=["warm-runner", "fresh-interpreter"])
async def test_a_failed_pool_run_stops_the_partitions_still_running_or_waiting(installed, use_home, warm):
    env = _env(installed, use_home)
    bus = EventBus()
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    params = {"partitions": 6, "fail_on": 0, "seconds": 30.0}
    try:
        with pytest.raises(RunError) as info:
            await AGI.run(env, RunRequest(params=params, workers=WORKERS, mode=AGI.POOL_MODE), events=bus,
                          keep_cluster=warm)
        assert info.value.partition == "part-0"
        states = [(e.label, e.state) for e in bus.history if isinstance(e, PartitionEvent)]
        assert not [label for label, state in states if state == "done"]  # those running were stopped
        assert {label for label, state in states if state == "started"} <= {"part-0", "part-1", "part-2"}
        run = {p.pid for p in psutil.Process().children(recursive=True)} - before
        assert await until(lambda: len(running(run)) <= (1 if warm else 0))  # at most the warm runner
    finally:
        await AGI.shutdown()


async def test_a_launch_cancelled_before_its_reply_ends_the_run_it_asked_for(installed, use_home, tmp_path):
    """The warm runner forks the run after the request is sent; a caller cancelled before the reply
    never learns its pid, so the run must be ended for it (and the reply must not go to the next caller)."""
    from agilab_panel.distrib import resolve_inputs
    from agilab_panel.execute.common import make_job
    from agilab_panel.execute.local import _reader, warm_runner
    from agilab_panel.install import worker_python

    env = _env(installed, use_home)
    jobs = []
    for seconds in (120.0, 0.0):
        plan = await AGI.get_distrib(env, workers={"127.0.0.1": 1}, events=EventBus(), save=False,
                                     partitions=1, seconds=seconds)
        inputs = resolve_inputs(env, {"partitions": 1, "seconds": seconds}, {"127.0.0.1": 1})
        path = tmp_path / f"job-{len(jobs)}.json"
        path.write_text(make_job(env, plan, 0, inputs.data_in, inputs.data_out, None).to_json())
        jobs.append(str(path))
    try:
        zygote = await warm_runner(worker_python(env), env.spec.worker_ref, None, str(env.spec.src_path), tmp_path)
        pipes = [os.pipe() for _ in range(6)]
        slow = asyncio.create_task(zygote.launch(jobs[0], [w for _, w in pipes[:3]]))
        await asyncio.sleep(0)  # the request is sent; the reply has not been read
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        for _, w in pipes[:3]:
            os.close(w)
        # end of file on the cancelled run's stdout: every process that could write to it has ended
        stdout = await _reader(pipes[0][0])
        assert await asyncio.wait_for(stdout.read(), 60) == b""
        pid = await zygote.launch(jobs[1], [w for _, w in pipes[3:]])
        for _, w in pipes[3:]:
            os.close(w)
        assert await zygote.wait(pid) == 0  # the reply and the exit of its own run, not of the cancelled one
        for r, _ in pipes[1:]:
            os.close(r)
    finally:
        await AGI.shutdown()
