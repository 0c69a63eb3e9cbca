"""The health gate: each exit code of SPEC §8, checked in order (the first failure wins)."""
from __future__ import annotations

import pytest

from agilab_panel.service.gate import evaluate_gate
from agilab_panel.service.health import build_payload


def _payload(status: str = "running", unhealthy: int = 0, rate: float = 0.0) -> dict:
    rows = [{"worker": f"w{i}", "healthy": i >= unhealthy, "reason": "" if i >= unhealthy else "missing-heartbeat",
             "future_state": "pending", "heartbeat_state": "running", "heartbeat_age_sec": 1.0} for i in range(2)]
    return build_payload(app="a", status=status, rows=rows, queue={}, heartbeat_timeout=10, restart_rate=rate)


DEFAULTS = {"allow_idle": False, "max_unhealthy": 0, "max_restart_rate": 0.25}


@pytest.mark.parametrize(("payload", "overrides", "code"), [
    (_payload(), {}, 0),
    (_payload(unhealthy=1), {}, 2),
    (_payload(unhealthy=1), {"max_unhealthy": 1}, 0),
    (_payload("degraded", unhealthy=1, rate=9), {}, 2),  # unhealthy first, before status and rate
    (_payload("degraded", unhealthy=1), {"max_unhealthy": 1}, 3),
    (_payload("error"), {}, 3),
    (_payload("idle"), {}, 4),
    (_payload("stopped"), {}, 4),
    (_payload("idle"), {"allow_idle": True}, 0),
    (_payload("idle", rate=1.0), {"allow_idle": True}, 5),
    (_payload(rate=0.5), {}, 5),
    (_payload(rate=0.25), {}, 0),
    (_payload(rate=0.5), {"max_restart_rate": 1.0}, 0),
])
def test_gate_codes_in_order(payload: dict, overrides: dict, code: int) -> None:
    result = evaluate_gate(payload, **{**DEFAULTS, **overrides})
    assert result.code == code and result.passed is (code == 0) and result.reason


def test_a_payload_without_the_windowed_rate_uses_the_last_check() -> None:
    payload = {"status": "running", "workers_unhealthy_count": 0, "workers_restarted_count": 1,
               "workers_running_count": 2}
    assert evaluate_gate(payload, **DEFAULTS).code == 5
    assert evaluate_gate(payload, **{**DEFAULTS, "max_restart_rate": 0.5}).code == 0
