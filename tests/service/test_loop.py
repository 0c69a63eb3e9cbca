"""The loop on real files and the real app, outside Dask: claims, runs, publishes, reduces like a RUN,
is woken by the file watch, survives corrupt and failing tasks, and stops when asked or replaced."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from agilab_panel import AGI, AgiEnv, EventBus
from agilab_panel.execute.common import make_job
from agilab_panel.fsutil import atomic_write_text
from agilab_panel.service import queue as q
from agilab_panel.service.controller import plan_tasks
from agilab_panel.service.heartbeat import read_heartbeats
from agilab_panel.service.loop import ServiceLoop, Wakeup

FAULTY_APPS = Path(__file__).parent.parent / "integration" / "apps"  # an app whose partitions fail on demand

WORKERS = {"127.0.0.1": 2}
SLOT = "127.0.0.1-0"


def until(check: Callable[[], object], what: str, within: float = 60.0) -> object:
    """Wait for ``check`` to hold (a guard against hanging, not a timing claim)."""
    deadline = time.monotonic() + within
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)
    return value


async def _submit(env: AgiEnv, paths: q.ServicePaths, **args: object) -> dict:
    plan = await AGI.get_distrib(env, workers=WORKERS, events=EventBus(), save=False, **args)
    data_in = env.resolve_data_path(None, f"{env.app}/data_in")
    data_out = env.resolve_data_path(None, f"{env.app}/data_out")
    manifest, tasks = plan_tasks(make_job(env, plan, AGI.DASK_MODE, data_in, data_out, None), q.new_submission_id())
    q.write_submission(paths, manifest)
    q.enqueue(paths, tasks)
    return manifest


@pytest.fixture
def loop_of(tmp_path: Path) -> Iterator[Callable[[q.ServicePaths], tuple[ServiceLoop, threading.Thread, list]]]:
    started: list[tuple[q.ServicePaths, threading.Thread]] = []

    def start(paths: q.ServicePaths, incarnation: int = 1) -> tuple[ServiceLoop, threading.Thread, list]:
        loop = ServiceLoop(paths, SLOT, incarnation, poll_interval=30.0)  # a poll never wakes it in these tests
        out: list = []
        thread = threading.Thread(target=lambda: out.append(loop.run()), daemon=True)
        thread.start()
        started.append((paths, thread))
        until(lambda: SLOT in read_heartbeats(paths.heartbeats), "a first heartbeat")
        return loop, thread, out

    yield start
    for paths, thread in started:
        paths.stop_flag.write_text("stop")
        thread.join(30)


async def test_a_loop_runs_a_submission_and_reduces_it_like_a_run(agilab_dirs, loop_of) -> None:
    env = AgiEnv("minimal_app", verbose=0)
    paths = q.ServicePaths.of(env.share, env.app).ensure()
    loop, thread, out = loop_of(paths)
    manifest = await _submit(env, paths, partitions=3, size=50)
    record = until(lambda: (r := q.read_submission(paths, manifest["id"])) and r["status"] == "done" and r,
                   "the submission done")
    assert len(manifest["tasks"]) == 2 and q.counts(paths) == {"pending": 0, "running": 0, "done": 2, "failed": 0}
    assert Path(record["output"]).parent == q.output_dir(manifest["job"]["data_out"], manifest["id"])  # its own
    frame = pd.read_parquet(record["output"])
    assert frame["sum_squares"].map(int).tolist() == [sum(i * i for i in range(s, s + 50)) for s in (0, 50, 100)]
    assert AGI.last_output(env) == Path(record["output"])
    done = json.loads((paths.done / f"{manifest['tasks'][0]}.json").read_text())
    assert done["worker"] == SLOT and done["pid"] == os.getpid() and done["partitions"]
    paths.stop_flag.write_text("stop")
    thread.join(30)
    beat = read_heartbeats(paths.heartbeats)[SLOT]
    assert (beat["state"], beat["exit"], beat["tasks_done"]) == ("stopped", "finished", 2)
    assert out == [{"worker": SLOT, "incarnation": 1, "tasks_done": 2, "exit": "finished"}]


def test_the_watch_wakes_on_a_file_renamed_into_the_folder(tmp_path: Path) -> None:
    watch = Wakeup([tmp_path])
    assert watch.watching  # Linux: inotify, not polling
    (tmp_path / ".task.tmp").write_text("{}")
    watch.wait(0)  # the temporary file's own event, drained
    threading.Timer(0.2, lambda: os.rename(tmp_path / ".task.tmp", tmp_path / "task.json")).start()
    assert watch.wait(120.0) is True  # woken by the rename, not by the timeout
    assert watch.wait(0) is False
    watch.close()


async def test_a_corrupt_task_fails_with_its_reason_and_the_loop_goes_on(agilab_dirs, loop_of) -> None:
    env = AgiEnv("minimal_app", verbose=0)
    paths = q.ServicePaths.of(env.share, env.app).ensure()
    loop_of(paths)
    # whole files, as any writer of the queue must (a loop may claim a file the moment it appears)
    atomic_write_text(paths.pending / "0-corrupt.00000.json", '{"id": "0-corrupt.00000", "job": ')
    atomic_write_text(paths.pending / "0-wrong.00000.json", json.dumps({"id": "another", "job": {}, "partitions": []}))
    manifest = await _submit(env, paths, partitions=2, size=10)
    until(lambda: q.read_submission(paths, manifest["id"])["status"] == "done", "the good submission done")
    corrupt = json.loads((paths.failed / "0-corrupt.00000.json").read_text())
    assert corrupt["error"].startswith("corrupt task file: JSONDecodeError") and corrupt["content"].startswith('{"id"')
    wrong = json.loads((paths.failed / "0-wrong.00000.json").read_text())
    assert wrong["error"] == "corrupt task file: ValueError: its id 'another' is not its file name '0-wrong.00000'"


async def test_a_failing_partition_fails_its_task_and_the_submission_names_it(agilab_dirs, loop_of) -> None:
    env = AgiEnv("faulty_app", apps_path=FAULTY_APPS, verbose=0)
    paths = q.ServicePaths.of(env.share, env.app).ensure()
    _, thread, _ = loop_of(paths)
    manifest = await _submit(env, paths, partitions=4, fail_on=3)
    record = until(lambda: (r := q.read_submission(paths, manifest["id"])) and r["status"] != "submitted" and r,
                   "the submission finished")
    paths.stop_flag.write_text("stop")
    thread.join(30)  # the loop has finished closing the submission
    assert record["status"] == "failed" and q.counts(paths)["failed"] == 1 and q.counts(paths)["done"] == 1
    (error,) = record["errors"].values()
    assert error == "ValueError: partition 3 was told to fail"
    assert not (paths.results / manifest["id"]).exists()


def test_a_loop_replaced_by_another_incarnation_stands_down(tmp_path: Path, loop_of) -> None:
    paths = q.ServicePaths.of(tmp_path / "share", "app").ensure()
    paths.slot_control(SLOT).write_text("1")
    _, thread, out = loop_of(paths)
    paths.slot_control(SLOT).write_text("2")
    thread.join(30)
    assert not thread.is_alive() and out[0]["exit"] == "finished"


def test_the_loop_imports_no_engine_dashboard_or_process_library() -> None:
    code = ("import sys, agilab_panel.service.loop; "
            "bad = [m for m in ('panel', 'holoviews', 'bokeh', 'psutil', 'param', 'tomlkit', 'distributed', "
            "'agilab_panel.settings', 'agilab_panel.env', 'agilab_panel.service.controller') if m in sys.modules]; "
            "print(bad); sys.exit(bool(bad))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr



@pytest.mark.parametrize("marker", [False, True], ids=["died-before-the-reduce", "died-during-the-reduce"])
async def test_a_submission_whose_finisher_died_is_closed_once_from_its_files(agilab_dirs, loop_of, monkeypatch,
                                                                              marker: bool) -> None:
    from agilab_panel.service import loop as loop_module

    env = AgiEnv("minimal_app", verbose=0)
    paths = q.ServicePaths.of(env.share, env.app).ensure()
    # the files a loop leaves when its process dies after publishing a task, before closing its submission
    monkeypatch.setattr(loop_module, "finish_submission", lambda *args, **kwargs: None)
    loop, thread, out = loop_of(paths)
    manifest = await _submit(env, paths, partitions=3, size=50)
    until(lambda: q.counts(paths)["done"] == 2, "both tasks done")
    paths.stop_flag.write_text("stop")
    thread.join(30)
    monkeypatch.undo()
    assert q.read_submission(paths, manifest["id"])["status"] == "submitted"
    assert q.unfinished_submissions(paths) == [manifest["id"]]
    if marker:  # it died in the reduce: its finish marker names it
        (paths.results / manifest["id"] / ".finishing").write_text(json.dumps({"worker": SLOT, "incarnation": 1}))
        assert loop_module.finish_orphans(str(paths.root), {SLOT: 1}) == {}  # its loop still lives: it closes it
        assert q.read_submission(paths, manifest["id"])["status"] == "submitted"

    assert loop_module.finish_orphans(str(paths.root), {SLOT: 2}) == {manifest["id"]: "done"}
    record = q.read_submission(paths, manifest["id"])
    frame = pd.read_parquet(record["output"])
    assert frame["sum_squares"].map(int).tolist() == [sum(i * i for i in range(s, s + 50)) for s in (0, 50, 100)]
    assert AGI.last_output(env) == Path(record["output"])
    assert not (paths.results / manifest["id"]).exists()
    assert loop_module.finish_orphans(str(paths.root), {SLOT: 2}) == {}  # closed once
    assert q.unfinished_submissions(paths) == [] and q.read_submission(paths, manifest["id"]) == record
