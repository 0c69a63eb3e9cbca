"""A cold cluster starts its workers first: their interpreters import Dask, pandas and the app while the
engine imports Dask and starts the scheduler, and they find the scheduler through its file."""
from __future__ import annotations

import json

import pytest

from agilab_panel import AGI, AgiEnv, EventBus, RunRequest
from agilab_panel.execute import cluster as cluster_module

pytestmark = pytest.mark.integration
WORKERS = {"127.0.0.1": 2}


async def test_the_workers_start_before_the_scheduler(installed, use_home, monkeypatch):
    use_home(installed("minimal_app"))
    env = AgiEnv("minimal_app", verbose=0)
    seen: list[dict[str, bool]] = []
    start_scheduler = cluster_module.WorkerCluster._start_scheduler

    async def watched(self):  # what is running when the scheduler starts
        seen.append({name: proc.poll() is None for name, proc in self.procs.items()})
        address = await start_scheduler(self)
        seen.append({"file": json.loads((self.dir / "scheduler.json").read_text())["address"] == address})
        return address

    monkeypatch.setattr(cluster_module.WorkerCluster, "_start_scheduler", watched)
    try:
        result = await AGI.run(env, RunRequest(params={"partitions": 2, "size": 10}, workers=WORKERS,
                                               mode=AGI.DASK_MODE, verbose=0), events=EventBus(), keep_cluster=False)
    finally:
        await AGI.shutdown()
    assert result.cluster == "started" and result.rows == 2
    assert seen == [{"127.0.0.1-0": True, "127.0.0.1-1": True}, {"file": True}]
