"""Where a pool run's time goes, against mode 0, on a pandas workload: flight_telemetry over CSV files
(16 aircraft x 100k rows: read_csv, the numeric kernels, rolling windows, group-bys, one output).

The run module is driven in this process, as the warm runner's forked run does, with each phase timed:
the pool's start (processes forked, the job sent), the partitions, the results brought back and
reduced, the output written; and the CPU seconds of the run and of its pool processes. On a shared
machine wall times follow the load, CPU seconds much less: a pool that costs no more CPU than mode 0
has no overhead to cut, and its speedup is the free cores. Goal: pool CPU within 10% of mode 0's.
The same work on a warm 2-worker Dask cluster (``AGI.run``) is measured the same way: its workers' and
this process's CPU seconds; goal: the pool costs no more CPU than Dask.

    python benchmarks/pool.py [--repeat 3] [--aircraft 16] [--rows 100000]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import claim, load, print_claims, use_temp_home  # noqa: E402

from agilab_panel import AGI, AgiEnv, EventBus  # noqa: E402
from agilab_panel.execute.common import make_job  # noqa: E402
from agilab_panel.runtime import runner  # noqa: E402

APP = "flight_telemetry"
WORKERS = {"127.0.0.1": 2}
PHASES = ("_executor", "_map_pool", "work_done", "write_output")


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def timed_phases() -> dict[str, float]:
    """Wrap the run module's phases so each call adds its wall time to the returned dict."""
    spent: dict[str, float] = {}

    def wrap(owner: object, name: str) -> None:
        inner = getattr(owner, name)

        def timed(*args: object, **kw: object) -> object:
            start = time.perf_counter()
            try:
                return inner(*args, **kw)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - start
        setattr(owner, name, timed)

    for name in ("_executor", "_map_pool", "write_output"):
        wrap(runner, name)
    make_worker = runner.make_worker

    def make_timed_worker(job: object, worker_id: str) -> object:
        worker = make_worker(job, worker_id)
        if worker_id == "reduce":
            wrap(worker, "work_done")
        return worker
    runner.make_worker = make_timed_worker
    return spent


def one_run(job: object, spent: dict[str, float]) -> dict[str, float]:
    spent.clear()
    wall, own, children = time.perf_counter(), _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
    runner.run(job)  # type: ignore[arg-type]
    return {"wall": time.perf_counter() - wall, "cpu": _cpu(resource.RUSAGE_SELF) - own,
            "pool cpu": _cpu(resource.RUSAGE_CHILDREN) - children, **spent}


async def dask_runs(env: AgiEnv, params: dict, repeat: int) -> list[dict[str, float]]:
    """Wall and CPU seconds (workers and this process) of runs on a warm Dask cluster."""
    import psutil

    from agilab_panel import RunRequest
    from agilab_panel.execute.cluster import cluster_pool
    from agilab_panel.install import worker_python

    request = RunRequest(params=params, workers=WORKERS, mode=AGI.DASK_MODE, verbose=0)
    try:
        await AGI.run(env, request, events=EventBus())  # untimed: starts and warms the cluster
        cluster, how = await cluster_pool.acquire(env, worker_python(env), WORKERS, scheduler=None, cython_path=None,
                                                  bus=EventBus())
        assert how == "reused", how  # the cluster the runs use
        workers = [psutil.Process(p.pid) for name, p in cluster.procs.items() if name != "scheduler"]
        runs = []
        for _ in range(repeat):
            before, own = [sum(w.cpu_times()[:2]) for w in workers], _cpu(resource.RUSAGE_SELF)
            result = await AGI.run(env, request, events=EventBus())
            runs.append({"wall": result.seconds, "cpu": _cpu(resource.RUSAGE_SELF) - own,
                         "workers cpu": sum(sum(w.cpu_times()[:2]) for w in workers) - sum(before)})
        return runs
    finally:
        await AGI.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--aircraft", type=int, default=16)
    parser.add_argument("--rows", type=int, default=100_000)
    ns = parser.parse_args()
    use_temp_home()
    env = AgiEnv(APP, verbose=0)
    result = asyncio.run(AGI.install(env, workers=WORKERS, modes_enabled=AGI.POOL_MODE, events=EventBus()))
    if not result.ok:
        raise SystemExit(f"install of {APP} failed: {result.errors}")
    params = {"file_format": "csv", "n_aircraft": ns.aircraft, "rows_per_file": ns.rows}
    plan = asyncio.run(AGI.get_distrib(env, workers=WORKERS, events=EventBus(), **params))  # generates the files
    data = Path(os.environ["AGI_CLUSTER_SHARE"]) / APP
    jobs = {mode: make_job(env, plan, mode, data / "data_in", data / "data_out", None) for mode in (0, AGI.POOL_MODE)}
    spent = timed_phases()
    rows: dict[int, list[dict[str, float]]] = {0: [], AGI.POOL_MODE: []}
    for mode in rows:
        one_run(jobs[mode], spent)  # untimed: first reads of the files, first use of each code path
    for _ in range(ns.repeat):
        for mode in rows:
            rows[mode].append(one_run(jobs[mode], spent))
    print(f"{APP}, {ns.aircraft} CSV files x {ns.rows:,} rows, median of {ns.repeat} runs  [{load()}]")
    for mode, runs in rows.items():
        cols = ["wall", "cpu", "pool cpu", *PHASES]
        med = {c: statistics.median(r.get(c, 0.0) for r in runs) for c in cols}
        print(f"  {AGI.mode_label(mode):<8} " + "  ".join(f"{c} {med[c]:6.2f} s" for c in cols))
    base = statistics.median(r["cpu"] + r["pool cpu"] for r in rows[0])
    pool = statistics.median(r["cpu"] + r["pool cpu"] for r in rows[AGI.POOL_MODE])
    wall0 = statistics.median(r["wall"] for r in rows[0])
    wall1 = statistics.median(r["wall"] for r in rows[AGI.POOL_MODE])
    claim(f"{APP} CSV, pool (2 processes) CPU seconds vs mode 0 (wall x{wall0 / wall1:.2f} at {load()})",
          f"{pool:.2f} s vs {base:.2f} s, {100 * (pool / base - 1):+.0f}%", "<= +10%", pool <= 1.1 * base)
    dask = asyncio.run(dask_runs(env, params, ns.repeat))
    dask_cpu = statistics.median(r["cpu"] + r["workers cpu"] for r in dask)
    dask_wall = statistics.median(r["wall"] for r in dask)
    print(f"  4: dask  wall {dask_wall:6.2f} s  cpu {statistics.median(r['cpu'] for r in dask):6.2f} s  workers cpu "
          f"{statistics.median(r['workers cpu'] for r in dask):6.2f} s  [{load()}]")
    claim(f"{APP} CSV, pool (2 processes) CPU seconds vs Dask 2 workers, warm (wall {wall1:.1f} s vs {dask_wall:.1f} s)",
          f"{pool:.2f} s vs {dask_cpu:.2f} s ({load()})", "<= Dask", pool <= dask_cpu)
    print_claims()


if __name__ == "__main__":
    main()
