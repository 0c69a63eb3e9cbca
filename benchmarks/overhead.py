"""Engine overhead, in one run.

1. AGI.run in cluster mode on 200 tiny partitions against plain ``client.map`` of the same worker
   function on the same (warm) cluster; goal: ratio <= 1.2.
2. Wall time of a tiny run (one small partition) per mode; goals: mode 0 < 0.8 s, pool < 1.5 s,
   Dask < 4 s with a cold cluster and < 0.3 s with a warm one (the reference: 2.8 s, 6.2 s, 12 s).
3. Warm re-install with nothing changed; goal: < 3 s (the reference: 34 s).

    python benchmarks/overhead.py [--partitions 200] [--repeat 5]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import use_temp_home  # noqa: E402

from agilab_panel import AGI, AgiEnv, EventBus, RunRequest  # noqa: E402
from agilab_panel.execute.cluster import cluster_pool  # noqa: E402
from agilab_panel.install import worker_python  # noqa: E402

APP = "minimal_app"
WORKERS = {"127.0.0.1": 2}


def plain_work(payload: dict) -> object:
    """The app's worker function, called directly (what a hand-written client.map would do).

    The worker object is made once per Dask worker, as the engine does, so only the engine's own
    overhead (plan, progress events, reduce and output file) is compared.
    """
    from distributed import get_worker

    holder = get_worker()
    worker = getattr(holder, "_plain_minimal_worker", None)
    if worker is None:
        from minimal_app.worker import MinimalWorker

        worker = MinimalWorker({}, worker_id="plain", mode=0, data_in=".", data_out=".")
        worker.work_init()
        holder._plain_minimal_worker = worker
    return worker.work_pool(payload)


async def run(env: AgiEnv, mode: int, **params: object) -> float:
    result = await AGI.run(env, RunRequest(params=params, workers=WORKERS, mode=mode, verbose=0), events=EventBus())
    return result.seconds


async def run_fresh(env: AgiEnv, mode: int, **params: object) -> float:
    """A run that starts its own interpreter (no warm local runner), as a first run does."""
    result = await AGI.run(env, RunRequest(params=params, workers=WORKERS, mode=mode, verbose=0), events=EventBus(),
                           keep_cluster=False)
    return result.seconds


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    ns = parser.parse_args()
    use_temp_home()
    env = AgiEnv(APP, verbose=0)
    modes = AGI.POOL_MODE | AGI.CYTHON_MODE | AGI.DASK_MODE
    start = time.perf_counter()
    await AGI.install(env, workers=WORKERS, modes_enabled=modes, events=EventBus())
    cold_install = time.perf_counter() - start
    start = time.perf_counter()
    again = await AGI.install(env, workers=WORKERS, modes_enabled=modes, events=EventBus())
    warm_install = time.perf_counter() - start
    assert again.ok

    try:
        tiny = {"partitions": 1, "size": 10}
        fresh0 = statistics.median([await run_fresh(env, 0, **tiny) for _ in range(ns.repeat)])
        freshpool = statistics.median([await run_fresh(env, AGI.POOL_MODE, **tiny) for _ in range(ns.repeat)])
        mode0 = statistics.median([await run(env, 0, **tiny) for _ in range(ns.repeat)])
        pool = statistics.median([await run(env, AGI.POOL_MODE, **tiny) for _ in range(ns.repeat)])
        cold = []
        for _ in range(max(1, ns.repeat // 2)):
            await AGI.shutdown()
            cold.append(await run(env, AGI.DASK_MODE, **tiny))
        warm = statistics.median([await run(env, AGI.DASK_MODE, **tiny) for _ in range(ns.repeat)])

        many = {"partitions": ns.partitions, "size": 10}
        await run(env, AGI.DASK_MODE, **many)  # plan built and saved, cluster warm
        agi = [await run(env, AGI.DASK_MODE, **many) for _ in range(ns.repeat)]
        cluster, _ = await cluster_pool.acquire(env, worker_python(env), WORKERS, scheduler=None, cython_path=None,
                                                bus=EventBus())
        payloads = [{"start": i * 10, "stop": (i + 1) * 10} for i in range(ns.partitions)]
        plain = []
        for _ in range(ns.repeat):
            start = time.perf_counter()
            futures = cluster.client.map(plain_work, payloads, pure=False)
            await cluster.client.gather(futures)
            plain.append(time.perf_counter() - start)
            del futures
    finally:
        await AGI.shutdown()

    agi_s, plain_s = statistics.median(agi), statistics.median(plain)
    print(f"cluster overhead: AGI.run {ns.partitions} tiny partitions {agi_s:.3f} s vs client.map {plain_s:.3f} s "
          f"-> ratio {agi_s / plain_s:.2f} (goal <= 1.2)")
    print(f"tiny run, mode 0, warm runner: {mode0:.3f} s, fresh interpreter {fresh0:.3f} s "
          f"(goal < 0.8 s; reference 2.8 s) -> x{2.8 / mode0:.1f} / x{2.8 / fresh0:.1f} faster")
    print(f"tiny run, pool, warm runner:   {pool:.3f} s, fresh interpreter {freshpool:.3f} s "
          f"(goal < 1.5 s; reference 6.2 s) -> x{6.2 / pool:.1f} / x{6.2 / freshpool:.1f} faster")
    print(f"tiny run, Dask cold cluster: {statistics.median(cold):.3f} s (goal < 4 s; reference 12 s) -> "
          f"x{12 / statistics.median(cold):.1f} faster")
    print(f"tiny run, Dask warm cluster: {warm:.3f} s (goal < 0.3 s)")
    print(f"install: cold {cold_install:.2f} s, warm re-install {warm_install:.3f} s (goal < 3 s; reference 34 s) "
          f"-> x{34 / warm_install:.0f} faster")


if __name__ == "__main__":
    asyncio.run(main())
