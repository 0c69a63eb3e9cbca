"""A real install of minimal_app into a temporary home: uv venv, pinned runtime, editable app, Cython
build, checks; then the skip path, a broken kernel and a rapids request on this GPU-less machine.

The tests share one worker environment (one cold install) and run in file order; each of the later
ones makes its own install calls, so it asserts on what it did itself.
"""
from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import agilab_panel.runtime.runner
from agilab_panel.apps import builtin_apps_path
from agilab_panel.env import AgiEnv
from agilab_panel.events import Event, EventBus, LogLine, StepEvent
from agilab_panel.install import (
    check_install,
    cython_path,
    install_app,
    install_fingerprint,
    install_state,
    worker_python,
)
from agilab_panel.modes import CYTHON_MODE, POOL_MODE, RAPIDS_MODE
from agilab_panel.results import InstallResult

pytestmark = pytest.mark.integration

MODES = POOL_MODE | CYTHON_MODE
WORKERS = {"127.0.0.1": 2, "localhost": 1}


@dataclass
class Installed:
    env: AgiEnv
    result: InstallResult
    events: list[Event]  # in emit order, as a listener saw them
    live_app_lines: int  # "app" log lines an async subscriber received while the install was still running
    tmp: Path


def _steps(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.step, e.state) for e in events if isinstance(e, StepEvent)]


async def _install(env: AgiEnv, modes: int = MODES, workers: dict | None = None) -> tuple[InstallResult, list[Event]]:
    bus = EventBus()
    events: list[Event] = []
    bus.add_listener(events.append)
    return await install_app(env, workers or WORKERS, modes, bus), events


