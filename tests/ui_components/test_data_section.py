"""LOAD DATA (paginated preview that survives a rerun) and Prepare Data (columns → export.csv)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from agilab_panel.execute.result import RunResult
from agilab_panel.ui.data_section import LoadDataSection, PrepareDataSection
from agilab_panel.ui.state import OrchestrateState

from .conftest import visible_text, walk


def _output(state: OrchestrateState, name: str, rows: int, extra: str = "") -> Path:
    """An output parquet, recorded as the latest run's output (what AGI.run does)."""
    path = Path(state.env.share) / "minimal_app" / "data_out" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"item": [f"i{k}" for k in range(rows)], "value": range(rows), "score": [k / 2 for k in range(rows)]})
    if extra:
        frame[extra] = 1
    frame.to_parquet(path, index=False)
    state.env.user_app_dir.mkdir(parents=True, exist_ok=True)
    (state.env.user_app_dir / "last_run.json").write_text(json.dumps({"output": str(path), "mode": 0}))
    return path


def _run_result(path: Path) -> RunResult:
    return RunResult(app="minimal_app", mode=0, seconds=0.1, plan_source="built", plan_note="", plan={},
                     output=str(path), rows=0, columns=[], partitions=[], workers={}, nodes=1)


@pytest.fixture
def state(minimal_state: OrchestrateState) -> OrchestrateState:
    return minimal_state


async def test_load_data_without_output_says_what_to_do(state: OrchestrateState) -> None:
    section = LoadDataSection(state)
    assert "Nothing loaded yet" in visible_text(section)
    assert await section.load() is None
    assert "No output yet: RUN the app first" in visible_text(section)


async def test_preview_is_paginated_and_survives_a_rerun(state: OrchestrateState) -> None:
    first = _output(state, "first.parquet", 45)
    section = LoadDataSection(state)
    frame = await section.load()
    assert frame is not None and len(frame) == 45
    table = section.table
    assert table is not None and table.pagination == "remote" and table.page_size == 20 and table.disabled
    assert len(table.value) == 45 and table.value.columns.tolist() == ["item", "value", "score"]
    assert "45 rows × 3 columns" in visible_text(section) and str(first) in visible_text(section)

    second = _output(state, "second.parquet", 7, extra="new_col")  # a rerun writes another output
    state.run_result = _run_result(second)
    assert len(section.table.value) == 45  # the preview stays until LOAD DATA is pressed again
    assert "A newer output was written" in visible_text(section)

    section.load_button.clicks += 1  # LOAD DATA again
    await section.load()
    assert len(section.table.value) == 7 and "new_col" in section.table.value.columns
    # other columns, another table: a Tabulator changing its columns in place fails in the browser
    assert section.table is not table and section._body.objects == [section.table]
    assert "A newer output was written" not in visible_text(section)
    table = section.table
    _output(state, "third.parquet", 9, extra="new_col")  # the same columns: the same table, updated in place
    await section.load()
    assert section.table is table and len(table.value) == 9 and table.page == 1


async def test_unreadable_output_is_a_readable_error(state: OrchestrateState) -> None:
    path = _output(state, "broken.parquet", 3)
    path.write_text("not parquet")
    section = LoadDataSection(state)
    await section.load()
    alerts = [o for o in walk(section) if getattr(o, "alert_type", None) == "danger"]
    assert alerts and alerts[0].object.startswith("LOAD DATA failed: cannot read")
    assert "Traceback" not in alerts[0].object
    assert any(getattr(o, "title", None) == "Details" and o.collapsed for o in walk(section))


async def test_another_app_clears_the_preview(state: OrchestrateState) -> None:
    _output(state, "out.parquet", 5)
    section = LoadDataSection(state)
    await section.load()
    table = section.table
    state.app = "flight_telemetry"
    assert section.frame is None and "Nothing loaded yet" in visible_text(section)
    assert section.table is None and section._body.objects != [table]  # the page no longer shows that table

    state.app = "minimal_app"  # back: the same columns get a new table, not the one the page dropped
    await section.load()
    assert section.table is not None and section.table is not table and section._body.objects == [section.table]


async def test_one_load_at_a_time(state: OrchestrateState, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second LOAD DATA while one reads the output starts no second read, and the button's spinner
    ends with the read under way."""
    import asyncio
    import threading

    from agilab_panel.ui import data_section

    _output(state, "out.parquet", 5)
    release, reads = threading.Event(), []

    def slow_read(path: object) -> pd.DataFrame:
        reads.append(path)
        release.wait(10)
        return pd.read_parquet(path)

    monkeypatch.setattr(data_section, "output_frame", slow_read)
    section = LoadDataSection(state)
    first = asyncio.create_task(section.load())
    while not reads:
        await asyncio.sleep(0.01)
    assert section.load_button.loading
    assert await section.load() is None and len(reads) == 1  # refused at once, no second read
    release.set()
    frame = await first
    assert frame is not None and len(frame) == 5 and not section.load_button.loading and len(reads) == 1


async def test_prepare_data_select_all_and_export(state: OrchestrateState) -> None:
    section = PrepareDataSection(state)
    assert "No output yet" in visible_text(section)
    assert section.export_button.disabled and section.selector.disabled

    path = _output(state, "out.parquet", 12)
    state.run_result = _run_result(path)  # a finished run refreshes the columns
    assert section.selector.options == ["item", "value", "score"]
    section.select_all.clicks += 1
    assert section.selector.value == ["item", "value", "score"]
    section.selector.value = ["score", "item"]
    assert not section.export_button.disabled and section.export_button.label == "Write export.csv (2 columns)"
    written = await section.export()
    assert written == state.env.export_csv and written.exists()
    exported = pd.read_csv(written)
    assert exported.columns.tolist() == ["score", "item"] and len(exported) == 12
    assert str(written) in visible_text(section) and "Wrote **2 columns**" in visible_text(section)

    section.clear_button.clicks += 1
    assert section.selector.value == [] and section.export_button.disabled


async def test_prepare_data_keeps_the_choice_and_reports_failures(state: OrchestrateState) -> None:
    path = _output(state, "out.parquet", 4)
    section = PrepareDataSection(state)
    section.selector.value = ["value"]
    _output(state, "out2.parquet", 4, extra="more")
    section.refresh_button.clicks += 1
    assert section.selector.options == ["item", "value", "score", "more"] and section.selector.value == ["value"]
    Path(section.source).unlink()  # the output disappeared since the columns were read
    assert await section.export() is None
    text = visible_text(section)
    assert "Export failed:" in text and "does not exist" in text
    assert not state.env.export_csv.exists()
    assert path.exists()
