"""A step that fails on one remote host: the result and the log name the host, the step and the
compiler's own error line; the other host installs as if alone; the next INSTALL after the fix redoes
that host's failed step (and the final check) and nothing else anywhere."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agilab_panel import AGI, AgiEnv
from agilab_panel.apps import builtin_apps_path
from agilab_panel.events import EventBus, LogLine
from agilab_panel.settings import AppSettings

from .simhosts import SimHosts

pytestmark = pytest.mark.integration

APP = "minimal_app"
MODES = AGI.CYTHON_MODE | AGI.DASK_MODE
NO_CC = "agilab-no-such-cc"  # the host's C compiler: a name that runs nothing there


async def install(sim: SimHosts, apps: Path) -> tuple[object, EventBus]:
    env = AgiEnv(str(apps / APP), verbose=0)  # this copy, not the built-in app
    settings = AppSettings(env)
    settings.cluster.ssh_key_path = str(sim.client_key)
    settings.save_cluster("ssh_key_path")
    bus = EventBus()
    return await AGI.install(env, workers={h.address: 1 for h in sim.hosts}, modes_enabled=MODES, events=bus), bus


def ran(result: object, host: str) -> list[str]:
    return [s.name for s in result.hosts[host].steps[1:] if not s.skipped]  # type: ignore[attr-defined]


async def test_a_step_failing_on_one_host_is_named_and_alone_redone_after_the_fix(ssh_env: SimHosts,
                                                                                    tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    shutil.copytree(builtin_apps_path() / APP, apps / APP, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c"))
    a, b = ssh_env.hosts
    first, _ = await install(ssh_env, apps)
    assert first.ok, first.errors

    pyx = apps / APP / "src" / APP / "minimal_kernel.pyx"  # a changed kernel: both hosts compile it again
    pyx.write_text(pyx.read_text() + "\n\ncpdef int changed_here():\n    return 1\n")
    ssh_env.set_env(a, CC=NO_CC)
    try:
        failed, bus = await install(ssh_env, apps)
    finally:
        ssh_env.set_env(a)
    assert not failed.ok
    error = failed.hosts[a.address].error
    assert error.startswith(f"host {a.address}: step 'cython' failed: compiling minimal_kernel.pyx on the host failed")
    assert NO_CC in error  # the compiler's own error line, not only "exit code 1"
    logged = [e for e in bus.history if isinstance(e, LogLine) and e.level == "ERROR" and e.host == a.address]
    assert [(e.step, e.text) for e in logged] == [("cython", error)]
    assert ran(failed, a.address) == ["app", "cython"] and not failed.hosts[a.address].steps[-1].ok
    assert failed.hosts[b.address].ok and ran(failed, b.address) == ["app", "cython", "check"]
    state = json.loads((a.home / ".agilab" / "wenv" / APP / "install_state.json").read_text())
    assert state["ok"] is False and state["failed_step"] == "cython" and "cython" not in state["steps"]

    fixed, bus = await install(ssh_env, apps)
    assert fixed.ok, fixed.errors
    assert ran(fixed, a.address) == ["cython", "check"]
    assert ran(fixed, b.address) == []
    commands = {e.host for e in bus.history if isinstance(e, LogLine) and " $ " in e.text}
    assert commands == {a.address}  # nothing but the checks ran on the other host
    kernels = (a.home / ".agilab" / "wenv" / APP / "cython" / "agilab_kernels" / APP).glob("minimal_kernel.*.so")
    assert len(list(kernels)) == 1
