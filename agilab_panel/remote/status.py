"""What INSTALL last did on each remote host, as recorded on this machine, and whether it still serves.

A page asks "is this worker map installed?" on every refresh; asking the hosts would open an SSH
connection each time. So every write of a host's ``install_state.json`` (over SFTP) is mirrored here,
in ``<wenv root>/<host>/remote_install_state.json``, with the facts the install learnt of the host
(home, Python, system). The check reads that record and compares its step fingerprints with those the
same install would compute now: the app, agilab_panel, the engine's package versions or the uv sent
over changed -> out of date. Files removed on the host itself since are found by the next INSTALL (its
checks run every time) or the run, not here.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..env import AgiEnv
from ..fsutil import atomic_write_text
from ..modes import CYTHON_MODE, RAPIDS_MODE
from .checks import HostFacts
from .errors import RemoteHostError

__all__ = ["RECORD_FILE", "check_remote_install", "record_failed_checks", "record_host_install",
           "remote_install_record"]

RECORD_FILE = "remote_install_state.json"
_STEP_BIT = {"cython": CYTHON_MODE, "rapids": RAPIDS_MODE}
_CHANGED = {
    "uv": "the uv sent to the host changed",
    "venv": "the host's Python changed",
    "runtime": "the engine's package versions or agilab_panel changed",
    "app": "the app changed",
    "cython": "the app's Cython sources changed",
    "rapids": "the app's RAPIDS dependencies changed",
}


def _path(env: AgiEnv, host: str) -> Path:
    return env.wenv_path(host) / RECORD_FILE


def record_host_install(env: AgiEnv, host: str, state: Mapping[str, Any], facts: HostFacts) -> None:
    """Mirror the state just written on ``host`` here, with the host's facts (atomically)."""
    path = _path(env, host)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({**state, "facts": dataclasses.asdict(facts)}, indent=2))


def record_failed_checks(env: AgiEnv, host: str, error: str) -> None:
    """The host's checks failed (unreachable, key refused, ...): its last INSTALL is a failed one now,
    as the page has just shown; the environment on the host is untouched, so the next INSTALL that
    reaches it only checks and records it again."""
    record = remote_install_record(env, host)
    if record is not None:
        atomic_write_text(_path(env, host), json.dumps({**record, "ok": False, "failed_step": "ssh", "error": error},
                                                       indent=2))


def remote_install_record(env: AgiEnv, host: str) -> dict[str, Any] | None:
    """The last install state of ``host`` as recorded here (None when none was, or it is unreadable)."""
    from ..install_check import STATE_SCHEMA

    try:
        record = json.loads(_path(env, host).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("schema") == STATE_SCHEMA else None


def check_remote_install(env: AgiEnv, modes_enabled: int, host: str) -> str | None:
    """None when the last INSTALL of remote ``host`` completed and still serves these modes, as far as
    this machine can tell without connecting; else why INSTALL must run again."""
    from .install import _plan

    where = f"app {env.app!r} on host {host}"
    record = remote_install_record(env, host)
    if record is None:
        return f"{where} is not installed: run INSTALL"
    if record.get("ok") is not True:
        failed = record.get("failed_step")
        why = f"the last INSTALL failed at step '{failed}'" if failed else "an INSTALL is running or was interrupted"
        return f"{where}: {why}: run INSTALL"
    installed = int(record.get("modes_enabled", 0)) & (CYTHON_MODE | RAPIDS_MODE)
    lacking = " and ".join(name for name, bit in _STEP_BIT.items() if modes_enabled & bit & ~installed)
    if lacking:
        return f"{where}: the last install did not prepare {lacking}: run INSTALL with {lacking} enabled"
    try:
        plan = _plan(env, installed, HostFacts(**record["facts"]))
    except (KeyError, TypeError, RemoteHostError):
        return f"{where}: the record of its last INSTALL is incomplete: run INSTALL"
    unused = {step for step, bit in _STEP_BIT.items() if not modes_enabled & bit}
    saved = record.get("steps", {})
    changed = next((s for s in plan.steps if s != "check" and s not in unused and saved.get(s) != plan.steps[s]), None)
    return f"{where} is out of date ({_CHANGED[changed]}): run INSTALL" if changed else None
