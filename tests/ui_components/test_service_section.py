"""ServiceSection: the snippets of its actions, its settings refused at the field, a monitor that reads
nothing while nobody watches, and START / SUBMIT / HEALTH gate / STATUS / STOP on a real Dask service."""
from __future__ import annotations

import asyncio
import json
import time
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agilab_panel import AGI
from agilab_panel.service import queue as q
from agilab_panel.service.state import read_state
from agilab_panel.ui.service_monitor import HEALTH_COLUMNS, ServiceMonitor
from agilab_panel.ui.service_section import ServiceSection
from agilab_panel.ui.state import OrchestrateState

from service.test_service_dask import service_processes, until  # tests/ is on the path (rootdir conftest)
from service.folders import empty_service_folder
from .conftest import visible_text
from .test_affordances import _unnamed


def _service_table(state: OrchestrateState) -> dict:
    return tomllib.loads(Path(state.env.settings_path).read_text()).get("service", {})


def test_each_action_shows_its_snippet_and_the_empty_state(minimal_state: OrchestrateState) -> None:
    section = ServiceSection(minimal_state)
    text = visible_text(section)
    for label in ("START", "STATUS", "HEALTH gate", "STOP", "SUBMIT"):
        assert label in text
    assert "No service data yet" in text and "Service settings" in text
    assert 'await AGI.serve(' in section.snippet.code and 'action="start"' in section.snippet.code
    assert 'workers={' in section.snippet.code
    section.control.snippet_action = "stop"
    assert 'action="stop"' in section.snippet.code and "workers=" not in section.snippet.code
    section.control.snippet_action = "submit"
    assert "await AGI.submit(" in section.snippet.code and "partitions=4" in section.snippet.code
    minimal_state.settings.args.partitions = 7  # the submit snippet follows the args
    assert "partitions=7" in section.snippet.code
    assert section.fields == {}  # the collapsed "Service settings" card makes its fields when opened
    section._settings_card.collapsed = False
    assert _unnamed(section) == [] and len(section.fields) == 15
    section.close()


def test_service_settings_are_refused_at_the_field_and_saved_when_valid(minimal_state: OrchestrateState) -> None:
    section = ServiceSection(minimal_state)
    path = Path(minimal_state.env.settings_path)
    before = path.read_bytes()
    section._settings_card.collapsed = False  # its fields are made when it opens
    section.fields["poll_interval"].value = 0.0  # below its bounds
    assert "poll_interval" in section.messages["poll_interval"].text and section.messages["poll_interval"].is_error
    section.fields["max_unhealthy"].value = -1
    assert section.messages["max_unhealthy"].is_error and minimal_state.settings.service_health.max_unhealthy == 0
    section.fields["health_output_path"].value = "../outside.json"  # a relative path stays inside the share
    assert "health_output_path" in section.messages["health_output_path"].text and path.read_bytes() == before
    section.fields["health_output_path"].value = "probes/health.json"
    assert not section.messages["health_output_path"].text
    assert tomllib.loads(path.read_text())["service"]["health_output_path"] == "probes/health.json"
    before = path.read_bytes()
    section.fields["heartbeat_timeout"].value = None  # an emptied field
    assert section.messages["heartbeat_timeout"].is_error and path.read_bytes() == before

    section.fields["poll_interval"].value = 0.5
    section.fields["max_unhealthy"].value = 1
    section.fields["allow_idle"].value = True
    assert not section.messages["poll_interval"].text and not section.messages["max_unhealthy"].text
    saved = tomllib.loads(path.read_text())
    assert saved["service"]["poll_interval"] == 0.5
    assert saved["cluster"]["service_health"]["max_unhealthy"] == 1 and saved["cluster"]["service_health"]["allow_idle"]
    assert section.service_settings().poll_interval == 0.5
    section.close()


async def test_the_monitor_reads_nothing_until_shown_and_stops_when_hidden(minimal_state: OrchestrateState) -> None:
    section = ServiceSection(minimal_state)
    monitor = section.monitor
    await asyncio.sleep(1.5)
    assert monitor.ticks == 0 and not monitor.watching  # built, never shown: no work
    root = section._layout.get_root()  # rendered, as for a browser session or a notebook output
    assert monitor.shown and monitor.watching and monitor.ticks == 1 and monitor.status == "idle"
    await until(lambda: monitor.ticks >= 3, "the monitor ticks once a second")
    section._layout.collapsed = True
    assert not monitor.watching
    ticks = monitor.ticks
    await asyncio.sleep(2.5)
    assert monitor.ticks == ticks
    section._layout.collapsed = False
    assert monitor.watching
    section._layout._cleanup(root)  # the session is gone
    assert not monitor.shown and not monitor.watching
    ticks = monitor.ticks
    await asyncio.sleep(1.5)
    assert monitor.ticks == ticks
    section._layout.collapsed = True
    section._layout.collapsed = False  # opened again with nobody to see it: still nothing
    assert not monitor.watching
    section.close()


