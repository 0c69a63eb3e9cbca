"""The health gate of SPEC §8: one exit code for cron, systemd and Kubernetes probes.

Checked in this order, the first failure wins: unhealthy workers over ``max_unhealthy`` (2); status
``error`` or ``degraded`` (3); no work possible (``idle`` or ``stopped``) while ``allow_idle`` is off
(4); restart rate over ``max_restart_rate`` (5); otherwise 0.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["GATE_PASS", "GATE_UNHEALTHY", "GATE_STATUS", "GATE_IDLE", "GATE_RESTART_RATE", "GateResult",
           "restart_rate_of", "evaluate_gate"]

GATE_PASS, GATE_UNHEALTHY, GATE_STATUS, GATE_IDLE, GATE_RESTART_RATE = 0, 2, 3, 4, 5


@dataclass(frozen=True)
class GateResult:
    code: int
    reason: str

    @property
    def passed(self) -> bool:
        return self.code == GATE_PASS

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "passed": self.passed, "reason": self.reason}


def restart_rate_of(payload: Mapping[str, Any]) -> float:
    """The windowed rate the engine wrote; for a payload without it, restarts of the last check per running worker."""
    if "restart_rate" in payload:
        return float(payload["restart_rate"])
    return float(payload.get("workers_restarted_count", 0)) / max(1, int(payload.get("workers_running_count", 0)))


def evaluate_gate(payload: Mapping[str, Any], *, allow_idle: bool, max_unhealthy: int,
                  max_restart_rate: float) -> GateResult:
    unhealthy = int(payload.get("workers_unhealthy_count", 0))
    status = str(payload.get("status", ""))
    if unhealthy > max_unhealthy:
        names = ", ".join(map(str, payload.get("workers_unhealthy", []))) or "?"
        return GateResult(GATE_UNHEALTHY, f"{unhealthy} unhealthy worker(s) ({names}) > max_unhealthy {max_unhealthy}")
    if status in ("error", "degraded"):
        detail = f": {payload['message']}" if payload.get("message") else ""
        return GateResult(GATE_STATUS, f"status {status}{detail}")
    if status in ("idle", "stopped") and not allow_idle:
        return GateResult(GATE_IDLE, f"status {status} and allow_idle is off")
    rate = restart_rate_of(payload)
    if rate > max_restart_rate:
        return GateResult(GATE_RESTART_RATE, f"restart rate {rate:.3g} > max_restart_rate {max_restart_rate:g}")
    return GateResult(GATE_PASS, f"status {status}: pass")
