"""Whether an install still serves: the saved state of the last install, and the checks a run makes
before it starts (a cheap comparison of fingerprints and files, no process started)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .env import AgiEnv
from .fsutil import atomic_write_text
from .hosts import is_local_host
from .install_plan import _RELEVANT_BITS, _STEP_BIT, _compiled_files, _Plan, _plan, _venv_python

__all__ = ["NotInstalledError", "install_state", "check_install", "worker_python", "cython_path"]

STATE_FILE = "install_state.json"
STATE_SCHEMA = "agilab.install_state.v1"
_CHANGED = {
    "venv": "the engine's Python changed",
    "runtime": "the engine's package versions or agilab_panel's pyproject.toml changed",
    "app": "the app's pyproject.toml or folder changed",
    "cython": "the app's Cython sources changed",
    "rapids": "the app's RAPIDS dependencies changed",
}


class NotInstalledError(RuntimeError):
    """The worker environment an action needs is missing or stale; the fix is to run INSTALL."""


def _load_state(path: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get("schema") == STATE_SCHEMA else None


def _write_state(path: Path, state: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(state, indent=2))


def install_state(env: AgiEnv, host: str = "localhost") -> dict[str, Any] | None:
    """The state saved by the last install of this host that completed every step, else None."""
    if not is_local_host(host):
        return None
    state = _load_state(env.wenv_path(host) / STATE_FILE)
    return state if state and state.get("ok") is True else None


def _lost(plan: _Plan) -> dict[str, str]:
    """Steps whose output has gone missing since they ran (step -> what is missing): a cheap file check."""
    lost: dict[str, str] = {}
    if not plan.python.is_file():
        lost["venv"] = f"the worker Python {plan.python} is missing"
    missing = [m for m in plan.modules if not _compiled_files(plan.kernel_dir, m)]
    if missing:
        lost["cython"] = f"compiled kernel(s) {', '.join(missing)} missing from {plan.kernel_dir}"
    return lost


def check_install(env: AgiEnv, modes_enabled: int, host: str = "localhost") -> str | None:
    """None when the last install of ``host`` still serves these modes; else why INSTALL must run again."""
    where = f"app {env.app!r} on host {host}"
    if not is_local_host(host):
        return f"{where}: a remote host's install is checked over SSH, by INSTALL with this worker map"
    state = _load_state(env.wenv_path(host) / STATE_FILE)
    if state is None:
        return f"{where} is not installed: run INSTALL"
    if state.get("ok") is not True:
        failed = state.get("failed_step")
        return (f"{where}: the last INSTALL failed at step '{failed}': run INSTALL" if failed
                else f"{where}: an INSTALL is running or was interrupted: run INSTALL")
    installed = int(state.get("modes_enabled", 0)) & _RELEVANT_BITS
    lacking = [name for name, bit in _STEP_BIT.items() if modes_enabled & bit and not installed & bit]
    if lacking:
        names = " and ".join(lacking)
        return f"{where}: the last install did not prepare {names}: run INSTALL with {names} enabled"
    # Compare with what was installed, but only the steps these modes rely on: a run without cython
    # does not care that a .pyx changed since.
    plan = _plan(env, installed, host)
    unused = {step for step, bit in _STEP_BIT.items() if not modes_enabled & bit}
    needed = [s for s in plan.steps if s != "check" and s not in unused]
    saved = state.get("steps", {})
    changed = next((s for s in needed if saved.get(s) != plan.steps[s]), None)
    if changed:
        return f"{where} is out of date ({_CHANGED[changed]}): run INSTALL"
    lost = _lost(plan)
    problem = next((lost[s] for s in needed if s in lost), None)
    return f"{where}: {problem}: run INSTALL" if problem else None


def worker_python(env: AgiEnv, host: str = "localhost") -> Path:
    """The Python of the host's worker environment; :class:`NotInstalledError` when there is none."""
    if not is_local_host(host):
        raise NotInstalledError(f"app {env.app!r} on host {host}: a remote host's worker Python lives on that "
                                "host (its workers start over SSH in cluster mode)")
    python = _venv_python(env.wenv_path(host))
    if not python.is_file():
        raise NotInstalledError(f"app {env.app!r} is not installed on host {host}: its worker Python "
                                f"{python} is missing; run INSTALL")
    return python


def cython_path(env: AgiEnv, host: str = "localhost") -> Path:
    """The folder a worker puts on ``sys.path`` in cython mode: it holds ``agilab_kernels/<app package>/``."""
    return env.wenv_path(host) / "cython"
