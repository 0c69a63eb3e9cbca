"""A cluster run across the two simulated hosts: Dask workers started over SSH from each host's worker
environment, TLS between all parts, partitions pinned as planned, the same output as mode 0, and
nothing left running on any host afterwards (each host's process table is read)."""
from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pandas as pd
import pytest

from agilab_panel import AGI, AgiEnv, EventBus, RunRequest
from agilab_panel.events import PartitionEvent, WorkerEvent
from agilab_panel.execute.cluster import scheduler_interface
from agilab_panel.execute.result import RunError
from agilab_panel.settings import AppSettings

from .simhosts import SimHosts, listening
from .test_install_remote import APP, MODES, until_no_processes

pytestmark = pytest.mark.integration
ARGS = {"n_aircraft": 6, "rows_per_file": 2000}


@pytest.fixture
def cluster_home(ssh_env: SimHosts, installed, use_home) -> Iterator[SimHosts]:
    """The app installed here and on both hosts. The hosts' users differ from this one while the
    simulated hosts share this disk: what the run creates in the share must be writable by all (umask 0)."""
    use_home(installed(APP, MODES))
    os.environ["AGI_CLUSTER_SHARE"] = str(ssh_env.share)
    old = os.umask(0)
    try:
        env = AgiEnv(APP, verbose=0)
        settings = AppSettings(env)
        settings.cluster.ssh_key_path = str(ssh_env.client_key)
        settings.save_cluster("ssh_key_path")
        workers = {h.address: 1 for h in ssh_env.hosts}
        result = asyncio.run(AGI.install(env, workers=workers, modes_enabled=MODES, events=EventBus()))
        assert result.ok, result.errors
        yield ssh_env
    finally:
        os.umask(old)


def frame(path: str) -> pd.DataFrame:
    return pd.read_parquet(path).sort_values("aircraft").reset_index(drop=True)


async def test_run_across_two_hosts_equals_mode_0_and_leaves_nothing(cluster_home: SimHosts) -> None:
    env = AgiEnv(APP, verbose=0)
    workers = {h.address: 1 for h in cluster_home.hosts}
    local = await AGI.run(env, RunRequest(params=ARGS, workers=workers, mode=0), events=EventBus())
    expected = frame(local.output)
    pooled = await AGI.run(env, RunRequest(params=ARGS, workers=workers, mode=AGI.DASK_MODE | AGI.POOL_MODE),
                           events=EventBus())  # the pool path inside remote workers: they may start processes
    pd.testing.assert_frame_equal(frame(pooled.output), expected)
    bus = EventBus()
    remote = await AGI.run(env, RunRequest(params=ARGS, workers=workers, mode=AGI.DASK_MODE), events=bus,
                           keep_cluster=False)
    pd.testing.assert_frame_equal(frame(remote.output), expected)
    slots = {f"{h.address}-0" for h in cluster_home.hosts}
    assert {p.worker for p in remote.partitions} == slots  # pinned to both hosts' workers, as planned
    assert {e.worker for e in bus.history if isinstance(e, PartitionEvent) and e.state == "done"} == slots
    assert any("tls://" in line.text for line in bus.logs())  # the cluster spoke TLS
    assert await until_no_processes(cluster_home) == []


async def test_a_host_that_goes_down_ends_the_run_naming_it(cluster_home: SimHosts) -> None:
    env = AgiEnv(APP, verbose=0)
    a, b = cluster_home.hosts
    workers = {a.address: 1, b.address: 1}
    bus = EventBus()
    crashed = asyncio.Event()

    def on_event(event: object) -> None:
        if isinstance(event, PartitionEvent) and event.state == "started" and event.worker == f"{b.address}-0":
            if not crashed.is_set():
                crashed.set()
                cluster_home.crash(b)

    bus.add_listener(on_event)
    slow = {"n_aircraft": 8, "rows_per_file": 500_000}
    try:
        with pytest.raises(RunError) as err:
            await AGI.run(env, RunRequest(params=slow, workers=workers, mode=AGI.DASK_MODE), events=bus,
                          keep_cluster=False)
    finally:
        cluster_home.restart_sshd(b)
    assert crashed.is_set()
    assert f"{b.address}-0" in str(err.value) and err.value.partition
    assert await until_no_processes(cluster_home) == []  # nothing left on the host that stayed up either


_CONTROLLER = """
import asyncio, json, sys
from agilab_panel import AGI, AgiEnv, EventBus, RunRequest
async def main():
    env = AgiEnv(sys.argv[1], verbose=0)
    request = RunRequest(params=json.loads(sys.argv[2]), workers=json.loads(sys.argv[3]), mode=AGI.DASK_MODE,
                         scheduler=sys.argv[4] or None)
    await AGI.run(env, request, events=EventBus(), keep_cluster=True)
    print("ready", flush=True)
    await asyncio.sleep(600)
asyncio.run(main())
"""


