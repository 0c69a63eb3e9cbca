"""Whether a worker map is installed, answered here without connecting: each remote host by what its
last INSTALL recorded on this machine (written by the installs over SSH in test_install_remote.py),
this machine's part by its own install state. The records here are the ones the same install writes."""
from __future__ import annotations

import platform

import pytest

from agilab_panel import AGI, AgiEnv
from agilab_panel.install import STATE_SCHEMA
from agilab_panel.installed import check_workers_install
from agilab_panel.remote.checks import HostFacts
from agilab_panel.remote.install import _plan
from agilab_panel.remote.status import check_remote_install, record_failed_checks, record_host_install

A, B = "192.0.2.10", "192.0.2.11"
DASK = AGI.DASK_MODE


def record(env: AgiEnv, host: str, modes: int = DASK, **changes: object) -> None:
    """What INSTALL records here once every step passed on ``host`` (``changes`` on top)."""
    facts = HostFacts(host, "worker", "/home/worker", f"{platform.system()} {platform.machine()}",
                      "/usr/bin/python3", "3.11.2", "", "/srv/share")
    plan = _plan(env, modes, facts)
    state = {"schema": STATE_SCHEMA, "ok": True, "host": host, "modes_enabled": modes, "steps": dict(plan.steps)}
    record_host_install(env, host, {**state, **changes}, facts)


@pytest.fixture
def env() -> AgiEnv:
    return AgiEnv("minimal_app", verbose=0)


def test_remote_hosts_recorded_complete_are_installed_without_this_machine(env: AgiEnv) -> None:
    record(env, A)
    assert check_workers_install(env, {A: 1}, DASK) is None
    missing = check_workers_install(env, {A: 1, B: 2}, DASK)
    assert missing == f"app 'minimal_app' on host {B} is not installed: run INSTALL"
    record(env, B)
    assert check_workers_install(env, {A: 1, B: 2}, DASK) is None
    # this machine's part counts when the map names it (named as the map names it), or when the mode
    # runs here (no cluster bit)
    assert "on host 127.0.0.1 is not installed" in check_workers_install(env, {"127.0.0.1": 1, A: 1}, DASK)
    assert "on host localhost is not installed" in check_workers_install(env, {A: 1}, 0)


def test_a_record_that_no_longer_serves_says_why(env: AgiEnv) -> None:
    record(env, A, failed_step="runtime", ok=False)
    assert check_remote_install(env, DASK, A).endswith("the last INSTALL failed at step 'runtime': run INSTALL")
    record(env, A)
    assert check_remote_install(env, DASK | AGI.CYTHON_MODE, A).endswith(
        "did not prepare cython: run INSTALL with cython enabled")
    record(env, A, steps={"uv": "?", "venv": "?", "runtime": "?", "app": "?"})
    assert "out of date (the uv sent to the host changed)" in check_remote_install(env, DASK, A)
    record(env, A)
    record_failed_checks(env, A, f"host {A}: unreachable")  # the environment there stays, the INSTALL failed
    assert check_remote_install(env, DASK, A).endswith("the last INSTALL failed at step 'ssh': run INSTALL")
