"""``--keep-cluster`` keeps the local warm runner after the command ends: real CLI processes, real pids.

The next command forks its run from the same runner; ``cluster stop`` ends it and leaves no process;
a runner no command uses ends on its own after its idle timeout.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from agilab_panel.execute.local import KEPT_STATE
from agilab_panel.execute.zygote import KEPT_IDLE_ENV, stop_kept_runner

pytestmark = pytest.mark.integration
FAULTY_APPS = Path(__file__).parent / "apps"  # an app whose partitions take as long as asked
RUN = ["run", "--app", "minimal_app", "--mode", "0", "--set", "partitions=2", "--json", "-v", "0"]


def _cli(dirs: dict[str, Path], *args: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, **{k: str(v) for k, v in dirs.items()}, **env}
    return subprocess.run([sys.executable, "-m", "agilab_panel.cli", *args], capture_output=True, text=True,
                          env=full, timeout=300)


def _ended(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _holders(state: Path) -> list[int]:
    """Processes whose command line names the state file: the kept runner, whatever its pid."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if str(state) in " ".join(proc.info["cmdline"] or ()) and not _ended(proc.pid):
            found.append(proc.pid)
    return found


@pytest.fixture
def home(installed) -> Iterator[tuple[dict[str, Path], Path]]:
    dirs = installed("minimal_app")
    state = dirs["AGILAB_HOME"] / "apps" / "minimal_app" / "jobs" / KEPT_STATE
    stop_kept_runner(state)
    yield dirs, state
    stop_kept_runner(state)  # whatever the test left


def test_a_kept_runner_serves_the_next_command_and_cluster_stop_ends_it(home):
    dirs, state = home
    first = _cli(dirs, *RUN, "--keep-cluster")
    assert first.returncode == 0, first.stderr
    pid = json.loads(state.read_text())["pid"]
    runner = psutil.Process(pid)
    assert "agilab_panel.runtime.zygote" in runner.cmdline() and not _ended(pid)  # it outlived its command

    second = _cli(dirs, *RUN, "--keep-cluster")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["rows"] == 2
    assert json.loads(state.read_text())["pid"] == pid and _holders(state) == [pid]  # the same runner, no other

    stop = _cli(dirs, "cluster", "stop", "--app", "minimal_app", "--json")
    assert stop.returncode == 0, stop.stderr
    assert pid in json.loads(stop.stdout)["stopped"]
    assert _ended(pid) and not state.exists() and _holders(state) == []

    plain = _cli(dirs, *RUN)  # without --keep-cluster the runner ends with the command
    assert plain.returncode == 0, plain.stderr
    assert not state.exists() and _holders(state) == []


def test_a_kept_runner_no_command_uses_ends_after_its_idle_timeout(home):
    dirs, state = home
    run = _cli(dirs, *RUN, "--keep-cluster", **{KEPT_IDLE_ENV: "1"})
    assert run.returncode == 0, run.stderr
    pid = json.loads(state.read_text())["pid"]
    deadline = time.monotonic() + 120  # a guard against hanging on a loaded machine, not a timing claim
    while not (_ended(pid) and not state.exists()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _ended(pid) and not state.exists()  # it removed its own state file


def test_the_run_of_a_killed_command_ends_but_its_kept_runner_stays(installed):
    """The kept runner outlives its commands, not their runs: a command killed mid-run takes its run along."""
    dirs = installed("faulty_app", modes_enabled=0, apps_path=FAULTY_APPS)
    state = dirs["AGILAB_HOME"] / "apps" / "faulty_app" / "jobs" / KEPT_STATE
    stop_kept_runner(state)
    env = {**os.environ, **{k: str(v) for k, v in dirs.items()}}
    args = ["run", "--app", "faulty_app", "--apps-path", str(FAULTY_APPS), "--mode", "0", "--keep-cluster",
            "--set", "partitions=1", "--set", "seconds=120", "-v", "0"]
    command = subprocess.Popen([sys.executable, "-m", "agilab_panel.cli", *args], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120  # a guard against hanging on a loaded machine, not a timing claim
        runs: list[psutil.Process] = []
        while not runs and time.monotonic() < deadline:
            time.sleep(0.2)
            if state.exists():
                runs = [p for p in psutil.Process(json.loads(state.read_text())["pid"]).children()
                        if not _ended(p.pid)]
        assert runs, "the run never started in the kept runner"
        runner = json.loads(state.read_text())["pid"]
        command.kill()  # SIGKILL: the command cleans nothing up itself
        command.wait(30)
        _, alive = psutil.wait_procs(runs, timeout=60)
        assert all(_ended(p.pid) for p in alive)  # the run ended with its command ...
        assert not _ended(runner) and json.loads(state.read_text())["pid"] == runner  # ... its runner did not
    finally:
        command.kill()
        stop_kept_runner(state)
    assert _holders(state) == []
