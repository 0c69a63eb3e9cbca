"""The cheap views a page or a scraper polls: files only, no Dask, and they follow a service that stops
and starts again."""
from __future__ import annotations

import time
from pathlib import Path

from agilab_panel.service import monitor
from agilab_panel.service import queue as q
from agilab_panel.service.gate import evaluate_gate
from agilab_panel.service.health import HEALTH_SCHEMA
from agilab_panel.service.heartbeat import write_heartbeat
from agilab_panel.service.state import ServiceState, SlotState, write_state


def _running(paths: q.ServicePaths, restarts: int = 0) -> ServiceState:
    now = time.time()
    state = ServiceState(app="app", host="h", scheduler="tcp://127.0.0.1:1", external=False, cluster_dir="/nowhere",
                         python="python", cython_path=None, mode=4, workers={"127.0.0.1": 2},
                         settings={"heartbeat_timeout": 5.0, "restart_window_sec": 600.0},
                         slots={s: SlotState(worker=s, incarnation=1, started=now - 60) for s in ("w-0", "w-1")},
                         futures={"w-0": "pending", "w-1": "pending"})
    for _ in range(restarts):
        state.record_restart("w-1", "loop-error", now - 30)
    state.record_restart("w-1", "loop-error", now - 3600)  # outside the window: not counted
    write_state(paths, state)
    return state


def test_a_snapshot_follows_a_service_that_stops_and_starts_again(tmp_path: Path) -> None:
    share = tmp_path / "share"
    paths = q.ServicePaths.of(share, "app").ensure()
    idle = monitor.snapshot(share, "app")
    assert (idle["status"], idle["rows"], idle["queue"]) == ("idle", [], {"pending": 0, "running": 0, "done": 0,
                                                                           "failed": 0})
    _running(paths)
    write_heartbeat(paths.heartbeat_file("w-0"), worker="w-0", incarnation=1, state="processing", task="s.00000")
    q.enqueue(paths, [{"id": "s.00001"}])
    snap = monitor.snapshot(share, "app")
    assert snap["status"] == "degraded" and snap["queue"]["pending"] == 1 and snap["heartbeat_timeout_sec"] == 5.0
    rows = {r["worker"]: r for r in snap["rows"]}
    assert rows["w-0"]["healthy"] and rows["w-0"]["heartbeat_state"] == "processing"
    assert rows["w-1"]["reason"] == "missing-heartbeat"  # started a minute ago, never beat: past the 5 s timeout
    paths.state_file.unlink()
    assert monitor.snapshot(share, "app")["status"] == "idle"
    _running(paths)
    write_heartbeat(paths.heartbeat_file("w-1"), worker="w-1", incarnation=1, state="running")
    assert monitor.snapshot(share, "app")["status"] == "running"


def test_the_health_payload_counts_restarts_in_the_window_only(tmp_path: Path) -> None:
    share = tmp_path / "share"
    paths = q.ServicePaths.of(share, "app").ensure()
    _running(paths, restarts=1)
    for slot in ("w-0", "w-1"):
        write_heartbeat(paths.heartbeat_file(slot), worker=slot, incarnation=1, state="running")
    payload = monitor.health_payload(share, "app")
    assert payload["schema"] == HEALTH_SCHEMA and payload["status"] == "running"
    assert payload["restarts_in_window"] == 1 and payload["restart_rate"] == 0.5
    assert evaluate_gate(payload, allow_idle=False, max_unhealthy=0, max_restart_rate=0.25).code == 5
    assert not paths.health_file.exists()  # a view writes nothing


async def test_watch_yields_a_fresh_snapshot_each_interval(tmp_path: Path) -> None:
    share = tmp_path / "share"
    paths = q.ServicePaths.of(share, "app").ensure()
    seen = []
    async for snap in monitor.watch(share, "app", interval=0.01):
        seen.append(snap["status"])
        if len(seen) == 1:
            _running(paths)
        if len(seen) == 2:
            break
    assert seen == ["idle", "degraded"]
