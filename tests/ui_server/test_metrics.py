"""``/metrics`` of ``agilab-panel serve``: Prometheus text of a real running service, parsed back with
prometheus_client's parser; gone when the service stops; the page's Host check and login apply."""
from __future__ import annotations

import base64
from urllib.parse import urlencode, urlparse

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agilab_panel import AGI, AgiEnv
from agilab_panel.service import queue as q
from agilab_panel.service.state import read_state

from service.test_service_dask import service_processes  # tests/ is on the path (rootdir conftest)

from .conftest import outside_address
from .test_exposure import PASSWORD


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.mark.integration
async def test_metrics_report_the_running_service_and_forget_it_once_stopped(start_server, installed,
                                                                              use_home) -> None:  # noqa: ANN001
    home = installed("minimal_app")
    use_home(home)
    served = start_server(env={k: str(v) for k, v in home.items()})
    empty = served.request("/metrics")
    assert empty.status == 200 and empty.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert list(text_string_to_metric_families(empty.body)) == []  # no service yet

    env = AgiEnv("minimal_app", verbose=0)
    paths = q.ServicePaths.of(env.share, env.app)
    assert read_state(paths) is None
    await AGI.serve(env, "start", workers={"127.0.0.1": 2})
    try:
        reply = served.request("/metrics")
        assert reply.status == 200 and reply.headers["cache-control"] == "no-store"
        samples = _samples(reply.body)
        app = (("app", "minimal_app"),)
        assert samples[("agilab_service_up", app)] == 1.0
        assert samples[("agilab_service_status", (("app", "minimal_app"), ("status", "running")))] == 1.0
        assert samples[("agilab_service_gate_code", app)] == 0.0
        ages = {labels: v for (name, labels), v in samples.items() if name == "agilab_service_worker_heartbeat_age_seconds"}
        assert {dict(labels)["worker"] for labels in ages} == {"127.0.0.1-0", "127.0.0.1-1"}
        assert all(v >= 0 for v in ages.values())
        assert served.request("/metrics", host=f"rebind.example:{served.port}").status == 403
    finally:
        state = read_state(paths)
        await AGI.serve(env, "stop", stop_timeout=10)
    assert service_processes(state.cluster_dir) == []
    after = served.request("/metrics")
    assert after.status == 200 and list(text_string_to_metric_families(after.body)) == []
    assert "Traceback" not in served.output()


def test_metrics_need_the_login_of_the_page_beyond_loopback(start_server) -> None:  # noqa: ANN001
    connect = outside_address() or "127.0.0.1"
    served = start_server(env={"AGILAB_PANEL_PASSWORD": PASSWORD}, address="0.0.0.0", connect=connect)

    refused = served.request("/metrics")
    assert refused.status == 302 and urlparse(refused.headers["location"]).path.endswith("/login")
    wrong = base64.b64encode(f"prometheus:{PASSWORD}x".encode()).decode()
    assert served.request("/metrics", headers={"Authorization": f"Basic {wrong}"}).status == 302
    right = base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()
    scraped = served.request("/metrics", headers={"Authorization": f"Basic {right}"})
    assert scraped.status == 200 and scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert served.request("/metrics", host=f"rebind.example:{served.port}",
                          headers={"Authorization": f"Basic {right}"}).status == 403

    login = served.request("/login", method="POST", body=urlencode({"username": "ana", "password": PASSWORD}))
    cookie = "; ".join(c.split(";")[0] for c in login.cookies if c.startswith(("user=", "id_token=")))
    assert served.request("/metrics", headers={"Cookie": cookie}).status == 200
    assert PASSWORD not in served.output()
