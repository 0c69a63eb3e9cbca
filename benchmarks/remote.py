"""Remote hosts over SSH, in one run, on two simulated hosts made here (network namespaces, each with
its own sshd, user and home: ``tests/remote/simhosts.py``), torn down at the end whatever happens.

1. INSTALL per host, cold (both hosts at once, every step forced; the wheels are built here once) and
   warm (each host alone, nothing changed: the checks and one state read); goal: warm under 3 s per host.
2. Run time of a Dask run (the cluster bit) on 2 simulated hosts (1 worker each) against 1 host
   (1 worker), side by side, for flight_telemetry and mandelbrot at their default sizes: one untimed
   warm-up run each, then ``--repeat`` timed runs on the warm cluster (min and median printed).
   Both simulated hosts share this machine's cores (2 on the development machine), and so does the
   engine: 2 hosts can at best use what the machine has left, and near 1x is what a loaded machine gives.

Needs root (namespaces, sshd, users); without it, it says so in one line and exits 0.

    python benchmarks/remote.py [--apps flight_telemetry,mandelbrot] [--repeat 2]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from _common import claim, load, print_claims, use_temp_home  # noqa: E402

from agilab_panel import AGI, AgiEnv, EventBus, RunRequest  # noqa: E402
from agilab_panel.settings import AppSettings  # noqa: E402
from tests.remote.simhosts import SimHosts, unavailable  # noqa: E402

MODES = AGI.POOL_MODE | AGI.CYTHON_MODE | AGI.DASK_MODE  # what the remote tests install: every step runs
WARM_GOAL = 3.0


def point_ssh_at(sim: SimHosts) -> None:
    """This run's SSH settings: the hosts' known_hosts and a per-address user (each host has its own)."""
    config = sim.workdir / "ssh_config"
    config.write_text("".join(f"Host {h.address}\n  User {h.user}\n" for h in sim.hosts))
    os.environ.update(AGILAB_SSH_KNOWN_HOSTS=str(sim.known_hosts), AGILAB_SSH_CONFIG=str(config),
                      AGI_CLUSTER_SHARE=str(sim.share))


def env_for(app: str, sim: SimHosts) -> AgiEnv:
    env = AgiEnv(app, verbose=0)
    settings = AppSettings(env)
    settings.cluster.ssh_key_path = str(sim.client_key)
    settings.save_cluster("ssh_key_path")
    return env


async def installs(app: str, sim: SimHosts) -> list[str]:
    env = env_for(app, sim)
    both = {h.address: 1 for h in sim.hosts}
    start = time.perf_counter()
    cold = await AGI.install(env, workers=both, modes_enabled=MODES, events=EventBus(), force=True)
    wall = time.perf_counter() - start
    if not cold.ok:
        raise SystemExit(f"cold install of {app} failed: {cold.errors}")
    lines = [f"{app}: cold INSTALL on both hosts at once {wall:.1f} s  [{load()}]"]
    warm: dict[str, float] = {}
    for host in sim.hosts:
        steps = cold.hosts[host.address].steps
        lines.append(f"  {host.address} cold: {sum(s.seconds for s in steps):6.1f} s  "
                     + ", ".join(f"{s.name} {s.seconds:.1f}" for s in steps))
        for _ in range(3):  # a source file edited meanwhile (a shared tree) makes one re-install do work
            start = time.perf_counter()
            again = await AGI.install(env, workers={host.address: 1}, modes_enabled=MODES, events=EventBus())
            warm[host.address] = time.perf_counter() - start
            if not again.ok:
                raise SystemExit(f"warm install of {app} on {host.address} failed: {again.errors}")
            redone = [s.name for s in again.hosts[host.address].steps[1:] if not s.skipped]
            if not redone:
                break
            lines.append(f"  {host.address} re-install redid {', '.join(redone)} (sources changed meanwhile): "
                         f"{warm[host.address]:.2f} s, not counted")
        else:
            raise SystemExit(f"{app}: every re-install on {host.address} redid work: the sources keep changing")
        lines.append(f"  {host.address} warm (alone, nothing changed): {warm[host.address]:.2f} s")
    worst = max(warm.values())
    claim(f"{app} re-install with nothing changed, per simulated host (cold {wall:.1f} s for both at once)",
          f"{worst:.2f} s worst of {len(warm)} ({load()})", f"< {WARM_GOAL:.0f} s per host", worst < WARM_GOAL)
    return lines


async def timed_run(env: AgiEnv, workers: dict[str, int], repeat: int) -> dict:
    request = RunRequest(workers=workers, mode=[AGI.DASK_MODE], verbose=0, repeats=repeat)
    result = await AGI.run(env, request, events=EventBus())
    row = {int(m): r for m, r in result.table.items()}[AGI.DASK_MODE]
    if "error" in row:
        raise SystemExit(f"{env.app} on {list(workers)}: {row['error']}")
    return row


async def runs(app: str, sim: SimHosts, repeat: int) -> list[str]:
    env = env_for(app, sim)
    a, b = sim.hosts
    one = await timed_run(env, {a.address: 1}, repeat)
    two = await timed_run(env, {a.address: 1, b.address: 1}, repeat)
    await AGI.shutdown()  # the warm cluster (and its remote workers) ends before the next app
    ratio = one["seconds"] / two["seconds"]
    cores = os.cpu_count()
    lines = [f"{app}: Dask run, 1 host (1 worker) min {one['seconds']:.2f} s median {one['median']:.2f} s; "
             f"2 hosts (1 worker each) min {two['seconds']:.2f} s median {two['median']:.2f} s; x{ratio:.2f}  "
             f"[{load()}; both simulated hosts and the engine share this machine's {cores} cores]"]
    claim(f"{app}, Dask on 2 simulated hosts vs 1 (1 worker each; both share this machine's {cores} cores)",
          f"{one['seconds']:.2f} s → {two['seconds']:.2f} s, x{ratio:.2f} ({load()})",
          ">= 1.0x (2 cores shared by both hosts, not 2 machines)", ratio >= 1.0)
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", default="flight_telemetry,mandelbrot")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per worker map after the warm-up")
    ns = parser.parse_args()
    reason = unavailable()
    if reason:
        print(f"benchmarks/remote.py not run: {reason}")
        return
    use_temp_home()
    sim = SimHosts(2)
    old_umask = os.umask(0)  # the hosts' users differ from this one and share this disk: the share's files are for all
    try:
        sim.start()
        point_ssh_at(sim)
        apps = [a.strip() for a in ns.apps.split(",")]
        for app in apps:
            print("\n".join(await installs(app, sim)), flush=True)
        for app in apps:
            print("\n".join(await runs(app, sim, ns.repeat)), flush=True)
    finally:
        await AGI.shutdown()
        os.umask(old_umask)
        sim.close()
    print_claims()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill ends the run through the teardown too
    asyncio.run(main())
