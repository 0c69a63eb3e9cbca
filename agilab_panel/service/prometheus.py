"""Prometheus text exposition of health payloads: what ``agilab-panel health --format prometheus`` prints
and what a ``/metrics`` endpoint serves.

Plain text in the 0.0.4 exposition format (``# HELP``/``# TYPE`` once per family, ``agilab_service_*``
names, ``app`` and ``worker`` labels, escaped label values), rendered here without a client library.
Several payloads (one per app) share each family, as the format requires.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from .gate import GateResult, restart_rate_of
from .health import STATUSES

__all__ = ["CONTENT_TYPE", "render"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_FAMILIES: dict[str, str] = {
    "agilab_service_up": "1 when the service's loops are running (status running or degraded).",
    "agilab_service_status": "1 for the service's current status, 0 for the others.",
    "agilab_service_workers": "Workers by health category (running, pending, restarted, healthy, unhealthy).",
    "agilab_service_queue_tasks": "Tasks in each queue folder.",
    "agilab_service_heartbeat_timeout_seconds": "Age after which a heartbeat is stale.",
    "agilab_service_restart_rate": "Loop restarts per worker over the restart window.",
    "agilab_service_worker_healthy": "1 when the worker's loop is healthy.",
    "agilab_service_worker_heartbeat_age_seconds": "Seconds since the worker's latest heartbeat.",
    "agilab_service_cleanup_removed_files": "Files removed by retention at the last check.",
    "agilab_service_snapshot_timestamp_seconds": "When the health snapshot was taken (Unix time).",
    "agilab_service_gate_code": "Exit code of the health gate (0 pass, 2 unhealthy, 3 status, 4 idle, 5 restarts).",
}


def _escape(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: Any) -> str:
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _samples(payload: Mapping[str, Any], gate: GateResult | None) -> dict[str, list[tuple[dict[str, str], float]]]:
    app = str(payload.get("app", ""))
    status = str(payload.get("status", ""))
    out: dict[str, list[tuple[dict[str, str], float]]] = {name: [] for name in _FAMILIES}
    base = {"app": app}
    out["agilab_service_up"].append((base, 1.0 if status in ("running", "degraded") else 0.0))
    for name in STATUSES:
        out["agilab_service_status"].append(({**base, "status": name}, 1.0 if name == status else 0.0))
    for name in ("running", "pending", "restarted", "healthy", "unhealthy"):
        out["agilab_service_workers"].append(({**base, "state": name}, float(payload.get(f"workers_{name}_count", 0))))
    for name, count in dict(payload.get("queue", {})).items():
        out["agilab_service_queue_tasks"].append(({**base, "queue": str(name)}, float(count)))
    if "heartbeat_timeout_sec" in payload:
        out["agilab_service_heartbeat_timeout_seconds"].append((base, float(payload["heartbeat_timeout_sec"])))
    out["agilab_service_restart_rate"].append((base, restart_rate_of(payload)))
    for row in payload.get("worker_health", []) or []:
        labels = {**base, "worker": str(row.get("worker", ""))}
        out["agilab_service_worker_healthy"].append((labels, 1.0 if row.get("healthy") else 0.0))
        if row.get("heartbeat_age_sec") is not None:
            out["agilab_service_worker_heartbeat_age_seconds"].append((labels, float(row["heartbeat_age_sec"])))
    for name, count in dict(payload.get("cleanup", {}) or {}).items():
        out["agilab_service_cleanup_removed_files"].append(({**base, "folder": str(name)}, float(count)))
    out["agilab_service_snapshot_timestamp_seconds"].append((base, float(payload.get("timestamp", 0.0))))
    if gate is not None:
        out["agilab_service_gate_code"].append((base, float(gate.code)))
    return out


def render(payloads: Iterable[Mapping[str, Any]], gates: Mapping[str, GateResult] | None = None) -> str:
    """The exposition text of one or more payloads; ``gates`` (by app) adds the gate code."""
    families: dict[str, list[tuple[dict[str, str], float]]] = {name: [] for name in _FAMILIES}
    for payload in payloads:
        gate = (gates or {}).get(str(payload.get("app", "")))
        for name, samples in _samples(payload, gate).items():
            families[name].extend(samples)
    lines = []
    for name, samples in families.items():
        if not samples:
            continue
        lines.append(f"# HELP {name} {_FAMILIES[name]}")
        lines.append(f"# TYPE {name} gauge")
        for labels, value in samples:
            text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{text}}} {_number(value)}")
    return "\n".join(lines) + "\n"
