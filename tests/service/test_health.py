"""The health snapshot: every field of SPEC §8, written atomically where asked and never outside the share
when the path is relative; ``[service]`` settings; bad input refused before anything is written."""
from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from agilab_panel import AGI, AgiEnv
from agilab_panel.service.config import load_service_settings
from agilab_panel.service.health import HEALTH_SCHEMA, HealthFileError, build_payload, load_health_file
from agilab_panel.settings import AppSettings, SettingsFileError

SPEC_FIELDS = {"schema", "timestamp", "app", "target", "status", "workers_running", "workers_pending",
               "workers_restarted", "workers_healthy", "workers_unhealthy", "workers_running_count",
               "workers_pending_count", "workers_restarted_count", "workers_healthy_count",
               "workers_unhealthy_count", "queue", "heartbeat_timeout_sec", "restart_reasons", "worker_health",
               "cleanup"}


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_payload_has_every_field_and_consistent_counts() -> None:
    rows = [{"worker": "a", "healthy": True, "reason": "", "future_state": "pending", "heartbeat_state": "processing",
             "heartbeat_age_sec": 0.1},
            {"worker": "b", "healthy": False, "reason": "missing-heartbeat", "future_state": "pending",
             "heartbeat_state": "missing", "heartbeat_age_sec": None},
            {"worker": "c", "healthy": True, "reason": "", "future_state": "pending", "heartbeat_state": "missing",
             "heartbeat_age_sec": None}]
    payload = build_payload(app="x", status="degraded", rows=rows, queue={"pending": 2}, heartbeat_timeout=10,
                            restarted={"b": "missing-heartbeat"})
    assert SPEC_FIELDS <= set(payload) and payload["schema"] == HEALTH_SCHEMA
    assert payload["workers_running"] == ["a"] and payload["workers_pending"] == ["c"]
    assert payload["workers_unhealthy"] == ["b"] and payload["workers_restarted"] == ["b"]
    assert all(payload[f"workers_{k}_count"] == len(payload[f"workers_{k}"])
               for k in ("running", "pending", "restarted", "healthy", "unhealthy"))
    assert payload["queue"] == {"pending": 2, "running": 0, "done": 0, "failed": 0}
    assert payload["restart_reasons"] == {"b": "missing-heartbeat"}


async def test_health_of_a_service_never_started_is_idle_and_written_to_the_share(agilab_dirs) -> None:
    env = AgiEnv("minimal_app", verbose=0)
    payload = await AGI.serve(env, action="health")
    path = agilab_dirs["AGI_CLUSTER_SHARE"] / "service" / "minimal_app" / "health.json"
    assert payload["path"] == str(path) and payload["status"] == "idle" and payload["worker_health"] == []
    written = json.loads(path.read_text())
    assert written == {k: v for k, v in payload.items() if k != "path"}
    assert load_health_file(path)["status"] == "idle"


async def test_a_relative_output_path_stays_in_the_share_and_an_escape_changes_nothing(agilab_dirs, tmp_path) -> None:
    env = AgiEnv("minimal_app", verbose=0)
    share = agilab_dirs["AGI_CLUSTER_SHARE"]
    result = await AGI.serve(env, action="status", health_output_path="monitoring/custom_health.json")
    assert result["health_path"] == str(share / "monitoring" / "custom_health.json")
    before = _files(tmp_path)
    for escape in ("../outside.json", "monitoring/../../outside.json"):
        with pytest.raises(ValueError, match="outside the cluster share"):
            await AGI.serve(env, action="health", health_output_path=escape)
    (share / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(ValueError, match="outside the cluster share"):
        await AGI.serve(env, action="health", health_output_path="link/health.json")
    assert _files(tmp_path) == sorted([*before, "share/link"])


async def test_bad_options_are_refused_before_any_file_is_written(agilab_dirs) -> None:
    env = AgiEnv("minimal_app", verbose=0)
    share = agilab_dirs["AGI_CLUSTER_SHARE"]
    with pytest.raises(ValueError, match="action must be one of start, status, health, stop"):
        await AGI.serve(env, action="restart")
    with pytest.raises(ValueError, match="unknown service option 'heartbeat_timout'"):
        await AGI.serve(env, action="status", heartbeat_timout=3)
    with pytest.raises(ValueError, match="'poll_interval'"):
        await AGI.serve(env, action="status", poll_interval=-1)
    with pytest.raises(ValueError, match="'stop_timeout' must be a number"):
        await AGI.serve(env, action="stop", stop_timeout=True)
    assert not (share / "service").exists()


async def test_submitting_to_a_stopped_service_is_one_line_and_writes_nothing(agilab_dirs) -> None:
    env = AgiEnv("minimal_app", verbose=0)
    with pytest.raises(RuntimeError, match=r"^no service is running for app minimal_app: start it first") as info:
        await AGI.submit(env, partitions=2)
    assert "\n" not in str(info.value)
    assert not (agilab_dirs["AGI_CLUSTER_SHARE"] / "service").exists()


def test_service_settings_come_from_the_service_table(agilab_dirs) -> None:
    settings = AppSettings(AgiEnv("minimal_app", verbose=0))
    defaults = load_service_settings(settings)
    assert (defaults.heartbeat_timeout, defaults.cleanup_done_ttl_sec, defaults.cleanup_failed_ttl_sec,
            defaults.cleanup_heartbeat_ttl_sec) == (10.0, 168 * 3600, 336 * 3600, 24 * 3600)
    assert (defaults.cleanup_done_max_files, defaults.cleanup_failed_max_files,
            defaults.cleanup_heartbeat_max_files) == (2000, 2000, 1000)
    path = settings.store.path
    path.write_text(path.read_text() + "\n[service]\nheartbeat_timeout = 4.5  # seconds\nmax_retries = 0\n")
    loaded = load_service_settings(settings)
    assert (loaded.heartbeat_timeout, loaded.max_retries) == (4.5, 0)
    path.write_text(path.read_text().replace("max_retries = 0", "max_retrys = 0"))
    with pytest.raises(SettingsFileError, match=r"\[service\] unknown service setting 'max_retrys'"):
        load_service_settings(settings)


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a JSON object but list"),
    ('{"schema": "other"}', "schema is 'other'"),
    (json.dumps({"schema": HEALTH_SCHEMA, "status": "fine"}), "status 'fine' is not one of"),
])
def test_a_file_that_is_not_a_health_payload_is_refused_naming_why(tmp_path, content: str, message: str) -> None:
    path = tmp_path / "health.json"
    path.write_text(content)
    with pytest.raises(HealthFileError, match=message) as info:
        load_health_file(path)
    assert "\n" not in str(info.value)


