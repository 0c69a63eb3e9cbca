"""``new-app`` end to end: each kind, as generated, passes check-app, installs, and runs in every local
mode (plain, pool, Cython, pool + Cython, Dask, and Dask with both) with the same output."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from agilab_panel import AGI, AgiEnv, EventBus, RunRequest
from agilab_panel.install import cython_path, worker_python

pytestmark = pytest.mark.integration
WORKERS = {"127.0.0.1": 2}
SMALL = {"minimal": {"size": 4000}, "numeric": {"points": 20_000}, "data": {"rows_per_file": 3000}}
KERNEL_PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
from {name}.worker import {cls}
for mode in (0, 2):
    worker = {cls}({{}}, worker_id="w", mode=mode, data_in=".", data_out=".")
    worker.work_init()
    print(mode, "agilab_kernels.{name}.kernel" in sys.modules)
"""


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agilab_panel.cli", *args], capture_output=True, text=True,
                          env=dict(os.environ), cwd=cwd, timeout=600)


@pytest.mark.parametrize("kind", ["minimal", "numeric", "data"])
async def test_each_kind_installs_and_runs_in_every_local_mode_as_generated(kind, tmp_path):
    name = f"my_{kind}_app"
    made = cli("new-app", name, "--kind", kind, "--dir", str(tmp_path / "apps"), "--json")
    assert made.returncode == 0, made.stderr
    folder = Path(json.loads(made.stdout)["path"])
    assert folder == tmp_path / "apps" / name and (folder / "src" / name / "kernel.pyx").is_file()
    checked = cli("check-app", "--app", name, "--apps-path", str(tmp_path / "apps"))
    assert checked.returncode == 0, checked.stdout + checked.stderr

    env = AgiEnv(name, apps_path=[tmp_path / "apps"], verbose=0)
    install = await AGI.install(env, workers=WORKERS, modes_enabled=AGI.POOL_MODE | AGI.CYTHON_MODE | AGI.DASK_MODE,
                                events=EventBus())
    assert install.ok, install.to_dict()
    assert list((cython_path(env) / "agilab_kernels" / name).glob("kernel.*"))  # built into the app's own package

    probe = subprocess.run([str(worker_python(env)), "-c", KERNEL_PROBE.format(name=name, cls=env.spec.worker_ref.split(":")[1]),
                            str(cython_path(env))], capture_output=True, text=True, timeout=120)
    assert probe.stdout.split() == ["0", "False", "2", "True"], probe.stderr  # cython mode loads the compiled kernel

    frames, workers = {}, {}
    try:
        for mode in (0, 1, 2, 3, 4, 7):
            result = await AGI.run(env, RunRequest(params=SMALL[kind], workers=WORKERS, mode=mode, verbose=0),
                                   events=EventBus())
            assert result.ok and result.rows > 0, result.to_dict()
            frames[mode] = pd.read_parquet(result.output)
            workers[mode] = {p.worker for p in result.partitions}
    finally:
        await AGI.shutdown()
    assert all(w.startswith("pool-") for w in workers[1]) and workers[0] == {"local"}
    assert workers[4] == {"127.0.0.1-0", "127.0.0.1-1"}  # one Dask worker per slot
    reference = frames.pop(0)
    for mode, frame in frames.items():
        pd.testing.assert_frame_equal(frame, reference, obj=f"{name} mode {mode}")
    if kind == "data":  # the declared summary file, next to the output, with what the form previews
        summary = json.loads((Path(result.output).parent / f"{name}_summary.json").read_text())
        assert summary["rows"] == 6 * SMALL["data"]["rows_per_file"] and summary["files"] == 6


def test_bad_names_and_kinds_are_refused_and_nothing_is_written(tmp_path):
    apps = tmp_path / "apps"
    cases = [(["new-app", "json"], "standard library"), (["new-app", "minimal_app"], "taken by"),
             (["new-app", "My-App"], "Python identifier"), (["new-app", "MyApp"], "lower case"),
             (["new-app", "pandas"], "shadow"), (["new-app", "class"], "Python identifier")]
    for args, text in cases:
        proc = cli(*args, "--dir", str(apps))
        assert proc.returncode != 0 and text in proc.stderr and proc.stderr.count("\n") == 1, (args, proc.stderr)
    assert not apps.exists()
    assert cli("new-app", "twice", "--dir", str(apps)).returncode == 0
    before = sorted(p.relative_to(apps) for p in apps.rglob("*"))
    again = cli("new-app", "twice", "--dir", str(apps), "--kind", "data")
    assert again.returncode != 0 and "taken by" in again.stderr
    assert sorted(p.relative_to(apps) for p in apps.rglob("*")) == before  # nothing left half-written
    kind = cli("new-app", "other", "--dir", str(apps), "--kind", "huge")
    assert kind.returncode != 0 and "huge" in kind.stderr and not (apps / "other").exists()
