"""Cheap views of a service for pages and scrapers: files only, no Dask connection, no restart.

:func:`snapshot` gives the queue counts and the health table rows (judged from the heartbeats and
the future states the last status recorded); :func:`watch` yields one every interval while someone
iterates (nothing runs when nobody does); :func:`health_payload` is the same snapshot as an
``agi.service.health.v1`` payload, for ``/metrics``. They keep working while a service stops and
starts again: everything is read afresh each time.
"""
from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from .config import ServiceSettings
from .health import build_payload
from .heartbeat import LoopInfo, evaluate, read_heartbeats
from .queue import ServicePaths, counts
from .state import ServiceStateError, read_state

__all__ = ["snapshot", "watch", "health_payload"]

_DEFAULT_TIMEOUT = ServiceSettings.param["heartbeat_timeout"].default


def snapshot(share: str | os.PathLike, app: str, now: float | None = None) -> dict[str, Any]:
    """``{app, time, status, message, scheduler, heartbeat_timeout_sec, queue, rows}`` read from the files."""
    paths = ServicePaths.of(share, app)
    now = time.time() if now is None else now
    base = {"app": app, "time": now, "queue": counts(paths), "rows": [], "scheduler": None,
            "heartbeat_timeout_sec": _DEFAULT_TIMEOUT}
    try:
        state = read_state(paths)
    except ServiceStateError as exc:
        return {**base, "status": "error", "message": str(exc)}
    if state is None:
        return {**base, "status": "idle", "message": f"no service is running for app {app}"}
    timeout = float(state.settings.get("heartbeat_timeout", _DEFAULT_TIMEOUT))
    loops = [LoopInfo(worker=slot, incarnation=s.incarnation, started=s.started,
                      future_state=state.futures.get(slot, "unknown"), address=s.address)
             for slot, s in state.slots.items()]
    rows = evaluate(loops, read_heartbeats(paths.heartbeats), timeout, now)
    unhealthy = [r for r in rows if not r["healthy"]]
    status = "degraded" if unhealthy else "running"
    message = (", ".join(f"{r['worker']}: {r['reason']}" for r in unhealthy) if unhealthy
               else f"{len(rows)} loop(s) healthy")
    return {**base, "status": status, "message": message, "rows": rows, "scheduler": state.scheduler,
            "heartbeat_timeout_sec": timeout}


async def watch(share: str | os.PathLike, app: str, interval: float = 1.0) -> AsyncIterator[dict[str, Any]]:
    """A snapshot now, then one per ``interval`` for as long as the caller iterates."""
    while True:
        yield await asyncio.to_thread(snapshot, share, app)
        await asyncio.sleep(interval)


def health_payload(share: str | os.PathLike, app: str) -> dict[str, Any]:
    """The snapshot as a health payload (no restart, no retention, nothing written)."""
    snap = snapshot(share, app)
    try:
        state = read_state(ServicePaths.of(share, app))
    except ServiceStateError:
        state = None
    window = float(state.settings.get("restart_window_sec", 3600.0)) if state else 3600.0
    return build_payload(app=app, status=snap["status"], rows=snap["rows"], queue=snap["queue"],
                         heartbeat_timeout=snap["heartbeat_timeout_sec"], message=snap["message"],
                         restart_rate=state.restart_rate(window, snap["time"]) if state else 0.0,
                         restart_window=window,
                         restarts_in_window=len(state.restarts_within(window, snap["time"])) if state else 0,
                         now=snap["time"], extra={"scheduler": snap["scheduler"]})
