"""Install bookkeeping without building anything: fingerprints, saved state, the reasons check_install
gives, streaming of step output, and hosts that cannot be installed yet."""
from __future__ import annotations

import json
import os
import shutil
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from agilab_panel.apps import builtin_apps_path
from agilab_panel.env import AgiEnv
from agilab_panel.events import EventBus, LogLine, StepEvent
from agilab_panel.install import (
    STATE_FILE,
    NotInstalledError,
    _plan,
    _stream,
    _write_state,
    check_install,
    cython_path,
    install_app,
    install_fingerprint,
    install_state,
    runtime_requirements,
    worker_python,
)
from agilab_panel.results import HostInstall, InstallResult, StepResult

REMOTE = "192.0.2.10"  # TEST-NET-1: documentation only, never reachable


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AgiEnv:
    """A private copy of minimal_app (so tests may edit it) under a temporary AGILAB_HOME."""
    for var, sub in (("AGILAB_HOME", "home"), ("AGI_CLUSTER_SHARE", "share"),
                     ("AGILAB_EXPORT_ABS", "export"), ("AGILAB_LOG_ABS", "log")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    app = tmp_path / "apps" / "minimal_app"
    shutil.copytree(builtin_apps_path() / "minimal_app", app, ignore=shutil.ignore_patterns("__pycache__"))
    return AgiEnv(str(app))


def _kernel(env: AgiEnv) -> Path:
    return env.app_path / env.spec.cython[0]


def _fake_install(env: AgiEnv, modes: int) -> None:
    """Lay out the files and state a successful install would leave, without running one."""
    plan = _plan(env, modes)
    plan.python.parent.mkdir(parents=True)
    plan.python.touch()
    for module in plan.modules:
        plan.kernel_dir.mkdir(parents=True, exist_ok=True)
        (plan.kernel_dir / f"{module}{EXTENSION_SUFFIXES[0]}").touch()
    _write_state(plan.wenv / STATE_FILE, {"schema": "agilab.install_state.v1", "ok": True, "modes_enabled": modes,
                                          "fingerprint": plan.fingerprint, "steps": plan.steps})


def test_requirements_pinned_to_engine() -> None:
    requirements, constraints = runtime_requirements(3)
    names = [r.split("==")[0] for r in requirements]
    assert names[:2] == ["dask", "distributed"] and "cython" in names and "cloudpickle" in names
    assert all("==" in r for r in requirements if r.split("==")[0] != "setuptools")
    assert any(c.startswith("toolz==") for c in constraints)  # dependencies of dask are pinned too
    assert "cython" not in [r.split("==")[0] for r in runtime_requirements(1)[0]]


def test_fingerprint_follows_inputs(env: AgiEnv) -> None:
    base = _plan(env, 3)
    assert install_fingerprint(env, 1) == install_fingerprint(env, 0) == install_fingerprint(env, 5)
    assert len({install_fingerprint(env, m) for m in (1, 3, 9, 11)}) == 4

    _kernel(env).write_text(_kernel(env).read_text() + "\n# edited\n")
    edited = _plan(env, 3)
    assert edited.fingerprint != base.fingerprint
    assert [s for s in base.steps if base.steps[s] != edited.steps[s]] == ["cython", "check"]

    pyproject = env.app_path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n# edited\n")
    changed = _plan(env, 3)
    assert [s for s in base.steps if edited.steps[s] != changed.steps[s]] == ["app", "check"]


def test_state_roundtrip(env: AgiEnv) -> None:
    assert install_state(env) is None
    state = {"schema": "agilab.install_state.v1", "ok": True, "modes_enabled": 3, "fingerprint": "x", "steps": {}}
    path = env.wenv_path() / STATE_FILE
    path.parent.mkdir(parents=True)
    _write_state(path, state)
    assert install_state(env) == state
    assert install_state(env, "127.0.0.1") == state  # local hosts share one environment
    assert install_state(env, REMOTE) is None
    _write_state(path, {**state, "ok": False})  # an install that did not finish is no install
    assert install_state(env) is None
    assert "running or was interrupted" in check_install(env, 1)
    _write_state(path, {**state, "ok": False, "failed_step": "app"})
    assert "failed at step 'app'" in check_install(env, 1)
    path.write_text("{not json")
    assert install_state(env) is None


def test_check_install_reasons(env: AgiEnv) -> None:
    reason = check_install(env, 1)
    assert reason and "minimal_app" in reason and "localhost" in reason and "INSTALL" in reason

    _fake_install(env, 1)
    assert check_install(env, 1) is None
    assert check_install(env, 5) is None  # dask needs nothing more from install
    assert "did not prepare cython" in check_install(env, 3)
    assert "did not prepare rapids" in check_install(env, 9)
    assert "SSH" in check_install(env, 1, REMOTE)

    pyproject = env.app_path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n# edited\n")
    assert "the app's pyproject.toml" in check_install(env, 1)


def test_check_install_cython_files(env: AgiEnv) -> None:
    _fake_install(env, 3)
    assert check_install(env, 3) is None
    for compiled in (cython_path(env) / "agilab_kernels" / "minimal_app").iterdir():
        compiled.unlink()
    assert "minimal_kernel missing" in check_install(env, 3)
    assert check_install(env, 1) is None  # a run without cython does not need the kernel
    worker_python(env).unlink()
    assert "worker Python" in check_install(env, 1)


def test_check_install_cython_sources(env: AgiEnv) -> None:
    _fake_install(env, 3)
    _kernel(env).write_text(_kernel(env).read_text() + "\n# edited\n")
    assert "Cython sources changed" in check_install(env, 3)
    assert check_install(env, 1) is None


def test_worker_python(env: AgiEnv) -> None:
    with pytest.raises(NotInstalledError, match=r"minimal_app.*localhost.*INSTALL"):
        worker_python(env)
    with pytest.raises(NotInstalledError, match="SSH"):
        worker_python(env, REMOTE)
    _fake_install(env, 1)
    assert worker_python(env, "127.0.0.1") == env.wenv_path() / ".venv" / "bin" / "python"
    assert cython_path(env) == env.wenv_path() / "cython"


def test_kernels_are_built_into_a_package_of_their_app(env: AgiEnv) -> None:
    """Not top-level modules: a kernel named like a module elsewhere (json, another app's kernel) shadows nothing."""
    plan = _plan(env, 3)
    assert plan.kernel_dir == cython_path(env) / "agilab_kernels" / "minimal_app"
    assert plan.imports == ["agilab_kernels.minimal_app.minimal_kernel"]


def test_a_requirement_the_engine_pins_otherwise_is_named_with_both_constraints() -> None:
    from agilab_panel.install import pin_conflicts

    _, constraints = runtime_requirements(0)
    pinned = next(c for c in constraints if c.startswith("pandas=="))
    found = pin_conflicts("app", ["pandas<2", "numpy>=1", "pandas>=1; python_version < '3'", "x @ file:///x"], constraints)
    assert found == [f"app 'app' requires pandas<2, but the worker environment pins {pinned} "
                     "(the engine's version: pickled results and Dask messages cross between the engine and its workers)"]


async def test_stream_is_live(tmp_path: Path) -> None:
    """The child waits for a file that the listener creates on its first line: only live streaming passes."""
    gate = tmp_path / "gate"
    script = (
        "import pathlib, sys, time\n"
        "print('ready', flush=True)\n"
        "deadline = time.time() + 20\n"
        f"while not pathlib.Path({str(gate)!r}).exists():\n"
        "    if time.time() > deadline: sys.exit('line was not streamed live')\n"
        "    time.sleep(0.02)\n"
        "print('to stderr', file=sys.stderr)\n"
    )
    bus = EventBus()
    bus.add_listener(lambda e: gate.touch() if isinstance(e, LogLine) and e.text == "ready" else None)
    code, tail = await _stream([sys.executable, "-c", script], bus, "localhost", "demo", tmp_path)
    assert code == 0, tail
    lines = [(e.stream, e.text) for e in bus.logs() if e.stream != "log"]
    assert lines == [("stdout", "ready"), ("stderr", "to stderr")]
    assert all(e.source == "install" and e.step == "demo" and e.host == "localhost" for e in bus.logs())


async def test_unreachable_remote_host_fails_at_its_ssh_step(env: AgiEnv, tmp_path: Path) -> None:
    from agilab_panel.remote import SshOptions

    bus = EventBus()
    ssh = SshOptions(known_hosts=tmp_path / "known_hosts", connect_timeout=5)
    result = await install_app(env, {REMOTE: 2}, 1, bus, ssh=ssh)
    host = result.hosts[REMOTE]
    assert not result.ok and not host.ok
    assert host.error.startswith(f"host {REMOTE}: unreachable over SSH")
    assert [(e.step, e.state) for e in bus.history if isinstance(e, StepEvent)] == [("ssh", "started"), ("ssh", "failed")]
    assert not env.wenv_path().exists()  # nothing local was installed for a remote-only map
    json.dumps(result.to_dict())


async def test_install_rejects_bad_input(env: AgiEnv) -> None:
    with pytest.raises(ValueError):
        await install_app(env, {"localhost": 0}, 1, EventBus())
    with pytest.raises(ValueError):
        await install_app(env, {"localhost": 1}, 16, EventBus())


def test_result_to_dict() -> None:
    step = StepResult("venv", True, 0.1)
    failed = StepResult("app", False, 0.2, detail="boom")
    host = HostInstall("localhost", False, "/w", [step, failed], "step 'app' failed")
    result = InstallResult("minimal_app", 3, {"localhost": host, "127.0.0.1": host}, 0.3)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["ok"] is False and data["hosts"]["localhost"]["steps"][1]["detail"] == "boom"
    assert result.errors == ["step 'app' failed"] and host.step("app").ok is False


def _dist(site: Path, version: str) -> None:
    for old in site.glob("fakepkg-*.dist-info"):
        shutil.rmtree(old)
    info = site / f"fakepkg-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fakepkg\nVersion: {version}\n")


def test_the_engine_s_versions_are_read_again_once_a_package_is_installed(tmp_path, monkeypatch) -> None:
    from agilab_panel.install_plan import _engine_versions

    site = tmp_path / "site-packages"
    site.mkdir()
    _dist(site, "1.0")
    monkeypatch.syspath_prepend(str(site))
    assert _engine_versions(["fakepkg"]) == {"fakepkg": "1.0"}
    _dist(site, "2.0")  # what an install does: the folder changes
    os.utime(site, ns=(0, site.stat().st_mtime_ns + 1_000_000))  # a clock too coarse to see it must not matter
    assert _engine_versions(["fakepkg"]) == {"fakepkg": "2.0"}
