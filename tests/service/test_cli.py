"""``agilab-panel service`` and ``agilab-panel health``: every gate exit code, one-line errors, and a service
started, checked, fed and stopped by fresh processes (the command line in subprocesses)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agilab_panel.cli import main
from agilab_panel.service.health import build_payload
from agilab_panel.service.state import read_state
from agilab_panel.service.queue import ServicePaths

from .folders import empty_service_folder
from .test_service_dask import FAULTY_APPS, service_processes

WORKERS = json.dumps({"127.0.0.1": 2})


def _health_file(tmp_path: Path, status: str = "running", unhealthy: int = 0, rate: float = 0.0) -> Path:
    rows = [{"worker": f"w{i}", "healthy": i >= unhealthy, "reason": "" if i >= unhealthy else "missing-heartbeat",
             "future_state": "pending", "heartbeat_state": "running", "heartbeat_age_sec": 0.5} for i in range(2)]
    payload = build_payload(app="minimal_app", status=status, rows=rows, queue={"pending": 1}, heartbeat_timeout=10,
                            restart_rate=rate)
    path = tmp_path / f"health-{status}-{unhealthy}-{rate}.json"
    path.write_text(json.dumps(payload))
    return path


@pytest.mark.parametrize(("status", "unhealthy", "rate", "flags", "code"), [
    ("running", 0, 0.0, [], 0),
    ("degraded", 1, 0.0, [], 2),
    ("degraded", 1, 0.0, ["--max-unhealthy", "1"], 3),
    ("error", 0, 0.0, [], 3),
    ("idle", 0, 0.0, [], 4),
    ("stopped", 0, 0.0, ["--no-allow-idle"], 4),
    ("idle", 0, 0.0, ["--allow-idle"], 0),
    ("running", 0, 0.5, [], 5),
    ("running", 0, 0.5, ["--max-restart-rate", "0.5"], 0),
])
def test_health_exits_with_the_gate_code(tmp_path, capsys, status, unhealthy, rate, flags, code) -> None:
    path = _health_file(tmp_path, status, unhealthy, rate)
    assert main(["health", "--app", "minimal_app", "--from-file", str(path), *flags]) == code
    out, err = capsys.readouterr()
    printed = json.loads(out)
    assert printed["status"] == status and printed["gate"]["code"] == code
    assert err.startswith(f"health gate: {code} (")


def test_health_prints_prometheus_text(tmp_path, capsys) -> None:
    assert main(["health", "--app", "minimal_app", "--from-file", str(_health_file(tmp_path)),
                 "--format", "prometheus"]) == 0
    families = {f.name: f for f in text_string_to_metric_families(capsys.readouterr().out)}
    assert families["agilab_service_up"].samples[0].labels == {"app": "minimal_app"}
    assert families["agilab_service_gate_code"].samples[0].value == 0
    assert {s.labels["worker"] for s in families["agilab_service_worker_healthy"].samples} == {"w0", "w1"}


@pytest.mark.parametrize(("content", "message"), [
    ('{"schema": "agi.service.health.v1", ', "not valid JSON"),
    ('{"schema": "agi.service.health.v0"}', "schema is 'agi.service.health.v0'"),
    (b"\xff\xfe", "not UTF-8 text"),
])
def test_a_bad_health_file_is_one_line_exit_1_and_stays_as_it_was(tmp_path, capsys, content, message) -> None:
    path = tmp_path / "health.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = path.read_bytes()
    assert main(["health", "--app", "minimal_app", "--from-file", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and message in err, err
    assert path.read_bytes() == before


@pytest.mark.parametrize(("args", "message"), [
    (["--max-unhealthy", "-1"], "must be >= 0"),
    (["--format", "xml"], "invalid choice: 'xml'"),
    (["--allow-idle", "--no-allow-idle"], "not allowed with argument"),
])
def test_a_bad_health_option_is_one_line_and_exit_1_not_a_gate_code(capsys, args, message) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["health", "--app", "minimal_app", *args])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 1 and out == "" and len(err.strip().splitlines()) == 1 and message in err, err


def test_health_of_a_service_never_started_is_idle_exit_4_unless_idle_is_allowed(agilab_dirs, capsys) -> None:
    assert main(["health", "--app", "minimal_app"]) == 4
    assert json.loads(capsys.readouterr().out)["status"] == "idle"
    assert main(["health", "--app", "minimal_app", "--allow-idle"]) == 0
    assert (agilab_dirs["AGI_CLUSTER_SHARE"] / "service" / "minimal_app" / "health.json").is_file()


# -- a service run by fresh processes -------------------------------------------------------------------
def _cli(dirs: dict[str, Path], *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **{k: str(v) for k, v in dirs.items()}}
    return subprocess.run([sys.executable, "-m", "agilab_panel.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.integration
def test_a_service_started_checked_fed_and_stopped_from_fresh_processes(installed, use_home) -> None:
    dirs = installed("minimal_app")
    use_home(dirs)
    paths = ServicePaths.of(dirs["AGI_CLUSTER_SHARE"], "minimal_app")
    assert read_state(paths) is None
    app = ["--app", "minimal_app", "--verbose", "0"]
    try:
        done = _cli(dirs, "service", "start", *app, "--workers", WORKERS, "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["started"] is True
        cluster_dir = read_state(paths).cluster_dir
        pids = set(service_processes(cluster_dir))
        assert len(pids) == 3  # the scheduler and two workers outlive the command that started them

        again = _cli(dirs, "service", "start", *app)
        assert again.returncode == 0 and "already running" in again.stdout

        status = _cli(dirs, "service", "status", *app, "--json")
        health = json.loads(status.stdout)["health"]
        assert status.returncode == 0 and health["status"] == "running" and health["workers_healthy_count"] == 2

        fed = _cli(dirs, "service", "submit", *app, "--set", "partitions=3", "--set", "size=10", "--wait", "--json")
        assert fed.returncode == 0, fed.stderr
        record = json.loads(fed.stdout)
        assert record["status"] == "done" and record["rows"] == 3

        bad = _cli(dirs, "service", "submit", *app, "--set", "bogus=1")
        assert bad.returncode != 0 and bad.stderr.strip().count("\n") == 0 and "'bogus'" in bad.stderr

        probe = _cli(dirs, "health", *app, "--format", "prometheus")
        assert probe.returncode == 0, probe.stderr
        up = {f.name: f for f in text_string_to_metric_families(probe.stdout)}["agilab_service_up"]
        assert up.samples[0].value == 1
        assert set(service_processes(cluster_dir)) == pids  # checking restarted nothing

        victim = read_state(paths).slots["127.0.0.1-1"].pid
        os.kill(victim, signal.SIGKILL)
        psutil.Process(victim).wait(30)  # our grandchild no more: the command that started it has exited
        status = _cli(dirs, "service", "status", *app, "--json")
        health = json.loads(status.stdout)["health"]
        assert health["workers_restarted"] == ["127.0.0.1-1"], status.stdout + status.stderr
        respawned = read_state(paths).slots["127.0.0.1-1"].pid
        assert respawned != victim and respawned in service_processes(cluster_dir)

        stop = _cli(dirs, "service", "stop", *app, "--json")
        assert stop.returncode == 0 and json.loads(stop.stdout)["not_stopped"] == {}, stop.stdout + stop.stderr
        assert service_processes(cluster_dir) == [] and read_state(paths) is None
        assert _cli(dirs, "health", *app).returncode == 4

        late = _cli(dirs, "service", "submit", *app, "--set", "partitions=2")
        assert late.returncode != 0 and late.stderr.strip() == (
            "error: no service is running for app minimal_app: start it first "
            "(agilab-panel service start --app minimal_app)")
    finally:
        if read_state(paths) is not None:
            _cli(dirs, "service", "stop", *app)


@pytest.mark.integration
def test_submit_wait_exits_non_zero_when_a_task_fails(installed, use_home) -> None:
    dirs = installed("faulty_app", modes_enabled=4 | 1, apps_path=FAULTY_APPS)
    use_home(dirs)
    paths = ServicePaths.of(dirs["AGI_CLUSTER_SHARE"], "faulty_app")
    empty_service_folder(dirs["AGI_CLUSTER_SHARE"], "faulty_app")  # long tasks of other tests would go first
    app = ["--app", "faulty_app", "--apps-path", str(FAULTY_APPS), "--verbose", "0"]
    try:
        assert _cli(dirs, "service", "start", *app, "--workers", WORKERS).returncode == 0
        done = _cli(dirs, "service", "submit", *app, "--set", "partitions=2", "--set", "fail_on=1", "--wait")
        assert done.returncode == 1, done.stdout + done.stderr
        assert ": failed" in done.stdout and "ValueError: partition 1 was told to fail" in done.stdout
    finally:
        stop = _cli(dirs, "service", "stop", *app)
        assert stop.returncode == 0, stop.stderr
