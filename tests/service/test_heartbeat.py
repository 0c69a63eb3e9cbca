"""Judging loops from their heartbeats and Dask futures: each reason of SPEC §8, and stale never healthy."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agilab_panel.service.heartbeat import LoopInfo, evaluate, read_heartbeats, write_heartbeat

NOW = 1_000_000.0
TIMEOUT = 10.0


def _beat(age: float, state: str = "running", incarnation: int = 1, **extra: object) -> dict:
    return {"worker": "w", "pid": 123, "incarnation": incarnation, "timestamp": NOW - age, "state": state, **extra}


def _row(beat: dict | None, **loop: object) -> dict:
    info = {"worker": "w", "incarnation": 1, "started": NOW - 60, **loop}
    (row,) = evaluate([LoopInfo(**info)], {"w": beat} if beat else {}, TIMEOUT, NOW)
    return row


@pytest.mark.parametrize(("beat", "loop", "reason"), [
    (_beat(1), {"future_state": "pending", "connected": True}, ""),
    (_beat(1, "processing"), {"future_state": "pending", "connected": True}, ""),
    (_beat(1), {"future_state": "finished", "connected": True}, "loop-finished"),
    (_beat(1), {"future_state": "error", "connected": True}, "loop-error"),
    (_beat(1), {"future_state": "cancelled", "connected": True}, "loop-cancelled"),
    (_beat(12.5), {"future_state": "pending", "connected": True}, "stale-heartbeat(12.5s)"),
    (_beat(2.0, "processing"), {"future_state": "error", "connected": False}, "stale-heartbeat(2.0s)"),
    (None, {"future_state": "pending", "connected": True}, "missing-heartbeat"),
    (None, {"future_state": "pending", "connected": True, "started": NOW - 3}, ""),
    (None, {"future_state": "error", "connected": False, "started": NOW - 3}, "missing-heartbeat"),
    (_beat(1, incarnation=1), {"incarnation": 2, "started": NOW - 3}, ""),
    (_beat(1, incarnation=1), {"incarnation": 2, "started": NOW - 30}, "missing-heartbeat"),
    (_beat(1, "stopped", exit="error"), {}, "loop-error"),
    (_beat(11), {}, "stale-heartbeat(11.0s)"),
])
def test_each_reason(beat: dict | None, loop: dict, reason: str) -> None:
    row = _row(beat, **loop)
    assert row["reason"] == reason and row["healthy"] is (reason == "")


def test_a_killed_worker_is_unhealthy_at_once_though_its_last_heartbeat_is_fresh() -> None:
    row = _row(_beat(0.2, "processing", task="s.00001"), future_state="error", connected=False)
    assert not row["healthy"] and row["reason"] == "stale-heartbeat(0.2s)"
    assert row["heartbeat_state"] == "processing" and row["task"] == "s.00001" and row["pid"] == 123


def test_rows_carry_the_table_columns() -> None:
    row = _row(_beat(3.25), future_state="pending", connected=True, address="tcp://127.0.0.1:1")
    assert {k: row[k] for k in ("worker", "healthy", "reason", "future_state", "heartbeat_state",
                                "heartbeat_age_sec")} == {"worker": "w", "healthy": True, "reason": "",
                                                         "future_state": "pending", "heartbeat_state": "running",
                                                         "heartbeat_age_sec": 3.25}


def test_read_keeps_the_newest_readable_heartbeat_of_each_worker(tmp_path: Path) -> None:
    write_heartbeat(tmp_path / "a.json", worker="a", incarnation=1, state="running")
    (tmp_path / "a-old.json").write_text(json.dumps({"worker": "a", "timestamp": 1.0, "state": "stopped"}))
    (tmp_path / "broken.json").write_text('{"worker": "b", "timest')
    (tmp_path / ".a.json.agtmp-h-1.x.tmp").write_text("{}")
    beats = read_heartbeats(tmp_path)
    assert list(beats) == ["a"] and beats["a"]["state"] == "running" and beats["a"]["pid"] == os.getpid()
    assert read_heartbeats(tmp_path / "missing") == {}