@pytest.mark.parametrize("scheduler_on_b", [False, True], ids=["scheduler here", "scheduler on a host"])
async def test_remote_workers_end_when_their_controller_is_killed(cluster_home: SimHosts, scheduler_on_b: bool) -> None:
    import json
    import signal
    import sys

    b = cluster_home.hosts[1]
    workers = {h.address: 1 for h in cluster_home.hosts}
    scheduler = f"{b.address}:8786" if scheduler_on_b else ""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", _CONTROLLER, APP, json.dumps(ARGS),
                                                json.dumps(workers), scheduler, stdout=asyncio.subprocess.PIPE)
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 600)
        assert line.strip() == b"ready"
        for host in cluster_home.hosts:  # a kept cluster: each host runs its worker
            assert any("distributed.cli.dask_worker" in p for p in host.processes()), host.processes()
            assert listening(host.pids()) == {host.address, "127.0.0.1"}  # its own address; HTTP on loopback
        assert any("distributed.cli.dask_scheduler" in p for p in b.processes()) == scheduler_on_b
        here = listening({proc.pid})
        if scheduler_on_b:  # nothing of the cluster listens in the controlling process
            assert here <= {"127.0.0.1"}
        else:  # the scheduler: the hosts' side only
            assert here <= {cluster_home.gateway, "127.0.0.1"} and cluster_home.gateway in here
        proc.send_signal(signal.SIGKILL)  # no chance to stop anything itself
        await proc.wait()
        assert await until_no_processes(cluster_home) == []
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_hosts_all_remote_need_no_local_install(ssh_env: SimHosts) -> None:
    env = AgiEnv(APP, verbose=0)  # a fresh home: nothing installed on this machine
    settings = AppSettings(env)
    settings.cluster.ssh_key_path = str(ssh_env.client_key)
    settings.save_cluster("ssh_key_path")
    workers = {h.address: 1 for h in ssh_env.hosts}
    old = os.umask(0)
    try:
        installed = await AGI.install(env, workers=workers, modes_enabled=MODES, events=EventBus())
        assert installed.ok, installed.errors
        assert not env.wenv_path("localhost").exists()
        # as a benchmark of the Dask mode (warm-up and timed run): that path asks for no local install either
        result = await AGI.run(env, RunRequest(params=ARGS, workers=workers, mode=[AGI.DASK_MODE], repeats=1),
                               events=EventBus(), keep_cluster=False)
    finally:
        os.umask(old)
    assert [r.rows for r in result.runs] == [ARGS["n_aircraft"]]
    assert await until_no_processes(ssh_env) == []


async def test_a_cancelled_run_leaves_nothing_on_the_hosts(cluster_home: SimHosts) -> None:
    env = AgiEnv(APP, verbose=0)
    workers = {h.address: 1 for h in cluster_home.hosts}
    bus = EventBus()
    started = asyncio.Event()
    bus.add_listener(lambda e: started.set() if isinstance(e, PartitionEvent) and e.state == "started" else None)
    run = asyncio.create_task(AGI.run(env, RunRequest(params={"n_aircraft": 8, "rows_per_file": 500_000},
                                                      workers=workers, mode=AGI.DASK_MODE), events=bus))
    await asyncio.wait_for(started.wait(), 600)
    assert all(h.pids() for h in cluster_home.hosts)  # each host runs its worker now
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert await until_no_processes(cluster_home) == []


async def test_a_host_whose_install_did_not_complete_is_named(cluster_home: SimHosts) -> None:
    import json

    b = cluster_home.hosts[1]
    state = b.home / ".agilab" / "wenv" / APP / "install_state.json"
    saved = state.read_text()
    state.write_text(json.dumps({**json.loads(saved), "ok": False}))
    try:
        with pytest.raises(RunError, match=f"host {b.address}: app 'flight_telemetry' is not installed there"):
            await AGI.run(AgiEnv(APP, verbose=0), RunRequest(params=ARGS, workers={h.address: 1 for h in cluster_home.hosts},
                                                             mode=AGI.DASK_MODE), events=EventBus(), keep_cluster=False)
    finally:
        state.write_text(saved)
    assert await until_no_processes(cluster_home) == []


async def test_a_share_the_hosts_cannot_write_is_named_before_any_worker_starts(cluster_home: SimHosts) -> None:
    share = cluster_home.share
    mode = share.stat().st_mode
    share.chmod(0o755)  # this machine's user still writes there; the hosts' users no longer can
    bus = EventBus()
    request = RunRequest(params=ARGS, workers={h.address: 1 for h in cluster_home.hosts}, mode=AGI.DASK_MODE)
    refused = rf"host .*: the share {share} is not writable \(Permission denied\) for user"
    try:
        with pytest.raises(RunError, match=refused):
            await AGI.run(AgiEnv(APP, verbose=0), request, events=bus, keep_cluster=False)
    finally:
        share.chmod(mode)
    assert not [e for e in bus.history if isinstance(e, PartitionEvent)]  # no partition ran anywhere
    assert await until_no_processes(cluster_home) == []


