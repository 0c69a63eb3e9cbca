"""Prometheus text parses back with prometheus_client's parser: names, types, labels and values."""
from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from agilab_panel.service.gate import evaluate_gate
from agilab_panel.service.health import build_payload
from agilab_panel.service.prometheus import render

ODD = 'we"ird\\name\nnode'


def _payload(app: str) -> dict:
    rows = [
        {"worker": "127.0.0.1-0", "healthy": True, "reason": "", "future_state": "pending",
         "heartbeat_state": "running", "heartbeat_age_sec": 0.5},
        {"worker": ODD, "healthy": False, "reason": "stale-heartbeat(11.0s)", "future_state": "error",
         "heartbeat_state": "processing", "heartbeat_age_sec": 11.0},
        {"worker": "127.0.0.1-2", "healthy": True, "reason": "", "future_state": "pending",
         "heartbeat_state": "missing", "heartbeat_age_sec": None},
    ]
    return build_payload(app=app, status="degraded", rows=rows, queue={"pending": 3, "running": 1, "done": 7, "failed": 2},
                         heartbeat_timeout=10, restarted={ODD: "stale-heartbeat(11.0s)"}, restart_rate=0.5,
                         cleanup={"done": 4, "failed": 0, "heartbeats": 1, "submissions": 0}, now=1234.5)


def _samples(text: str) -> dict[str, dict[tuple, float]]:
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge" and family.documentation
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_payloads_render_and_parse_back() -> None:
    payloads = [_payload("app_a"), _payload("app_b")]
    gate = evaluate_gate(payloads[0], allow_idle=False, max_unhealthy=0, max_restart_rate=0.25)
    text = render(payloads, {"app_a": gate})
    assert text.count("# TYPE agilab_service_workers gauge") == 1  # one family for both apps
    samples = _samples(text)
    assert all(name.startswith("agilab_service_") for name in samples)
    assert samples["agilab_service_up"] == {(("app", "app_a"),): 1.0, (("app", "app_b"),): 1.0}
    assert samples["agilab_service_status"][(("app", "app_a"), ("status", "degraded"))] == 1.0
    assert samples["agilab_service_status"][(("app", "app_a"), ("status", "running"))] == 0.0
    assert samples["agilab_service_queue_tasks"][(("app", "app_b"), ("queue", "done"))] == 7.0
    assert samples["agilab_service_workers"][(("app", "app_a"), ("state", "unhealthy"))] == 1.0
    assert samples["agilab_service_worker_healthy"][(("app", "app_a"), ("worker", ODD))] == 0.0
    ages = samples["agilab_service_worker_heartbeat_age_seconds"]
    assert ages[(("app", "app_a"), ("worker", "127.0.0.1-0"))] == 0.5
    assert (("app", "app_a"), ("worker", "127.0.0.1-2")) not in ages  # no heartbeat yet: no age sample
    assert samples["agilab_service_restart_rate"][(("app", "app_a"),)] == 0.5
    assert samples["agilab_service_gate_code"] == {(("app", "app_a"),): 2.0}
    assert samples["agilab_service_snapshot_timestamp_seconds"][(("app", "app_b"),)] == 1234.5
    assert samples["agilab_service_cleanup_removed_files"][(("app", "app_a"), ("folder", "done"))] == 4.0
