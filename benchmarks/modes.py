"""Seconds per execution mode and speedup over mode 0, for flight_telemetry and mandelbrot, in one run.

Goals on a 2-core machine — mandelbrot: pool >= 1.8x, Dask with 2 workers >= 1.7x, Cython >= 20x;
flight_telemetry: Dask with 2 workers >= 1.6x. Cluster start-up is paid once, before the timings.

    python benchmarks/modes.py [--apps flight_telemetry,mandelbrot] [--repeat 1]
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import use_temp_home  # noqa: E402

from agilab_panel import AGI, AgiEnv, EventBus, RunRequest  # noqa: E402

MODES = [0, AGI.POOL_MODE, AGI.CYTHON_MODE, AGI.DASK_MODE]
WORKERS = {"127.0.0.1": 2}
GOALS = {
    "mandelbrot": {AGI.POOL_MODE: 1.8, AGI.DASK_MODE: 1.7, AGI.CYTHON_MODE: 20.0},
    "flight_telemetry": {AGI.DASK_MODE: 1.6},
}


async def bench(app: str, repeat: int) -> list[str]:
    env = AgiEnv(app, verbose=0)
    install = await AGI.install(env, workers=WORKERS, modes_enabled=AGI.POOL_MODE | AGI.CYTHON_MODE | AGI.DASK_MODE,
                                events=EventBus())
    if not install.ok:
        raise SystemExit(f"install of {app} failed: {install.errors}")
    await AGI.get_distrib(env, workers=WORKERS, events=EventBus())  # generates the inputs once
    best: dict[int, float] = {}
    for _ in range(repeat):
        result = await AGI.run(env, RunRequest(workers=WORKERS, mode=MODES, verbose=0), events=EventBus())
        for run in result.runs:
            best[run.mode] = min(best.get(run.mode, float("inf")), run.seconds)
    base = best[0]
    lines = []
    for mode in MODES:
        speedup = base / best[mode]
        goal = GOALS.get(app, {}).get(mode)
        verdict = "" if goal is None else (f"goal >= {goal}x: " + ("met" if speedup >= goal else "NOT met"))
        lines.append(f"{app:<17} {AGI.mode_label(mode):<14} {best[mode]:8.3f} s   x{speedup:6.2f}   {verdict}")
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apps", default="flight_telemetry,mandelbrot")
    parser.add_argument("--repeat", type=int, default=1, help="runs per mode; the best is kept")
    ns = parser.parse_args()
    use_temp_home()
    lines = []
    try:
        for app in ns.apps.split(","):
            lines += await bench(app.strip(), ns.repeat)
    finally:
        await AGI.shutdown()
    print(f"{'app':<17} {'mode':<14} {'seconds':>10}   speedup over mode 0")
    print("\n".join(lines))


if __name__ == "__main__":
    asyncio.run(main())
