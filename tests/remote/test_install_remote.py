"""INSTALL on two simulated hosts over SSH: a cold install builds each host's environment from its own
Python (uv sent over SFTP, wheels built here), streams every command's output tagged with its host;
a re-install with nothing changed runs only the checks."""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from agilab_panel import AGI, AgiEnv
from agilab_panel.events import EventBus, LogLine, StepEvent
from agilab_panel.installed import check_workers_install
from agilab_panel.remote.status import RECORD_FILE
from agilab_panel.settings import AppSettings

from .simhosts import SimHosts

pytestmark = pytest.mark.integration

APP = "flight_telemetry"
MODES = AGI.POOL_MODE | AGI.CYTHON_MODE | AGI.DASK_MODE


def workers(sim: SimHosts) -> dict[str, int]:
    return {h.address: 1 for h in sim.hosts}


async def install(sim: SimHosts, **kw) -> tuple[object, EventBus]:
    env = AgiEnv(APP, verbose=0)
    settings = AppSettings(env)
    settings.cluster.ssh_key_path = str(sim.client_key)
    settings.save_cluster("ssh_key_path")
    bus = EventBus()
    result = await AGI.install(env, workers=workers(sim), modes_enabled=MODES, events=bus, **kw)
    return result, bus


async def until_no_processes(sim: SimHosts) -> list[str]:
    for _ in range(600):  # an SSH session's processes end shortly after it closes
        left = [p for h in sim.hosts for p in h.processes()]
        if not left:
            return []
        await asyncio.sleep(0.1)
    return left


async def test_cold_then_warm_install_on_two_hosts(ssh_env: SimHosts) -> None:
    result, bus = await install(ssh_env, force=True)  # every step, whatever other tests installed before
    assert result.ok, result.errors
    for host in ssh_env.hosts:
        done = result.hosts[host.address]
        assert [s.name for s in done.steps] == ["ssh", "uv", "venv", "runtime", "app", "cython", "check"]
        assert not any(s.skipped for s in done.steps), done.steps
        python = host.home / ".agilab" / "wenv" / APP / ".venv" / "bin" / "python"
        assert python.is_file() and python.lstat().st_uid == host.uid  # made by the host's own user
        kernels = list((host.home / ".agilab" / "wenv" / APP / "cython" / "agilab_kernels" / APP).glob("*.so"))
        assert [k.name.split(".")[0] for k in kernels] == ["flight_kernel"]
        streamed = [e for e in bus.history if isinstance(e, LogLine) and e.host == host.address and e.stream != "log"]
        assert {e.step for e in streamed} >= {"uv", "venv", "runtime", "app", "cython", "check"}
        assert any(e.step == "check" and "imported flight_telemetry.worker" in e.text for e in streamed)
    assert await until_no_processes(ssh_env) == []
    env, hosts = AgiEnv(APP, verbose=0), workers(ssh_env)
    assert check_workers_install(env, hosts, MODES) is None  # recorded here: no SSH to answer it
    for host in ssh_env.hosts:  # INSTALL says when a host's Python is not the engine's (Dask's workers will)
        version = result.hosts[host.address].steps[0].detail.split("Python ")[1].split(",")[0]
        warned = [line.text for line in bus.logs() if line.host == host.address and "Mismatched versions" in line.text]
        assert len(warned) == (version != "{}.{}.{}".format(*sys.version_info[:3])), (version, warned)
    (env.wenv_path(ssh_env.hosts[0].address) / RECORD_FILE).unlink()
    assert f"on host {ssh_env.hosts[0].address} is not installed" in check_workers_install(env, hosts, MODES)

    again, bus = await install(ssh_env)
    assert again.ok, again.errors
    for host in ssh_env.hosts:
        steps = again.hosts[host.address].steps
        assert steps[0].name == "ssh" and not steps[0].skipped
        assert all(s.skipped for s in steps[1:]), steps
    commands = [e.text for e in bus.history if isinstance(e, LogLine) and " $ " in e.text]
    assert commands == []  # nothing beyond the checks ran on the hosts
    assert [e.state for e in bus.history if isinstance(e, StepEvent) and e.step == "ssh"].count("done") == 2
    assert check_workers_install(env, hosts, MODES) is None  # the record is back, from the host's own state


async def test_a_host_that_fails_its_checks_does_not_stop_the_other(ssh_env: SimHosts, tmp_path: Path) -> None:
    a, b = ssh_env.hosts
    known = Path(os.environ["AGILAB_SSH_KNOWN_HOSTS"])
    known.write_text("".join(line + "\n" for line in known.read_text().splitlines() if not line.startswith(a.address)))
    result, bus = await install(ssh_env)
    assert not result.ok
    assert result.hosts[a.address].error.startswith(f"host {a.address}: host key unknown")
    assert result.hosts[b.address].ok
    assert [s.name for s in result.hosts[a.address].steps] == ["ssh"]
    reason = check_workers_install(AgiEnv(APP, verbose=0), workers(ssh_env), MODES)
    assert reason == f"app {APP!r} on host {a.address} is not installed: run INSTALL"  # b is, a never was here
