"""Seconds per execution mode and speedup over mode 0, for flight_telemetry and mandelbrot, in one run.

``flight_telemetry:csv`` is the pandas workload shape of many CSV files (16 x 100k rows: read_csv,
numeric kernels, rolling windows, group-bys, one output); ``benchmarks/pool.py`` shows where its pool
time goes.

Uses the product's own benchmark (``AGI.run(mode=[...])``, what "Benchmark all modes" runs): one warm
cluster for every mode, one untimed warm-up run of each mode, then ``--repeat`` timed runs of each in
turn; the min (benchmark.json's ``seconds``) and the median are printed, speedups use the min.
Goals on a 2-core machine — mandelbrot: pool >= 1.8x, Dask with 2 workers >= 1.7x, Cython >= 20x;
flight_telemetry: Dask with 2 workers >= 1.6x; flight_telemetry over CSV: pool and Dask >= 1.6x.
Each line carries the load average (the machine may be shared).

    python benchmarks/modes.py [--apps flight_telemetry,flight_telemetry:csv,mandelbrot] [--repeat 3]
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import claim, load, print_claims, use_temp_home  # noqa: E402

from agilab_panel import AGI, AgiEnv, EventBus, RunRequest  # noqa: E402

MODES = [0, AGI.POOL_MODE, AGI.CYTHON_MODE, AGI.DASK_MODE]
WORKERS = {"127.0.0.1": 2}
GOALS = {
    "mandelbrot": {AGI.POOL_MODE: 1.8, AGI.DASK_MODE: 1.7, AGI.CYTHON_MODE: 20.0},
    "flight_telemetry": {AGI.DASK_MODE: 1.6},
    "flight_telemetry:csv": {AGI.POOL_MODE: 1.6, AGI.DASK_MODE: 1.6},
}
WORKLOADS = {"flight_telemetry:csv": {"file_format": "csv", "n_aircraft": 16, "rows_per_file": 100_000}}
NAMES = {AGI.POOL_MODE: "pool (2 processes)", AGI.DASK_MODE: "Dask 2 workers", AGI.CYTHON_MODE: "Cython kernel"}


async def bench(workload: str, repeat: int) -> list[str]:
    app = workload.partition(":")[0]
    env = AgiEnv(app, verbose=0)
    install = await AGI.install(env, workers=WORKERS, modes_enabled=AGI.POOL_MODE | AGI.CYTHON_MODE | AGI.DASK_MODE,
                                events=EventBus())
    if not install.ok:
        raise SystemExit(f"install of {app} failed: {install.errors}")
    request = RunRequest(params=WORKLOADS.get(workload, {}), workers=WORKERS, mode=MODES, verbose=0, repeats=repeat)
    result = await AGI.run(env, request, events=EventBus())
    rows = {int(mode): row for mode, row in result.table.items()}
    if any("error" in row for row in rows.values()):
        raise SystemExit(f"{app}: " + "; ".join(f"{m}: {r['error']}" for m, r in rows.items() if "error" in r))
    base = rows[0]["seconds"]
    app = workload
    lines = [f"{app}: {result.summary} ({result.repeats} timed runs per mode)  [{load()}]"]
    for mode in MODES:
        row = rows[mode]
        speedup = base / row["seconds"]
        lines.append(f"{app:<17} {AGI.mode_label(mode):<14} min {row['seconds']:8.3f} s  median {row['median']:8.3f} s"
                     f"   x{speedup:6.2f}")
        goal = GOALS.get(app, {}).get(mode)
        if goal is not None:
            claim(f"{app}, {NAMES[mode]} vs mode 0", f"{base:.2f} s → {row['seconds']:.2f} s, x{speedup:.2f} ({load()})",
                  f">= {goal}x", speedup >= goal)
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", default="flight_telemetry,flight_telemetry:csv,mandelbrot")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per mode after the warm-up; min and median")
    ns = parser.parse_args()
    use_temp_home()
    lines = []
    try:
        for app in ns.apps.split(","):
            lines += await bench(app.strip(), ns.repeat)
    finally:
        await AGI.shutdown()
    print("\n".join(lines))
    print_claims()


if __name__ == "__main__":
    asyncio.run(main())
