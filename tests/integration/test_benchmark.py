"""Benchmark all modes: one warm cluster, one untimed warm-up run per mode, then ``repeats`` timed runs each."""
from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from agilab_panel import AGI, AgiEnv, EventBus, RunRequest
from agilab_panel.events import RunEvent

pytestmark = pytest.mark.integration
WORKERS = {"127.0.0.1": 2}
MODES = [0, AGI.POOL_MODE, AGI.DASK_MODE]


async def test_benchmark_reuses_the_warm_cluster_warms_each_mode_then_repeats_it(installed, use_home):
    use_home(installed("minimal_app"))
    env = AgiEnv("minimal_app", verbose=0)
    bus = EventBus()
    try:
        warm = await AGI.run(env, RunRequest(params={"partitions": 4, "size": 500}, workers=WORKERS,
                                             mode=AGI.DASK_MODE, verbose=0), events=EventBus())
        result = await AGI.run(env, RunRequest(params={"partitions": 4, "size": 500}, workers=WORKERS, mode=MODES,
                                               verbose=0, repeats=2), events=bus)
    finally:
        await AGI.shutdown()
    assert warm.cluster == "started"
    addresses = {m.split(" at ")[-1] for m in (e.text for e in bus.logs()) if "Dask cluster" in m}
    started = [m for m in (e.text for e in bus.logs()) if "Dask cluster started" in m]
    assert len(addresses) == 1 and started == []
    assert {r.cluster for r in result.runs if r.mode == AGI.DASK_MODE} == {"reused"}
    done = Counter(e.mode for e in bus.history if isinstance(e, RunEvent) and e.state == "done")
    assert done == {mode: 1 + 2 for mode in MODES}  # the warm-up run, then the timed repeats
    saved = json.loads(env.benchmark_path.read_text())
    assert saved["repeats"] == 2 and result.table == saved["modes"]
    for row in saved["modes"].values():
        assert row["repeats"] == 2 and len(row["repeat_seconds"]) == 2
        assert row["seconds"] == min(row["repeat_seconds"])
        assert min(row["repeat_seconds"]) <= row["median"] <= max(row["repeat_seconds"])
    fastest = min(saved["modes"].values(), key=lambda row: row["seconds"])["label"]
    assert re.fullmatch(rf"Benchmark: 3 modes in \d+\.\d s, fastest: {re.escape(fastest)}", result.summary)
    assert saved["summary"] == result.summary == [e.text for e in bus.logs() if e.source == "run"][-1]


async def test_a_mode_that_fails_its_warm_up_is_reported_and_not_timed(installed, use_home):
    use_home(installed("minimal_app"))
    env = AgiEnv("minimal_app", verbose=0)
    bus = EventBus()
    result = await AGI.run(env, RunRequest(params={"partitions": 2, "size": 50}, workers=WORKERS,
                                           mode=[0, AGI.RAPIDS_MODE], verbose=0, repeats=2), events=bus)
    await AGI.shutdown()
    assert "error" in result.table[str(AGI.RAPIDS_MODE)] and result.table["0"]["repeats"] == 2
    started = Counter(e.mode for e in bus.history if isinstance(e, RunEvent) and e.state == "started")
    assert started == {0: 3, AGI.RAPIDS_MODE: 1}
    assert result.summary.startswith("Benchmark: 1 mode in ")
