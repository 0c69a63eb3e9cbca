"""How costs grow with the work: one table per axis, with the cost per unit of work.

1. Partitions 10 → 100 → 1,000 → 10,000 (minimal_app, tiny partitions, 2 slots): building the plan
   (the app's partitions, balancing, saving), and a run's overhead per partition in mode 0, pool and
   Dask on a warm cluster (each run after an untimed one that warms it). Goal: per-partition overhead
   within 2x from 100 to 10,000, and under 2 ms on a warm cluster.
2. Worker map 1 → 100 → 10,000 hosts of 2 slots, one partition per slot (plan only: no host is
   contacted): balance, save and load the plan. Goal: linear (cost per host within 2x from 100 to
   10,000), under 2 s for 10,000 hosts; an absurd map (1,000,000 slots) refused with a clear error.

3. Data: flight_telemetry 16 → 64 → 256 aircraft (one file and one partition each), every mode
   (mode 0, pool, Cython, Dask on a warm cluster), seconds per aircraft; the files are generated once
   per size, before timing. Goal: seconds per aircraft within 1.5x from 16 to 256 aircraft.

The page with large plans and long logs is measured in a browser by benchmarks/page_scale.py. Every
table carries the load average.

    python benchmarks/scale.py [--axes hosts,partitions,data] [--max-partitions 10000] [--max-hosts 10000]
                               [--max-aircraft 256] [--rows 100000] [--repeat 1]
    ./dev bench scale [same options]
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import claim, load, print_claims, use_temp_home  # noqa: E402

from agilab_panel import AGI, AgiEnv, EventBus, RunRequest  # noqa: E402
from agilab_panel.plan import Partition, WorkPlan, build_plan  # noqa: E402

APP = "minimal_app"
WORKERS = {"127.0.0.1": 2}
MODES = {"mode 0": 0, "pool": AGI.POOL_MODE, "Dask": AGI.DASK_MODE}


def _steps(limit: int, start: int) -> list[int]:
    steps, n = [], start
    while n <= limit:
        steps.append(n)
        n *= 10
    return steps


async def partitions_axis(limit: int, repeat: int) -> dict[int, dict[str, float]]:
    env = AgiEnv(APP, verbose=0)
    install = await AGI.install(env, workers=WORKERS, modes_enabled=AGI.POOL_MODE | AGI.DASK_MODE, events=EventBus())
    if not install.ok:
        raise SystemExit(f"install of {APP} failed: {install.errors}")
    table: dict[int, dict[str, float]] = {}
    print(f"\npartitions axis ({APP}, {sum(WORKERS.values())} slots; ms per partition, best of {repeat})")
    print(f"{'partitions':>10} {'plan':>9} " + " ".join(f"{name:>9}" for name in MODES))
    for n in _steps(limit, 10):
        params = {"partitions": n, "size": 10}
        start = time.perf_counter()
        await AGI.get_distrib(env, workers=WORKERS, events=EventBus(), **params)
        row = {"plan": (time.perf_counter() - start) / n * 1000}
        for name, mode in MODES.items():
            request = RunRequest(params=params, workers=WORKERS, mode=mode, verbose=0)
            await AGI.run(env, request, events=EventBus())  # warms the runner or cluster for this size
            best = min([(await AGI.run(env, request, events=EventBus())).seconds for _ in range(repeat)])
            row[name] = best / n * 1000
        table[n] = row
        print(f"{n:>10,} " + " ".join(f"{row[k]:9.3f}" for k in ("plan", *MODES)))
    return table


async def data_axis(limit: int, rows: int, repeat: int) -> dict[int, dict[str, float]]:
    app = "flight_telemetry"
    env = AgiEnv(app, verbose=0)
    modes = {**MODES, "Cython": AGI.CYTHON_MODE}
    install = await AGI.install(env, workers=WORKERS, modes_enabled=AGI.POOL_MODE | AGI.DASK_MODE | AGI.CYTHON_MODE,
                                events=EventBus())
    if not install.ok:
        raise SystemExit(f"install of {app} failed: {install.errors}")
    table: dict[int, dict[str, float]] = {}
    print(f"\ndata axis ({app}, {rows:,} rows per aircraft, {sum(WORKERS.values())} slots; seconds per aircraft, "
          f"best of {repeat})")
    print(f"{'aircraft':>8} " + " ".join(f"{name:>9}" for name in modes) + "  load")
    n = 16
    while n <= limit:
        params = {"n_aircraft": n, "rows_per_file": rows}
        await AGI.get_distrib(env, workers=WORKERS, events=EventBus(), **params)  # generates the files
        row: dict[str, float] = {}
        for name, mode in modes.items():
            request = RunRequest(params=params, workers=WORKERS, mode=mode, verbose=0)
            await AGI.run(env, request, events=EventBus())  # untimed: warms the runner or cluster
            best = min([(await AGI.run(env, request, events=EventBus())).seconds for _ in range(repeat)])
            row[name] = best / n
        table[n] = row
        print(f"{n:>8,} " + " ".join(f"{row[k]:9.4f}" for k in modes) + f"  {load()}")
        n *= 4
    return table


def hosts_axis(limit: int, repeat: int) -> dict[int, float]:
    table: dict[int, float] = {}
    print(f"\nworker map axis (2 slots per host, one partition per slot; plan only, best of {repeat})")
    print(f"{'hosts':>8} {'seconds':>9} {'ms/host':>9}")
    folder = Path(tempfile.mkdtemp(prefix="agilab-scale-"))
    for hosts in [1, *_steps(limit, 100)]:
        workers = {f"10.{i // 65536}.{i // 256 % 256}.{i % 256}": 2 for i in range(hosts)}
        parts = [Partition(f"p{i}", float(1 + i % 7), {"i": i}) for i in range(2 * hosts)]
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            plan = build_plan("scale", parts, workers, {"hosts": hosts})
            WorkPlan.load(plan.save(folder / "distribution_tree.json"))
            times.append(time.perf_counter() - start)
        table[hosts] = min(times)
        print(f"{hosts:>8,} {table[hosts]:9.3f} {table[hosts] / hosts * 1000:9.3f}")
    return table


def absurd_map() -> str:
    try:
        build_plan("scale", [Partition("p0", 1.0, {})], {f"h{i}": 1000 for i in range(1000)}, {})
    except ValueError as exc:
        return str(exc)
    return ""


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-partitions", type=int, default=10_000)
    parser.add_argument("--max-hosts", type=int, default=10_000)
    parser.add_argument("--max-aircraft", type=int, default=256)
    parser.add_argument("--rows", type=int, default=100_000, help="rows per aircraft on the data axis")
    parser.add_argument("--axes", default="hosts,partitions,data", help="which tables to measure")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per point; the best is kept")
    ns = parser.parse_args()
    axes = {a.strip() for a in ns.axes.split(",")}
    use_temp_home()
    hosts = hosts_axis(ns.max_hosts, ns.repeat) if "hosts" in axes else {}
    refused = absurd_map() if "hosts" in axes else ""
    if "hosts" in axes:
        print(f"1,000 hosts x 1,000 slots: {refused or 'accepted'}  [{load()}]")
    try:
        parts = await partitions_axis(ns.max_partitions, ns.repeat) if "partitions" in axes else {}
        data = await data_axis(ns.max_aircraft, ns.rows, ns.repeat) if "data" in axes else {}
    finally:
        await AGI.shutdown()

    big, small = max(hosts, default=0), 100
    if small in hosts and big > small:
        growth = (hosts[big] / big) / (hosts[small] / small)
        claim(f"plan for {big:,} hosts (2 slots each), balance + save + load", f"{hosts[big]:.2f} s", "< 2 s",
              hosts[big] < 2)
        claim(f"plan cost per host, {small} → {big:,} hosts", f"{hosts[small] / small * 1000:.3f} → "
              f"{hosts[big] / big * 1000:.3f} ms, x{growth:.2f}", "<= 2x (linear)", growth <= 2)
    if "hosts" in axes:
        claim("1,000,000 worker slots", f"refused ({refused})" if refused else "accepted", "refused with a clear error",
              bool(refused))
    most = max(parts, default=0)
    if 100 in parts and most > 100:
        for name in MODES:
            growth = parts[most][name] / parts[100][name]
            claim(f"run overhead per partition, {name}, 100 → {most:,} partitions",
                  f"{parts[100][name]:.3f} → {parts[most][name]:.3f} ms, x{growth:.2f}", "<= 2x", growth <= 2)
        claim(f"run overhead per partition, Dask warm cluster, {most:,} partitions", f"{parts[most]['Dask']:.3f} ms",
              "< 2 ms", parts[most]["Dask"] < 2)
    if len(data) > 1:
        few, many = min(data), max(data)
        for name in data[few]:
            growth = data[many][name] / data[few][name]
            claim(f"flight_telemetry seconds per aircraft, {name}, {few} → {many} aircraft",
                  f"{data[few][name]:.3f} → {data[many][name]:.3f} s, x{growth:.2f} ({load()})", "<= 1.5x",
                  growth <= 1.5)
    print_claims()


if __name__ == "__main__":
    asyncio.run(main())
