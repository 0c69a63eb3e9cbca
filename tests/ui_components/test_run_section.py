"""RunSection: the gate before INSTALL, the snippet, RUN / Cancel, outcome, errors and benchmark results.

RUN goes through the real engine (minimal_app, and a test app whose partitions fail on demand),
installed once per test session.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from agilab_panel.agi import AGI
from agilab_panel.benchmark import write_benchmark
from agilab_panel.events import PartitionEvent
from agilab_panel.execute.result import PartitionStatus, RunResult
from agilab_panel.ui.run_section import RunSection, benchmark_frame
from agilab_panel.ui.state import OrchestrateState

from .conftest import visible_text, walk

FAULTY_APPS = Path(__file__).resolve().parents[1] / "integration" / "apps"
MODES = AGI.POOL_MODE | AGI.DASK_MODE


def _result(mode: int = 0, seconds: float = 1.25) -> RunResult:
    parts = [PartitionStatus(label=f"p{i}", worker=f"127.0.0.1-{i % 2}", status="done", seconds=0.2) for i in range(4)]
    return RunResult(app="minimal_app", mode=mode, seconds=seconds, plan_source="saved", plan_note="", plan={},
                     output=None, rows=4, columns=["a", "b"], partitions=parts, workers={"127.0.0.1": 2}, nodes=1)


@pytest.fixture
def installed_state(installed, use_home) -> OrchestrateState:  # noqa: ANN001
    use_home(installed("minimal_app", modes_enabled=MODES))
    state = OrchestrateState("minimal_app")
    assert state.installed
    return state


@pytest.fixture
def faulty_state(installed, use_home) -> OrchestrateState:  # noqa: ANN001
    use_home(installed("faulty_app", modes_enabled=MODES, apps_path=FAULTY_APPS))
    state = OrchestrateState("faulty_app", apps_path=[str(FAULTY_APPS)])
    assert state.installed
    return state


@pytest.fixture
def state(minimal_state: OrchestrateState) -> OrchestrateState:
    return minimal_state


def test_run_is_gated_until_install(state: OrchestrateState) -> None:
    state.installed = False
    section = RunSection(state)
    assert section.run_button.disabled
    assert "Run INSTALL first" in visible_text(section)
    state.installed = True
    assert not section.run_button.disabled
    assert "Run INSTALL first" not in visible_text(section)
    state.busy = "INSTALL"  # another action running: RUN waits
    assert section.run_button.disabled and section.run_button.description == "INSTALL is running"
    state.busy = ""
    assert not section.run_button.disabled


def test_snippet_follows_the_settings_and_the_benchmark_toggle(state: OrchestrateState) -> None:
    section = RunSection(state)
    code = section.snippet.code
    assert "AGI.run(" in code and "RunRequest(" in code and "mode=0" in code
    assert section.snippet.filename == "AGI_run_minimal_app.py"
    state.benchmark_all = True
    assert "mode=[0]" in section.snippet.code
    assert "times 1 mode" in visible_text(section)
    state.settings.cluster.pool = True  # toggles change both the snippet and the modes benchmarked
    assert "times 2 modes: 0: python, 1: pool" in visible_text(section)
    state.benchmark_all = False
    assert "AGI.POOL_MODE" in section.snippet.code and "runs mode 1: pool" in visible_text(section)


async def test_run_shows_the_outcome_and_the_plan_note(installed_state: OrchestrateState) -> None:
    state = installed_state
    state.settings.save_args({"partitions": 4, "size": 100})
    await state.check_distribute()
    state.plan.reassign(state.plan.partitions[0].label, "127.0.0.1-1")
    state.save_plan()
    section = RunSection(state)
    await section._on_run()
    await AGI.shutdown()
    assert state.error == "" and state.run_result.mode == 0
    text = visible_text(section)
    assert re.search(r"RUN done in [\d.]+ s", text) and "mode 0: python" in text
    assert "Work plan: using the saved work plan (edited)." in text
    assert "4 rows × 3 columns" in text and "LOAD DATA previews it" in text
    section.logs.flush()
    assert any("using the saved work plan (edited)" in line.text for line in section.logs.lines)
    section.progress.flush()
    assert section.progress.done == 4


async def test_run_failure_is_readable_with_details_on_demand(faulty_state: OrchestrateState) -> None:
    state = faulty_state
    state.settings.save_args({"partitions": 3, "fail_on": 1})
    section = RunSection(state)
    await section._on_run()
    await AGI.shutdown()
    assert state.error == "RUN failed: partition part-1 failed on worker local: ValueError: partition 1 was told to fail"
    alerts = [o for o in walk(section) if getattr(o, "alert_type", None) == "danger"]
    assert [a.object for a in alerts] == [state.error]
    assert "Traceback" not in visible_text(section).split("Details")[0]  # no traceback up front
    details = [o for o in walk(section) if getattr(o, "title", None) == "Details"]
    assert details and details[0].collapsed
    assert "Traceback" in details[0].objects[0].object
    assert not section.run_button.disabled  # ready for another try


async def test_cancel_stops_the_run(faulty_state: OrchestrateState) -> None:
    state = faulty_state
    state.settings.save_args({"partitions": 2, "seconds": 30.0})
    section = RunSection(state)
    task = asyncio.create_task(section._on_run())
    def started() -> bool:
        return any(isinstance(e, PartitionEvent) and e.state == "started" for e in state.bus.history)

    for _ in range(600):
        await asyncio.sleep(0.05)
        if started():
            break
    assert started(), "no partition started: cancelling now would prove nothing"
    runner_jobs = [p for p in psutil.Process().children(recursive=True)  # forked from the warm runner
                   if p.parent() is not None and p.parent().pid != os.getpid()]
    assert runner_jobs  # the run's own process
    assert section.run_button.disabled and not section.cancel_button.disabled
    section.cancel_button.clicks += 1
    await asyncio.wait_for(task, 10)
    _, alive = psutil.wait_procs(runner_jobs, timeout=10)
    await AGI.shutdown()
    assert alive == []  # cancelled means stopped, children included
    assert state.error == "RUN cancelled" and state.busy == ""
    warnings = [o for o in walk(section) if getattr(o, "alert_type", None) == "warning"]
    assert any(w.object == "RUN cancelled" for w in warnings)


def test_benchmark_results_from_benchmark_json(state: OrchestrateState) -> None:
    section = RunSection(state)
    assert "No benchmark yet" in visible_text(section)
    runs = [_result(0, 2.0), _result(1, 0.8), _result(4, 1.0)]
    write_benchmark(state.env.benchmark_path, "minimal_app", runs, {5: "no Dask here"}, seconds=12.34, repeats=3)
    fresh = RunSection(state)  # a page opened later reads benchmark.json
    text = visible_text(fresh)
    assert "**Benchmark: 3 modes in 12.3 s, fastest: 1: pool** (best of 3 timed runs per mode" in text
    assert "1 mode failed" in text and "finished" in text
    body = fresh._bench_body.objects
    assert body.index(fresh._bench_summary) < body.index(fresh._bench_table)  # the line heads its table
    table = fresh._bench_table
    assert table is not None and table.disabled
    frame = table.value
    assert frame["mode"].tolist() == [1, 4, 0, 5]  # fastest first, the failed mode last
    assert frame["speedup"].tolist()[:3] == [2.5, 2.0, 1.0]
    assert "error" not in table.hidden_columns
    seconds, speedup = fresh._bench_seconds.object, fresh._bench_speedup.object
    assert (type(seconds).__name__, type(speedup).__name__) == ("Bars", "Bars")
    assert sorted(seconds.data["label"]) == ["0: python", "1: pool", "4: dask"]
    assert speedup.data.set_index("label")["speedup"].to_dict() == {"4: dask": 2.0, "1: pool": 2.5, "0: python": 1.0}


async def test_benchmark_run_updates_table_and_bars(installed_state: OrchestrateState) -> None:
    state = installed_state
    state.settings.save_args({"partitions": 2, "size": 100})
    state.settings.cluster.pool = True  # the enabled modes: 0 and 1
    state.benchmark_all = True
    section = RunSection(state)
    await section._on_run()
    await AGI.shutdown()
    assert state.error == "" and sorted(state.benchmark_result.table) == ["0", "1"]
    assert state.run_result is state.benchmark_result.runs[-1]
    assert sorted(section._bench_table.value["label"]) == ["0: python", "1: pool"]
    assert f"From `{state.env.benchmark_path}`" in visible_text(section)
    summary = state.benchmark_result.summary
    assert summary.startswith("Benchmark: 2 modes in ") and summary in visible_text(section)
    assert summary.split("fastest: ")[1] == section._bench_table.value["label"][0]  # the first row is the fastest


def test_benchmark_frame_handles_errors_only() -> None:
    frame = benchmark_frame({"8": {"mode": 8, "mode_str": "r___", "label": "8: rapids", "error": "no GPU"}})
    assert frame["error"].tolist() == ["no GPU"] and pd.isna(frame["seconds"][0])
    assert benchmark_frame(None).empty


def test_app_change_follows_the_new_settings(state: OrchestrateState) -> None:
    section = RunSection(state)
    state.app = "flight_telemetry"
    assert "flight_telemetry" in section.snippet.code
    state.settings.cluster.pool = True
    assert "AGI.POOL_MODE" in section.snippet.code


def test_no_saved_plan_and_stale_plan_hints(state: OrchestrateState) -> None:
    section = RunSection(state)
    assert "none saved yet" in visible_text(section)
    from agilab_panel.plan import WorkPlan

    state.plan = WorkPlan(app="minimal_app", workers={"127.0.0.1": 1}, args={"x": 1}, partitions=[], assignment={},
                          created=time.time())
    assert "no longer fits" in visible_text(section) and "RUN will rebuild it" in visible_text(section)
    json.dumps(section._plan_text())