async def test_status_applies_retention_from_its_options_and_reports_it(agilab_dirs) -> None:
    env = AgiEnv("minimal_app", verbose=0)
    root = agilab_dirs["AGI_CLUSTER_SHARE"] / "service" / "minimal_app" / "queue"
    now = time.time()
    ages = {"done": {"a": 10, "b": 20, "c": 30, "old": 4000}, "failed": {"x": 10, "old": 9000},
            "heartbeats": {"h1": 10, "h2": 20}}
    for folder, files in ages.items():
        (root / folder).mkdir(parents=True)
        for name, age in files.items():
            (root / folder / f"{name}.json").write_text("{}")
            os.utime(root / folder / f"{name}.json", (now - age, now - age))
    result = await AGI.serve(env, "status", cleanup_done_ttl_sec=3600, cleanup_done_max_files=2,
                             cleanup_failed_ttl_sec=7200, cleanup_heartbeat_max_files=1)
    assert result["health"]["cleanup"] == {"done": 2, "failed": 1, "heartbeats": 1, "submissions": 0}
    assert sorted(p.name for p in (root / "done").iterdir()) == ["a.json", "b.json"]
    assert sorted(p.name for p in (root / "failed").iterdir()) == ["x.json"]
    assert sorted(p.name for p in (root / "heartbeats").iterdir()) == ["h1.json"]
    assert result["health"]["queue"] == {"pending": 0, "running": 0, "done": 2, "failed": 1}


def test_a_state_file_that_cannot_be_read_is_named_and_left_as_it_is(agilab_dirs, capsys) -> None:
    from agilab_panel.cli import main
    from agilab_panel.service.state import ServiceStateError

    env = AgiEnv("minimal_app", verbose=0)
    state = agilab_dirs["AGI_CLUSTER_SHARE"] / "service" / "minimal_app" / "service.json"
    state.parent.mkdir(parents=True)
    state.write_text('{"schema": "agi.service.state.v1", "app": ')
    for action in ("status", "stop", "start"):
        with pytest.raises(ServiceStateError, match=f"service state file {state} cannot be read"):
            asyncio.run(AGI.serve(env, action))
    assert main(["health", "--app", "minimal_app"]) == 1
    assert capsys.readouterr().err.startswith(f"error: service state file {state} cannot be read")
    assert state.read_text() == '{"schema": "agi.service.state.v1", "app": '
    assert sorted(p.name for p in state.parent.iterdir()) == ["service.json"]


async def test_a_start_with_bad_input_or_no_install_writes_nothing(agilab_dirs) -> None:
    env = AgiEnv("minimal_app", verbose=0)
    with pytest.raises(ValueError, match="slots"):
        await AGI.serve(env, "start", workers={"127.0.0.1": 0})
    with pytest.raises(RuntimeError, match="not installed"):
        await AGI.serve(env, "start", workers={"127.0.0.1": 2})
    assert not (agilab_dirs["AGI_CLUSTER_SHARE"] / "service").exists()