@pytest.fixture
async def service_state(installed, use_home) -> AsyncIterator[OrchestrateState]:  # noqa: ANN001
    use_home(installed("minimal_app"))
    state = OrchestrateState("minimal_app")
    paths = q.ServicePaths.of(state.env.share, state.env.app)
    empty_service_folder(state.env.share, state.env.app)
    yield state
    running = read_state(paths)
    if running is not None:
        await AGI.serve(state.env, "stop", stop_timeout=5)
        assert service_processes(running.cluster_dir) == []


@pytest.mark.integration
async def test_start_submit_health_status_stop_on_a_real_service(service_state: OrchestrateState) -> None:
    state = service_state
    section = ServiceSection(state)
    section._layout.get_root()  # shown: it watches
    control, monitor = section.control, section.monitor
    paths = q.ServicePaths.of(state.env.share, state.env.app)

    started = await control.act("start")
    assert started is not None and started["status"] == "running", control.outcome
    assert control.ok and "START" in control.outcome and 'action="start"' in section.snippet.code
    service = read_state(paths)
    assert len(service_processes(service.cluster_dir)) == 3  # scheduler and two workers
    assert monitor.status == "running" and [r["worker"] for r in monitor.rows] == ["127.0.0.1-0", "127.0.0.1-1"]
    assert list(monitor.table.value.columns) == HEALTH_COLUMNS and monitor.table.value["healthy"].all()
    assert "No service data yet" not in visible_text(section)

    state.settings.args.partitions = 2
    submission = await control.act("submit")
    assert submission and control.last_submission == submission and "AGI.submit(" in section.snippet.code
    record = await AGI.wait_submission(state.env, submission, timeout=120)
    assert record["status"] == "done"
    await until(lambda: monitor.queue.get("done") == 2, "the monitor counts the done tasks")
    assert len(monitor.ages.data) >= 2 and set(monitor.counts.data["queue"]) == {"pending", "running", "done", "failed"}

    gate = await control.act("health")
    assert gate["gate"]["code"] == 0 and control.ok and "exit code 0" in control.outcome
    status = await control.act("status")
    assert status["status"] == "running" and "STATUS" in control.outcome

    stopped = await control.act("stop")
    assert stopped["status"] == "stopped" and control.ok, control.outcome
    assert service_processes(service.cluster_dir) == [] and read_state(paths) is None
    monitor.tick()
    assert monitor.status == "idle" and monitor.queue["done"] == 2
    assert json.loads(paths.health_file.read_text())["status"] == "stopped"

    refused = await control.act("submit")  # a stopped service: one line, nothing queued
    assert refused is None and not control.ok and "no service is running" in control.outcome
    assert q.counts(paths)["pending"] == 0
    section.close()


def test_a_monitor_keeps_its_columns_when_there_is_no_service(tmp_path: Path) -> None:
    monitor = ServiceMonitor(tmp_path, "nothing_here")
    snap = monitor.tick()
    assert snap["status"] == "idle" and monitor.ticks == 1 and not monitor.watching
    assert list(monitor.table.value.columns) == HEALTH_COLUMNS and monitor.table.value.empty
    assert "Queue: pending **0**" in monitor._queue.object and time.time() >= snap["time"]


async def test_a_button_runs_its_action(minimal_state: OrchestrateState) -> None:
    section = ServiceSection(minimal_state)
    section.buttons["status"].clicks += 1  # what a click in the browser does
    await until(lambda: "STATUS" in section.control.outcome, "the click ran STATUS")
    assert section.control.snippet_action == "status" and 'action="status"' in section.snippet.code
    assert "no service" in section.control.outcome.lower(), section.control.outcome
    section.close()


def test_the_section_follows_another_app_in_place(minimal_state: OrchestrateState) -> None:
    """The page keeps an idle Service section across an app switch: nothing of the previous app's service
    stays (outcome, health table, plotted history), the monitor reads the new app's folder."""
    section = ServiceSection(minimal_state)
    assert section.follows_app and section._outcome_box.objects == []  # no outcome yet: none sent to the page
    section.control.param.update(outcome="**STOP:** stopped", ok=True)
    assert section._outcome in section._outcome_box and section._outcome_box.visible
    section.monitor.apply({"status": "running", "message": "1 loop", "queue": {"pending": 2},
                           "rows": [{"worker": "w1", "healthy": True, "heartbeat_age_sec": 0.5}]})
    assert section._outcome.visible and not section.monitor.table.value.empty and section.monitor._plots.objects
    minimal_state.app = "flight_telemetry"
    monitor = section.monitor
    assert monitor.app == "flight_telemetry" and monitor.share == str(minimal_state.env.share)
    assert section.control.outcome == "" and not section._outcome.visible and not section._outcome_box.visible
    assert monitor.status == "" and monitor.table.value.empty and not monitor._plots.visible
    assert monitor.ages.data.empty and monitor._empty.visible and "flight_telemetry" in monitor._status.object
    section.control.busy = "status"  # an action's outcome belongs to its app: the page builds a new section
    assert not section.follows_app
    section.close()