async def _cold_install(env: AgiEnv) -> tuple[InstallResult, list[Event], int]:
    bus = EventBus()
    events: list[Event] = []
    bus.add_listener(events.append)
    task = asyncio.create_task(install_app(env, WORKERS, MODES, bus))
    live = 0
    async for event in bus.subscribe():
        if isinstance(event, LogLine) and event.step == "app" and event.stream != "log" and not task.done():
            live += 1
        if isinstance(event, StepEvent) and (event.state == "failed" or (event.step, event.state) == ("check", "done")):
            break
    return await task, events, live


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    tmp = tmp_path_factory.mktemp("install")
    with pytest.MonkeyPatch.context() as mp:
        for var, sub in (("AGILAB_HOME", "home"), ("AGI_CLUSTER_SHARE", "share"),
                         ("AGILAB_EXPORT_ABS", "export"), ("AGILAB_LOG_ABS", "log")):
            mp.setenv(var, str(tmp / sub))
        # As on hosts where nothing writes bytecode at run time: what is compiled, install compiled.
        mp.setenv("PYTHONDONTWRITEBYTECODE", "1")
        app = tmp / "fresh" / "minimal_app"  # a copy without __pycache__: the app's bytecode is the install's
        shutil.copytree(builtin_apps_path() / "minimal_app", app, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        env = AgiEnv(str(app))
        result, events, live = asyncio.run(_cold_install(env))
        yield Installed(env, result, events, live, tmp)


def test_cold_install(installed: Installed) -> None:
    env, result = installed.env, installed.result
    assert result.ok, result.errors
    host = result.hosts["127.0.0.1"]
    assert result.hosts["localhost"] is host  # local hosts share one environment, installed once
    assert [(s.name, s.ok, s.skipped) for s in host.steps] == [
        (name, True, False) for name in ("venv", "runtime", "app", "cython", "check")]
    assert host.wenv == str(env.wenv_path("127.0.0.1")) == str(env.wenv_path())
    assert _steps(installed.events).count(("cython", "done")) == 1
    runtime = host.step("runtime")
    assert runtime is not None and "runtime packages" in runtime.parts and "runtime packages: uv resolved" in runtime.parts
    assert "cythonize and C compile" in host.step("cython").parts
    done = [e for e in installed.events if isinstance(e, StepEvent) and (e.step, e.state) == ("runtime", "done")]
    assert done[0].parts == runtime.parts
    assert worker_python(env).is_file()
    state = install_state(env)
    assert state and state["fingerprint"] == install_fingerprint(env, MODES)
    assert check_install(env, MODES) is None
    json.dumps(result.to_dict())


def test_install_compiles_bytecode(installed: Installed) -> None:
    """Workers that may not write bytecode (PYTHONDONTWRITEBYTECODE, read-only installs) find it compiled:
    every module a worker imports (pandas, Dask's worker, the runtime, the app) and the app's sources."""
    env = installed.env
    python = worker_python(env)
    site = next((python.parent.parent / "lib").glob("python3*/site-packages"))
    script = ("import sys; sys.path.insert(0, sys.argv[1]); import pandas, pyarrow.parquet, distributed.cli.dask_worker, "
              "agilab_panel.runtime.runner, minimal_app.worker; "
              "print('\\n'.join(str(getattr(m, '__file__', None)) for m in list(sys.modules.values())))")
    out = subprocess.run([str(python), "-c", script, str(env.spec.src_path)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert out.returncode == 0, out.stderr
    ours = (site, env.spec.src_path, Path(agilab_panel.runtime.runner.__file__).parent.parent)
    imported = [Path(f) for f in out.stdout.split() if f.endswith(".py") and any(Path(f).is_relative_to(o) for o in ours)]
    assert any("pandas" in p.parts for p in imported) and any(p.name == "worker.py" for p in imported)
    missing = [p for p in imported if not Path(importlib.util.cache_from_source(str(p))).is_file()]
    assert not missing, missing[:5]
    for path in (env.spec.src_path / "minimal_app").glob("*.py"):  # the app's own files, imported or not
        assert Path(importlib.util.cache_from_source(str(path))).is_file(), path


def test_install_streams_live(installed: Installed) -> None:
    events = installed.events
    app_lines = [i for i, e in enumerate(events)
                 if isinstance(e, LogLine) and e.step == "app" and e.source == "install" and e.stream != "log"]
    done = events.index(next(e for e in events if isinstance(e, StepEvent) and (e.step, e.state) == ("app", "done")))
    assert app_lines and max(app_lines) < done
    assert any(events[i].text.strip().startswith("+ minimal-app") for i in app_lines)
    assert installed.live_app_lines > 0  # a subscriber saw them while install_app was still running


def test_compiled_kernel_matches_python(installed: Installed) -> None:
    """The worker, in cython mode, uses the compiled kernel and agrees with the pure Python function."""
    env = installed.env
    script = """
import sys
sys.path.insert(0, sys.argv[1])
from agilab_kernels.minimal_app import minimal_kernel
from minimal_app.worker import MinimalWorker, sum_squares
worker = MinimalWorker({}, worker_id="w0", mode=3, data_in=".", data_out=".")
worker.work_init()
assert worker.kernel is minimal_kernel.sum_squares, worker.kernel
assert minimal_kernel.__file__.startswith(sys.argv[1]), minimal_kernel.__file__
for start, stop in [(0, 0), (0, 10), (5, 1000), (0, 2_500_000)]:  # the last one overflows int64 chunks
    assert minimal_kernel.sum_squares(start, stop) == sum_squares(start, stop), (start, stop)
print(worker.work_pool({"start": 0, "stop": 2_500_000}).iloc[0]["sum_squares"])
"""
    out = subprocess.run([str(worker_python(env)), "-c", script, str(cython_path(env))],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(sum(i * i for i in range(2_500_000)))


async def test_second_install_skips_everything(installed: Installed) -> None:
    env = installed.env
    first, _ = await _install(env)
    assert first.ok, first.errors
    again, events = await _install(env)
    assert again.ok
    assert [(s.name, s.skipped) for s in again.hosts["localhost"].steps] == [
        (name, True) for name in ("venv", "runtime", "app", "cython", "check")]
    assert {state for _, state in _steps(events)} == {"skipped"}
    assert not [e for e in events if isinstance(e, LogLine) and e.stream != "log"]  # nothing was run
    # two INSTALLs at once take turns on the lock and both find nothing to do
    both = await asyncio.gather(_install(env), _install(env))
    assert all(r.ok and all(s.skipped for s in r.hosts["127.0.0.1"].steps) for r, _ in both)


async def test_rapids_without_gpu_fails_naming_host(installed: Installed) -> None:
    env = installed.env
    result, events = await _install(env, MODES | RAPIDS_MODE, {"127.0.0.1": 1})
    host = result.hosts["127.0.0.1"]
    assert not result.ok and not host.ok
    assert [s.name for s in host.steps if not s.ok] == ["rapids"]
    assert "step 'rapids'" in host.error and "127.0.0.1" in host.error and "cuDF" in host.error
    assert ("rapids", "failed") in _steps(events) and ("check", "started") not in _steps(events)
    stderr = [e.text for e in events if isinstance(e, LogLine) and e.step == "rapids" and e.stream == "stderr"]
    assert any("No module named 'cudf'" in line for line in stderr)
    assert install_state(env) is None
    assert "failed at step 'rapids'" in check_install(env, MODES)


async def test_broken_kernel_fails_cython_step(installed: Installed) -> None:
    app = installed.tmp / "apps" / "minimal_app"
    shutil.copytree(builtin_apps_path() / "minimal_app", app, ignore=shutil.ignore_patterns("__pycache__"))
    kernel = app / "src" / "minimal_app" / "minimal_kernel.pyx"
    kernel.write_text(kernel.read_text().replace("long long stop):", "long long stop)"))  # a syntax error
    env = AgiEnv(str(app))
    result, events = await _install(env)
    host = result.hosts["127.0.0.1"]
    assert not host.ok and host.steps[-1].name == "cython" and not host.steps[-1].ok
    assert "step 'cython'" in host.error and "minimal_kernel.pyx" in host.error
    compiler = [e.text for e in events if isinstance(e, LogLine) and e.step == "cython" and e.stream == "stderr"]
    assert any("Error compiling Cython file" in line for line in compiler)
    assert any("Expected ':'" in line for line in compiler)
    assert not list(cython_path(env).rglob("minimal_kernel*"))  # no stale kernel left to look valid
    assert "check" not in [s.name for s in host.steps]


async def test_a_dependency_the_engine_pins_otherwise_names_the_package_and_both_constraints(installed: Installed) -> None:
    import pandas

    app = installed.tmp / "apps" / "old_pandas_app"
    shutil.copytree(builtin_apps_path() / "minimal_app", app, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pyproject = app / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text.replace("dependencies = []", 'dependencies = ["pandas<3"]'))
    env = AgiEnv(str(app))
    result, events = await _install(env, MODES, {"127.0.0.1": 1})
    host = result.hosts["127.0.0.1"]
    assert [s.name for s in host.steps if not s.ok] == ["app"]
    assert f"requires pandas<3, but the worker environment pins pandas=={pandas.__version__}" in host.error
    assert not [e for e in events if isinstance(e, LogLine) and e.step == "app" and e.text.startswith("$ ")]  # uv not run

    # The same conflict one level down, which only uv's resolver sees: its answer, in one line.
    helper = installed.tmp / "helper_pkg"
    (helper / "src" / "helper_pkg").mkdir(parents=True)
    (helper / "src" / "helper_pkg" / "__init__.py").write_text("")
    (helper / "pyproject.toml").write_text(
        '[project]\nname = "helper-pkg"\nversion = "0.1"\ndependencies = ["pandas<3"]\n'
        '[build-system]\nrequires = ["setuptools>=69"]\nbuild-backend = "setuptools.build_meta"\n')
    pyproject.write_text(text.replace("dependencies = []", f'dependencies = ["helper-pkg @ {helper.as_uri()}"]'))
    result, events = await _install(env, MODES, {"127.0.0.1": 1})
    host = result.hosts["127.0.0.1"]
    assert [s.name for s in host.steps if not s.ok] == ["app"]
    assert "helper-pkg" in host.error and "requires pandas<3" in host.error
    assert f"pins pandas=={pandas.__version__}" in host.error and "\n" not in host.error
    assert any(e.text.startswith("$ ") for e in events if isinstance(e, LogLine) and e.step == "app")


async def test_a_forced_reinstall_installs_the_cached_runtime_wheel(installed: Installed) -> None:
    """agilab_panel's editable wheel is built once per home and source tree: a new venv installs it from
    the cache, still editable (the worker imports agilab_panel from the source tree)."""
    env = installed.env
    cached = list((env.home / "cache" / "wheels").glob("*/agilab_panel-*.editable-*.whl"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    bus = EventBus()
    result = await install_app(env, {"127.0.0.1": 1}, MODES, bus, force=True)
    assert result.ok, result.errors
    parts = result.hosts["127.0.0.1"].step("runtime").parts
    assert "agilab_panel (cached editable wheel)" in parts and "agilab_panel editable wheel (built once)" not in parts
    assert cached[0].stat().st_mtime_ns == stamp
    out = subprocess.run([str(worker_python(env)), "-c", "import agilab_panel; print(agilab_panel.__file__)"],
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == str(Path(agilab_panel.runtime.runner.__file__).parent.parent / "__init__.py")
