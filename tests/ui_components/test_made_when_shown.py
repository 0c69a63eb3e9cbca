"""Parts a page shows only later are made when first shown, not with their section: a page that never
shows them never pays for them (their Panel objects, their Bokeh models)."""
from __future__ import annotations

from pathlib import Path

from agilab_panel.events import EventBus
from agilab_panel.ui.deferred import made
from agilab_panel.ui.distribute_section import DistributeSection
from agilab_panel.ui.logs import LogView
from agilab_panel.ui.new_app import NewAppDialog
from agilab_panel.ui.service_monitor import ServiceMonitor
from agilab_panel.ui.state import OrchestrateState

from .conftest import visible_text


def _made(obj: object, *names: str) -> set[str]:
    return {name for name in names if made(obj, name)}


async def test_the_workplan_table_and_chart_come_with_the_first_plan(minimal_state: OrchestrateState) -> None:
    section = DistributeSection(minimal_state)
    editor = section.workplan
    assert minimal_state.plan is None and _made(editor, "table", "bars", "bars_plot") == set()
    await section._check()
    assert _made(editor, "table", "bars", "bars_plot") == {"table", "bars", "bars_plot"}
    assert editor.table in editor._content.objects[1].objects[0].objects and editor._content.visible


def test_the_service_plots_and_table_come_with_the_first_data(tmp_path: Path) -> None:
    monitor = ServiceMonitor(tmp_path, "nothing_here")
    monitor.apply({"status": "idle", "message": "no service", "queue": {}, "rows": []})
    assert _made(monitor, "table", "_plot_panes") == set() and monitor._plots.objects == []
    monitor.apply({"status": "running", "message": "1 loop", "queue": {"pending": 1},
                   "rows": [{"worker": "w1", "healthy": True, "heartbeat_age_sec": 0.4}]})
    assert _made(monitor, "table", "_plot_panes") == {"table", "_plot_panes"}
    assert monitor._plots.objects == monitor._plot_panes and monitor._table_box.objects == [monitor.table]


def test_a_log_toolbar_and_box_come_with_the_first_line() -> None:
    bus = EventBus()
    view = LogView(bus, title="Run logs", empty_text="No run logs yet.")
    view.level = "WARNING"  # a filter changed before any line: still nothing to make
    parts = ("_box", "_count", "_dropped_note", "_download", "_toolbar")
    assert _made(view, *parts) == set() and "No run logs yet." in visible_text(view)
    bus.log("first line", level="ERROR", source="run")
    view.flush()
    assert _made(view, *parts) == set(parts) and "first line" in "".join(p.object for p in view._box.objects)
    assert view._lines_view.objects[0] is view._toolbar and view._lines_view.visible


def test_the_new_app_form_comes_when_opened(tmp_path: Path) -> None:
    dialog = NewAppDialog(OrchestrateState("minimal_app", apps_path=[str(tmp_path / "apps")]))
    assert _made(dialog, "_fields", "form") == set()
    dialog.open_button.clicks += 1
    assert _made(dialog, "_fields", "form") == {"_fields", "form"} and dialog._form_box.objects == [dialog.form]
