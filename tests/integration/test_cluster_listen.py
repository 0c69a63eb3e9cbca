"""What a local Dask cluster opens listens on loopback; a scheduler beyond loopback only when asked for."""
from __future__ import annotations

import ipaddress
import os
import socket

import psutil
import pytest

from agilab_panel import AGI, AgiEnv, EventBus, RunRequest
from agilab_panel.events import LogLine
from agilab_panel.execute.cluster import EXPOSE_SCHEDULER_ENV, WorkerCluster
from agilab_panel.execute.result import RunError
from agilab_panel.install import worker_python

pytestmark = pytest.mark.integration
WORKERS = {"127.0.0.1": 2}
PARAMS = {"partitions": 2, "size": 50}


def _listening(pids: set[int]) -> list[tuple[int, str, int]]:
    return [(c.pid, c.laddr.ip, c.laddr.port) for c in psutil.net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.pid in pids]


def _exposed(sockets: list[tuple[int, str, int]]) -> list[tuple[int, str, int]]:
    return [s for s in sockets if not ipaddress.ip_address(s[1].split("%")[0]).is_loopback]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        return sock.getsockname()[1]


@pytest.fixture
def env(installed, use_home, monkeypatch) -> AgiEnv:
    use_home(installed("minimal_app"))
    monkeypatch.delenv(EXPOSE_SCHEDULER_ENV, raising=False)
    return AgiEnv("minimal_app", verbose=0)


@pytest.mark.parametrize("persistent", [False, True], ids=["in-process scheduler", "kept cluster"])
async def test_a_local_cluster_listens_on_loopback_only(env, persistent):
    ours = set(_listening({os.getpid()}))  # what this process listened on before (another test's proxy)
    cluster = WorkerCluster(env, worker_python(env), WORKERS, persistent=persistent)
    await cluster.start()
    try:
        pids = {p.pid for p in cluster.procs.values()} | (set() if persistent else {os.getpid()})
        sockets = [s for s in _listening(pids) if s not in ours]
        # every process (scheduler, each worker) listens twice: its comm port and its HTTP pages
        assert sorted(pid for pid, _, _ in sockets) == sorted([*pids, *pids])
        assert _exposed(sockets) == []
        info = await cluster.client.scheduler.identity()
        http_ports = {w["services"]["dashboard"] for w in info["workers"].values()}
        assert len(http_ports) == WORKERS["127.0.0.1"]  # the workers' HTTP pages exist, on loopback
        assert http_ports <= {port for _, _, port in sockets}
    finally:
        await cluster.close()


async def test_a_scheduler_on_every_interface_is_refused_without_the_opt_in(env, live_children):
    port = _free_port()
    before = live_children()
    request = RunRequest(params=PARAMS, scheduler=f"0.0.0.0:{port}", workers=WORKERS, mode=AGI.DASK_MODE)
    with pytest.raises(RunError, match=f"{EXPOSE_SCHEDULER_ENV}=1 to accept the risk") as info:
        await AGI.run(env, request, events=EventBus())
    await AGI.shutdown()
    assert "run code on this machine" in str(info.value) and "\n" not in str(info.value)
    assert live_children() == before
    assert not [c for c in psutil.net_connections("inet") if c.status == psutil.CONN_LISTEN and c.laddr.port == port]


async def test_the_opt_in_exposes_the_scheduler_port_alone_and_warns(env, monkeypatch):
    monkeypatch.setenv(EXPOSE_SCHEDULER_ENV, "1")
    port = _free_port()
    bus = EventBus()
    events: list[object] = []
    bus.add_listener(events.append)
    request = RunRequest(params=PARAMS, scheduler=f"0.0.0.0:{port}", workers=WORKERS, mode=AGI.DASK_MODE)
    ours = set(_listening({os.getpid()}))  # what this process listened on before (another test's proxy)
    try:
        result = await AGI.run(env, request, events=bus, keep_cluster=True)
        assert result.rows == 2 and result.cluster == "started"
        children = {p.pid for p in psutil.Process().children(recursive=True)}
        sockets = [s for s in _listening(children | {os.getpid()}) if s not in ours]
        assert _exposed(sockets) == [(os.getpid(), "0.0.0.0", port)]  # the scheduler's comm, nothing else
    finally:
        await AGI.shutdown()
    warnings = [e.text for e in events if isinstance(e, LogLine) and e.level == "WARNING"]
    assert any("every interface" in w and "run code on this machine" in w for w in warnings), warnings


async def test_a_scheduler_address_of_another_machine_that_does_not_answer_is_refused(env, live_children):
    before = live_children()
    request = RunRequest(params=PARAMS, scheduler="scheduler.invalid:8786", workers=WORKERS, mode=AGI.DASK_MODE)
    with pytest.raises(RunError, match="scheduler.invalid is not this machine"):
        await AGI.run(env, request, events=EventBus())
    await AGI.shutdown()
    assert live_children() == before


async def test_the_service_cluster_listens_on_loopback_only(env):
    from agilab_panel.service import queue as q
    from agilab_panel.service.state import read_state

    paths = q.ServicePaths.of(env.share, env.app)
    assert read_state(paths) is None, "a service of an earlier test is still running"
    started = await AGI.serve(env, "start", workers=WORKERS)
    try:
        assert started["started"] is True, started["message"]
        cluster_dir = read_state(paths).cluster_dir
        pids = {p.info["pid"] for p in psutil.process_iter(["pid", "cmdline", "status"])
                if p.info["status"] != psutil.STATUS_ZOMBIE and cluster_dir in " ".join(p.info["cmdline"] or [])}
        sockets = _listening(pids)
        assert len(pids) == 3 and sorted(pid for pid, _, _ in sockets) == sorted([*pids, *pids])
        assert _exposed(sockets) == []
    finally:
        await AGI.serve(env, "stop", stop_timeout=5)
