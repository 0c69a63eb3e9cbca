"""Service mode, in one run (minimal_app, a service of 2 workers on this machine).

1. Tasks per second through the queue with 2 workers and trivial tasks: a backlog of submissions
   (2 tasks each, one per slot, each reduced like a RUN) queued while the service is stopped, then
   drained; measured from the first task's start to the last task's end; goal > 100/s.
2. Health evaluation over 1,000 heartbeat files (read them all, judge 1,000 loops); goal < 50 ms.
3. Submit-to-start latency on an idle service: from calling AGI.submit to the first task starting
   in a loop (the loops sleep on a file watch, the poll interval is 1 s); goal < 0.2 s.
4. One queue record written into a folder of 2,000 records, as the loops publish to done/ and write
   heartbeats: without the folder listing each write once made (temps of killed writers are swept by
   the status' cleanup instead) vs with it, side by side.

    python benchmarks/service.py [--submissions 300] [--repeat 10]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import claim, print_claims, use_temp_home  # noqa: E402

from agilab_panel import AGI, AgiEnv, EventBus  # noqa: E402
from agilab_panel.execute.common import make_job  # noqa: E402
from agilab_panel.fsutil import atomic_write_text  # noqa: E402
from agilab_panel.service import queue as q  # noqa: E402
from agilab_panel.service.controller import plan_tasks  # noqa: E402
from agilab_panel.service.heartbeat import LoopInfo, evaluate, read_heartbeats, write_heartbeat  # noqa: E402

APP = "minimal_app"
WORKERS = {"127.0.0.1": 2}
TRIVIAL = {"partitions": 2, "size": 1}


def _records(paths: q.ServicePaths, tasks: list[str]) -> list[dict]:
    return [json.loads((paths.done / f"{t}.json").read_text()) for t in tasks]


async def queue_backlog(env: AgiEnv, paths: q.ServicePaths, submissions: int) -> list[str]:
    """Queue ``submissions`` (the tasks AGI.submit would write) while no loop runs."""
    plan = await AGI.get_distrib(env, workers=WORKERS, events=EventBus(), save=False, **TRIVIAL)
    data_in = env.resolve_data_path(None, f"{APP}/data_in")
    data_out = env.resolve_data_path(None, f"{APP}/data_out")
    tasks = []
    for _ in range(submissions):
        job = make_job(env, plan, AGI.DASK_MODE, data_in, data_out, None)
        manifest, new = plan_tasks(job, q.new_submission_id())
        q.write_submission(paths, manifest)
        q.enqueue(paths, new)
        tasks += manifest["tasks"]
    return tasks


async def throughput(env: AgiEnv, paths: q.ServicePaths, submissions: int) -> None:
    tasks = await queue_backlog(env, paths.ensure(), submissions)
    await AGI.serve(env, "start", workers=WORKERS, events=EventBus())
    deadline = time.monotonic() + 600
    while q.counts(paths)["done"] < len(tasks) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    records = _records(paths, tasks)
    span = max(r["finished"] for r in records) - min(r["started"] for r in records)
    rate = len(records) / span
    claim(f"tasks through the queue, 2 workers, trivial tasks ({len(records)} tasks, {submissions} reduced "
          "submissions)", f"{rate:.0f} tasks/s", "> 100 tasks/s", rate > 100)


async def latency(env: AgiEnv, paths: q.ServicePaths, repeat: int) -> None:
    totals, waits = [], []
    for _ in range(repeat):
        await asyncio.sleep(0.3)  # idle: the loops are asleep on their file watch
        start = time.time()
        submission = await AGI.submit(env, events=EventBus(), **TRIVIAL)
        record = await AGI.wait_submission(env, submission, timeout=60)
        first = min(r["started"] for r in _records(paths, record["tasks"]))
        created = record["created"]
        totals.append(first - start)
        waits.append(first - created)
    total, wait = statistics.median(totals), statistics.median(waits)
    claim("submit-to-start latency on an idle service (median of "
          f"{repeat}; {wait * 1000:.1f} ms of it from task file to start)", f"{total:.3f} s", "< 0.2 s", total < 0.2)


def health_evaluation(repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        loops = []
        for i in range(1000):
            worker = f"node-{i // 8}.example.org-{i % 8}"
            write_heartbeat(folder / f"{worker}.json", worker=worker, incarnation=1, state="running")
            loops.append(LoopInfo(worker=worker, incarnation=1, started=time.time(), future_state="pending",
                                  connected=True))
        times, cpu = [], []
        for _ in range(repeat):
            start, start_cpu = time.perf_counter(), time.process_time()
            rows = evaluate(loops, read_heartbeats(folder), 10.0)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        assert len(rows) == 1000 and all(r["healthy"] for r in rows)
    best = statistics.median(times) * 1000
    claim(f"health evaluation over 1,000 heartbeat files (median of {repeat}; CPU "
          f"{statistics.median(cpu) * 1000:.1f} ms)", f"{best:.1f} ms", "< 50 ms", best < 50)


def queue_write(repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i in range(2000):
            (folder / f"t-{i:05d}.json").write_text("{}")

        def median_ms(sweep: bool) -> float:
            times = []
            for i in range(repeat * 20):
                start = time.perf_counter()
                atomic_write_text(folder / f"w-{i % 50}.json", '{"state": "done"}', durable=False, sweep=sweep)
                times.append(time.perf_counter() - start)
            return statistics.median(times) * 1000

        swept, plain = median_ms(True), median_ms(False)
    claim(f"one queue record written into a folder of 2,000 records (median of {repeat * 20}; {swept:.2f} ms "
          "with the folder listed at each write, as before)", f"{plain:.2f} ms", f"< {swept:.2f} ms", plain < swept)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=10)
    ns = parser.parse_args()
    use_temp_home()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (the figures move with it)", flush=True)
    env = AgiEnv(APP, verbose=0)
    result = await AGI.install(env, workers=WORKERS, modes_enabled=AGI.DASK_MODE, events=EventBus())
    assert result.ok, result.to_dict()
    paths = q.ServicePaths.of(env.share, env.app)
    try:
        await throughput(env, paths, ns.submissions)
        await latency(env, paths, ns.repeat)
    finally:
        await AGI.serve(env, "stop", events=EventBus())
    health_evaluation(ns.repeat)
    queue_write(ns.repeat)
    print_claims()


if __name__ == "__main__":
    asyncio.run(main())
