"""Generated snippets run as scripts (``python AGI_run_<app>.py``) against the real engine and do what
the direct API call does; a snippet made stale by a renamed argument exits non-zero naming it.

The serve snippet starts a service that outlives the script: a fresh process finds it, and the snippets
of the other Service mode buttons (health, submit, stop) act on it from their own processes.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from agilab_panel import AGI, AgiEnv, EventBus, RunRequest
from agilab_panel.apps import builtin_apps_path
from agilab_panel.plan import WorkPlan
from agilab_panel.settings import AppSettings
from agilab_panel.snippets import save_snippets

pytestmark = pytest.mark.integration
WORKERS = {"127.0.0.1": 2}
SMALL = {"partitions": 3, "size": 500}


def _script(path: Path) -> subprocess.CompletedProcess:
    """Run a saved snippet the way a pipeline would: its own interpreter, from its folder."""
    return subprocess.run([sys.executable, path.name], cwd=path.parent, env=dict(os.environ),
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def minimal(installed, use_home) -> tuple[AgiEnv, AppSettings]:
    """minimal_app installed; settings changed in memory only, so the shared home's file stays as seeded."""
    use_home(installed("minimal_app"))
    env = AgiEnv("minimal_app", verbose=0)
    settings = AppSettings(env)
    settings.cluster.param.update(verbose=0, workers=WORKERS)
    settings.args.param.update(**SMALL)
    return env, settings


async def test_serve_snippet_starts_a_service_that_outlives_the_script(minimal) -> None:
    from agilab_panel.service.queue import ServicePaths
    from agilab_panel.service.state import read_state

    env, settings = minimal
    settings.cluster.cluster_enabled = True
    (path,) = save_snippets(env, settings, kinds=("serve",))
    assert path.name == "AGI_serve_minimal_app.py"
    state_path = ServicePaths.of(env.share, env.app)
    assert read_state(state_path) is None
    try:
        done = _script(path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("started the service of app minimal_app: 2 loops"), done.stdout
        status = await AGI.serve(env, "status")  # this process finds what the script started
        assert status["status"] == "running" and status["health"]["workers_healthy_count"] == 2
        # the snippets of the section's other buttons, each from its own process
        health = _script(_action_script(env, settings, "health"))
        assert health.returncode == 0 and health.stdout.startswith("running 0 "), health.stderr
        submitted = _script(_action_script(env, settings, "submit"))
        assert submitted.returncode == 0, submitted.stderr
        submission = re.fullmatch(r"submitted (\S+)\n", submitted.stdout).group(1)
        assert (await AGI.wait_submission(env, submission, timeout=120))["status"] == "done"
        stop = _script(_action_script(env, settings, "stop"))
        assert stop.returncode == 0 and stop.stdout.startswith("stopped the service of app minimal_app"), stop.stderr
    finally:
        stopped = await AGI.serve(env, "stop")
    assert stopped["status"] == "stopped" and stopped["not_stopped"] == {} and read_state(state_path) is None
    assert stopped["message"] == "no service was running for app minimal_app: nothing to stop"  # the snippet stopped it


def _action_script(env: AgiEnv, settings: AppSettings, action: str) -> Path:
    """The snippet of one Service mode button, saved beside the others."""
    from agilab_panel.snippets import service_snippet

    path = Path(env.log_dir) / f"AGI_serve_{action}_{env.app}.py"
    path.write_text(service_snippet(action, settings))
    return path


def _plan_fields(plan: WorkPlan) -> dict:
    return {k: v for k, v in plan.to_dict().items() if k != "created"}


async def test_install_and_distrib_snippets_do_what_the_direct_calls_do(minimal) -> None:
    env, settings = minimal
    install, distrib = save_snippets(env, settings, kinds=("install", "distrib"))

    done = _script(install)
    assert done.returncode == 0, done.stderr
    assert "127.0.0.1: ok" in done.stdout

    done = _script(distrib)
    assert done.returncode == 0, done.stderr
    from_snippet = WorkPlan.load(env.plan_path)
    direct = await AGI.get_distrib(env, workers=WORKERS, events=EventBus(), save=False, **SMALL)
    assert _plan_fields(from_snippet) == _plan_fields(direct)
    assert len(from_snippet.partitions) == SMALL["partitions"]


async def test_run_snippet_gives_the_output_of_the_direct_call(minimal) -> None:
    env, settings = minimal
    settings.cluster.pool = True
    (path,) = save_snippets(env, settings, kinds=("run",))
    assert "mode=AGI.POOL_MODE," in path.read_text(encoding="utf-8")

    done = _script(path)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^1: pool: 3 rows in [\d.]+s -> ", done.stdout, re.M), done.stdout
    from_snippet = pd.read_parquet(AGI.last_output(env))

    request = RunRequest(params=SMALL, workers=WORKERS, mode=AGI.POOL_MODE, verbose=0)
    result = await AGI.run(env, request=request, events=EventBus())
    direct = pd.read_parquet(result.output)
    pd.testing.assert_frame_equal(from_snippet, direct)
    assert direct["sum_squares"].map(int).tolist() == [sum(i * i for i in range(s, s + 500)) for s in (0, 500, 1000)]


def _copy_app(root: Path, name: str) -> Path:
    """minimal_app under another name (package included), so it is neither shadowed nor already imported."""
    dest = root / name
    shutil.copytree(builtin_apps_path() / "minimal_app", dest,
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "*.so", "*.c"))
    (dest / "src" / "minimal_app").rename(dest / "src" / name)
    for path in dest.rglob("*"):
        if path.is_file() and path.suffix in {".py", ".toml", ".pyx"}:
            path.write_text(path.read_text(encoding="utf-8").replace("minimal_app", name), encoding="utf-8")
    return dest


def test_a_stale_snippet_exits_non_zero_naming_the_renamed_argument(tmp_path: Path) -> None:
    app = _copy_app(tmp_path / "apps", "stale_app")
    env = AgiEnv("stale_app", apps_path=tmp_path / "apps", verbose=0)
    settings = AppSettings(env)
    settings.cluster.verbose = 0
    paths = save_snippets(env, settings, kinds=("distrib", "run"))

    # The app renames size -> span; the user's [args] follow (the per-user copy is reseeded).
    for path in (app / "app_settings.toml", app / "src" / "stale_app" / "app_args.py",
                 app / "src" / "stale_app" / "manager.py"):
        path.write_text(re.sub(r"\bsize\b", "span", path.read_text(encoding="utf-8")), encoding="utf-8")
    env.settings_path.unlink()

    for path in paths:
        done = _script(path)
        assert done.returncode != 0, done.stdout
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and "'size'" in last and "renamed or removed" in last, done.stderr
        assert "Traceback" not in done.stderr