async def test_certificate_files_from_the_settings_secure_the_cluster(cluster_home: SimHosts, tmp_path) -> None:
    import re
    import ssl

    from .certs import make_certificate

    files = make_certificate(tmp_path)
    env = AgiEnv(APP, verbose=0)
    settings = AppSettings(env)
    settings.cluster.tls_ca_file = settings.cluster.tls_cert_file = str(files["cert"])
    settings.cluster.tls_key_file = str(files["key"])
    settings.save_cluster("tls_ca_file", "tls_cert_file", "tls_key_file")
    bus = EventBus()
    try:
        result = await AGI.run(env, RunRequest(params=ARGS, workers={h.address: 1 for h in cluster_home.hosts},
                                               mode=AGI.DASK_MODE), events=bus, keep_cluster=True)
        assert result.rows > 0
        (address,) = {m[1] for line in bus.logs() if (m := re.search(r"Dask cluster \w+ at tls://(\S+)", line.text))}
        host, _, port = address.rpartition(":")
        context = ssl.create_default_context(cafile=str(files["cert"]))
        context.check_hostname = False
        context.load_cert_chain(str(files["cert"]), str(files["key"]))
        reader, writer = await asyncio.open_connection(host.strip("[]"), int(port), ssl=context)
        presented = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        assert presented == ssl.PEM_cert_to_DER_cert(files["cert"].read_text())  # the scheduler shows our certificate
    finally:
        await AGI.shutdown()
    assert await until_no_processes(cluster_home) == []


async def test_a_map_mixing_this_machine_with_a_host_equals_mode_0(cluster_home: SimHosts, live_children) -> None:
    env = AgiEnv(APP, verbose=0)
    a = cluster_home.hosts[0]
    workers = {"127.0.0.1": 1, a.address: 1}
    expected = frame((await AGI.run(env, RunRequest(params=ARGS, workers=workers, mode=0), events=EventBus())).output)
    before = live_children()  # the warm runner of mode 0 stays; the cluster's processes must not
    bus = EventBus()
    mixed = await AGI.run(env, RunRequest(params=ARGS, workers=workers, mode=AGI.DASK_MODE), events=bus,
                          keep_cluster=False)
    pd.testing.assert_frame_equal(frame(mixed.output), expected)
    assert {p.worker for p in mixed.partitions} == {"127.0.0.1-0", f"{a.address}-0"}  # both did their share
    joined = {e.worker: e.address for e in bus.history if isinstance(e, WorkerEvent) and e.state == "joined"}
    assert joined["127.0.0.1-0"].startswith(f"tls://{cluster_home.gateway}:")  # reachable from the host, over TLS
    assert joined[f"{a.address}-0"].startswith(f"tls://{a.address}:")
    assert await until_no_processes(cluster_home) == []
    assert live_children() <= before


def test_the_scheduler_listens_on_the_route_to_the_hosts_and_says_when_one_is_elsewhere(sim_hosts: SimHosts) -> None:
    a, b = sim_hosts.hosts
    assert scheduler_interface([a.address, b.address]) == (sim_hosts.gateway, None)
    address, warning = scheduler_interface([a.address, "127.0.0.2"])  # reached through loopback, not the bridge
    assert address == sim_hosts.gateway
    assert "127.0.0.2 via 127.0.0.1" in warning


async def test_a_scheduler_named_on_a_host_is_started_there_and_ended(cluster_home: SimHosts, live_children) -> None:
    env = AgiEnv(APP, verbose=0)
    a, b = cluster_home.hosts
    workers = {"127.0.0.1": 1, a.address: 1}  # this machine and one host; the scheduler on the other
    installed = await AGI.install(env, scheduler=f"{b.address}:8786", workers=workers, modes_enabled=MODES,
                                  events=EventBus())
    assert installed.ok and list(installed.hosts) == ["127.0.0.1", a.address, b.address]  # the scheduler's host too
    expected = frame((await AGI.run(env, RunRequest(params=ARGS, workers=workers, mode=0), events=EventBus())).output)
    before = live_children()
    bus = EventBus()
    during: dict[str, object] = {}

    def on_event(event: object) -> None:
        if isinstance(event, PartitionEvent) and event.state == "started" and not during:
            during.update(processes=b.processes(), listening=listening(b.pids()))

    bus.add_listener(on_event)
    request = RunRequest(params=ARGS, workers=workers, scheduler=f"{b.address}:8786", mode=AGI.DASK_MODE)
    result = await AGI.run(env, request, events=bus, keep_cluster=False)
    pd.testing.assert_frame_equal(frame(result.output), expected)
    assert any("distributed.cli.dask_scheduler" in p for p in during["processes"]), during  # type: ignore[union-attr]
    assert during["listening"] == {b.address, "127.0.0.1"}  # its own address; HTTP on its loopback
    assert any(line.text == f"Dask scheduler started on {b.address} at tls://{b.address}:8786" for line in bus.logs())
    assert {p.worker for p in result.partitions} == {"127.0.0.1-0", f"{a.address}-0"}
    assert await until_no_processes(cluster_home) == []  # the scheduler's host too
    assert live_children() <= before
