"""The health snapshot (``agi.service.health.v1``): built from the loops' rows, written atomically, read back.

Every service action writes it to ``<share>/service/<app>/health.json`` or to ``health_output_path``
(a relative path is resolved inside the share and may not leave it; an absolute one is the
operator's choice). :func:`load_health_file` is what ``agilab-panel health --from-file`` trusts: a
file that is not the schema is refused naming what is wrong.
"""
from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..fsutil import atomic_write_text
from ..paths import inside
from .queue import ServicePaths

__all__ = ["HEALTH_SCHEMA", "STATUSES", "HealthFileError", "build_payload", "health_path", "write_health",
           "load_health_file", "read_health"]

HEALTH_SCHEMA = "agi.service.health.v1"
STATUSES = ("running", "degraded", "idle", "stopped", "error")
_WORKER_LISTS = ("running", "pending", "restarted", "healthy", "unhealthy")
_MAX_FILE_BYTES = 64 * 1024 * 1024


class HealthFileError(ValueError):
    """A health file that is not an ``agi.service.health.v1`` payload."""


def build_payload(*, app: str, status: str, rows: Sequence[Mapping[str, Any]], queue: Mapping[str, int],
                  heartbeat_timeout: float, restarted: Mapping[str, str] | None = None,
                  cleanup: Mapping[str, int] | None = None, restart_rate: float = 0.0, restart_window: float = 0.0,
                  restarts_in_window: int = 0, message: str = "", now: float | None = None,
                  extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every field of SPEC §8 (and the restart rate the gate reads) from the rows of :func:`heartbeat.evaluate`."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    restarted = dict(restarted or {})
    lists = {
        "running": [r["worker"] for r in rows if r["heartbeat_state"] in ("running", "processing") and r["healthy"]],
        "pending": [r["worker"] for r in rows if r["heartbeat_state"] == "missing" and r["healthy"]],
        "restarted": list(restarted),
        "healthy": [r["worker"] for r in rows if r["healthy"]],
        "unhealthy": [r["worker"] for r in rows if not r["healthy"]],
    }
    payload: dict[str, Any] = {
        "schema": HEALTH_SCHEMA,
        "timestamp": time.time() if now is None else now,
        "app": app,
        "target": app,
        "status": status,
    }
    for name in _WORKER_LISTS:
        payload[f"workers_{name}"] = lists[name]
    for name in _WORKER_LISTS:
        payload[f"workers_{name}_count"] = len(lists[name])
    payload.update(
        queue={k: int(queue.get(k, 0)) for k in ("pending", "running", "done", "failed")},
        heartbeat_timeout_sec=float(heartbeat_timeout),
        restart_reasons=restarted,
        restart_rate=float(restart_rate),
        restart_window_sec=float(restart_window),
        restarts_in_window=int(restarts_in_window),
        worker_health=[dict(r) for r in rows],
        cleanup=dict(cleanup or {"done": 0, "failed": 0, "heartbeats": 0, "submissions": 0}),
        message=message,
    )
    payload.update(extra or {})
    return payload


def health_path(share: str | os.PathLike, app: str, health_output_path: str | os.PathLike | None = None) -> Path:
    """Where the snapshot goes; a relative ``health_output_path`` that leads out of the share is refused."""
    if health_output_path in (None, ""):
        return ServicePaths.of(share, app).health_file
    text = os.fspath(health_output_path)
    if os.path.isabs(os.path.expanduser(text)):
        target = Path(text).expanduser()
    else:
        target = inside(share, text, "health_output_path", root_name="cluster share")
    if target.is_dir():
        raise ValueError(f"health_output_path {text!r} is a folder: name the JSON file to write")
    return target


def write_health(path: Path, payload: Mapping[str, Any]) -> Path:
    atomic_write_text(path, json.dumps(payload, indent=2, default=str) + "\n")
    return path


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check(payload: Any, where: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise HealthFileError(f"{where}: not a JSON object but {type(payload).__name__}")
    if payload.get("schema") != HEALTH_SCHEMA:
        raise HealthFileError(f"{where}: schema is {payload.get('schema')!r}, not {HEALTH_SCHEMA!r}")
    if payload.get("status") not in STATUSES:
        raise HealthFileError(f"{where}: status {payload.get('status')!r} is not one of {', '.join(STATUSES)}")
    if not _is_number(payload.get("timestamp")):
        raise HealthFileError(f"{where}: timestamp must be a number, got {payload.get('timestamp')!r}")
    for name in _WORKER_LISTS:
        value, count = payload.get(f"workers_{name}"), payload.get(f"workers_{name}_count")
        if not isinstance(value, list):
            raise HealthFileError(f"{where}: workers_{name} must be a list, got {value!r}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise HealthFileError(f"{where}: workers_{name}_count must be a count, got {count!r}")
    queue = payload.get("queue")
    if not isinstance(queue, dict) or not all(isinstance(queue.get(k, 0), int) for k in ("pending", "running", "done", "failed")):
        raise HealthFileError(f"{where}: queue must be an object of counts, got {queue!r}")
    for name, kind in (("restart_rate", "number"), ("heartbeat_timeout_sec", "number")):
        if name in payload and not _is_number(payload[name]):
            raise HealthFileError(f"{where}: {name} must be a {kind}, got {payload[name]!r}")
    if not isinstance(payload.get("worker_health", []), list):
        raise HealthFileError(f"{where}: worker_health must be a list of rows")
    return payload


def load_health_file(path: str | os.PathLike) -> dict[str, Any]:
    """A health payload from a file, checked against the schema; anything else raises :class:`HealthFileError`."""
    where = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise HealthFileError(f"{where}: cannot be read ({exc.strerror or exc})") from exc
    if len(data) > _MAX_FILE_BYTES:
        raise HealthFileError(f"{where}: larger than {_MAX_FILE_BYTES // 2**20} MB, not a health snapshot")
    try:
        payload = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise HealthFileError(f"{where}: not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise HealthFileError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from exc
    return _check(payload, where)


def read_health(share: str | os.PathLike, app: str, health_output_path: str | None = None) -> dict[str, Any] | None:
    """The last snapshot written, or None when there is none (cheap: no evaluation, no Dask)."""
    try:
        return load_health_file(health_path(share, app, health_output_path))
    except HealthFileError:
        return None
