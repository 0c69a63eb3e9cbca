"""RunSection: the gate before INSTALL, the snippet, RUN / Cancel, outcome, errors and benchmark results.

AGI.run is replaced by a fake that emits the same events and returns the same results as the engine,
so these tests stay fast; the browser test runs the real engine.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pandas as pd
import pytest

from agilab_panel.agi import AGI
from agilab_panel.benchmark import write_benchmark
from agilab_panel.events import EventBus, PartitionEvent, RunEvent
from agilab_panel.execute.result import BenchmarkResult, PartitionStatus, RunError, RunResult
from agilab_panel.ui.run_section import RunSection, benchmark_frame
from agilab_panel.ui.state import OrchestrateState

from .conftest import visible_text, walk


def _result(mode: int = 0, seconds: float = 1.25, note: str = "using the saved work plan (edited)",
            output: str | None = "/data/out.parquet") -> RunResult:
    parts = [PartitionStatus(label=f"p{i}", worker=f"127.0.0.1-{i % 2}", status="done", seconds=0.2) for i in range(4)]
    return RunResult(app="minimal_app", mode=mode, seconds=seconds, plan_source="saved", plan_note=note, plan={},
                     output=output, rows=4, columns=["a", "b"], partitions=parts, workers={"127.0.0.1": 2}, nodes=1)


def _fake_run(monkeypatch: pytest.MonkeyPatch, outcome: Any, delay: float = 0.0) -> list[Any]:
    calls: list[Any] = []

    async def run(env: Any, request: Any = None, *, events: EventBus, keep_cluster: bool = True) -> Any:
        calls.append(request)
        events.emit(RunEvent(app=env.app, mode=0, state="started"))
        events.log("running", source="run")
        events.emit(PartitionEvent(label="p0", worker="127.0.0.1-0", state="started"))
        await asyncio.sleep(delay)
        if isinstance(outcome, BaseException):
            raise outcome
        events.emit(PartitionEvent(label="p0", worker="127.0.0.1-0", state="done", seconds=delay))
        return outcome

    monkeypatch.setattr(AGI, "run", staticmethod(run))
    return calls


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
    assert "mode=None" in section.snippet.code
    assert "times 1 mode" in visible_text(section)
    state.settings.cluster.pool = True  # toggles change both the snippet and the modes benchmarked
    assert "times 2 modes: 0: python, 1: pool" in visible_text(section)
    state.benchmark_all = False
    assert "AGI.POOL_MODE" in section.snippet.code and "runs mode 1: pool" in visible_text(section)


async def test_run_shows_the_outcome_and_the_plan_note(state: OrchestrateState, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _fake_run(monkeypatch, _result())
    state.installed = True
    section = RunSection(state)
    await section._on_run()
    assert len(calls) == 1 and calls[0].mode == 0
    text = visible_text(section)
    assert "RUN done in 1.25 s" in text and "mode 0: python" in text
    assert "Work plan: using the saved work plan (edited)." in text
    assert "4 rows × 2 columns" in text and "LOAD DATA previews it" in text
    section.logs.flush()
    assert [line.text for line in section.logs.lines] == ["running"]
    section.progress.flush()
    assert section.progress.done == 1


async def test_run_failure_is_readable_with_details_on_demand(state: OrchestrateState,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_run(monkeypatch, RunError("partition p3 failed on 127.0.0.1-1: ValueError: bad row"))
    state.installed = True
    section = RunSection(state)
    await section._on_run()
    assert state.error == "RUN failed: partition p3 failed on 127.0.0.1-1: ValueError: bad row"
    alerts = [o for o in walk(section) if getattr(o, "alert_type", None) == "danger"]
    assert [a.object for a in alerts] == [state.error]
    assert "Traceback" not in visible_text(section).split("Details")[0]  # no traceback up front
    details = [o for o in walk(section) if getattr(o, "title", None) == "Details"]
    assert details and details[0].collapsed
    assert "Traceback" in details[0].objects[0].object
    assert not section.run_button.disabled  # ready for another try


async def test_cancel_stops_the_run(state: OrchestrateState, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_run(monkeypatch, _result(), delay=30)
    state.installed = True
    section = RunSection(state)
    task = asyncio.create_task(section._on_run())
    for _ in range(100):
        await asyncio.sleep(0.01)
        if state.busy == "RUN":
            break
    assert section.run_button.disabled and not section.cancel_button.disabled
    section.cancel_button.clicks += 1
    await asyncio.wait_for(task, 5)
    assert state.error == "RUN cancelled" and state.busy == ""
    warnings = [o for o in walk(section) if getattr(o, "alert_type", None) == "warning"]
    assert any(w.object == "RUN cancelled" for w in warnings)


def test_benchmark_results_from_benchmark_json(state: OrchestrateState) -> None:
    section = RunSection(state)
    assert "No benchmark yet" in visible_text(section)
    runs = [_result(0, 2.0), _result(1, 0.8), _result(4, 1.0)]
    write_benchmark(state.env.benchmark_path, "minimal_app", runs, {5: "no Dask here"})
    fresh = RunSection(state)  # a page opened later reads benchmark.json
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


async def test_benchmark_run_updates_table_and_bars(state: OrchestrateState, monkeypatch: pytest.MonkeyPatch) -> None:
    table = {str(m): {"mode": m, "mode_str": "", "label": lbl, "seconds": s, "order": o, "delta_pct": d,
                      "speedup": sp, "nodes": 1, "workers": 2, "rows": 4}
             for m, lbl, s, o, d, sp in [(0, "0: python", 1.0, 2, 100.0, 1.0), (1, "1: pool", 0.5, 1, 0.0, 2.0)]}
    bench = BenchmarkResult(app="minimal_app", runs=[_result(0, 1.0), _result(1, 0.5)], table=table, path="bench.json")
    calls = _fake_run(monkeypatch, bench)
    state.installed = True
    state.benchmark_all = True
    section = RunSection(state)
    await section._on_run()
    assert calls[0].mode is None  # a benchmark of the enabled modes
    assert state.benchmark_result is bench and state.run_result is bench.runs[-1]
    assert section._bench_table.value["label"].tolist() == ["1: pool", "0: python"]
    assert "From `bench.json`" in visible_text(section)


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
