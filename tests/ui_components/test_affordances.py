"""What a newcomer expects of the controls: names on every control, the editable cells marked, no sort
arrows on one row, weights explained, numbers written one way, hosts named as the worker map names them."""
from __future__ import annotations

import pandas as pd
import panel as pn

from agilab_panel.events import LogLine
from agilab_panel.plan import Partition, build_plan
from agilab_panel.ui.distribute_section import EDITABLE_CSS, DistributeSection
from agilab_panel.ui.install_section import InstallSection
from agilab_panel.ui.offline import SPINNER_CSS, SWITCH_CSS, TOGGLE_GROUP_CSS, OfflineFast
from agilab_panel.ui.run_section import RunSection
from agilab_panel.ui.settings_section import SystemSettingsSection
from agilab_panel.ui.state import OrchestrateState
from agilab_panel.ui.tables import NO_SORT_CSS, show_frame

from .conftest import visible_text, walk


def _unnamed(component: object) -> list[object]:
    """Widgets a screen reader would announce without a name."""
    found = []
    for item in walk(component):
        if isinstance(item, pn.widgets.Widget) and item.visible and not isinstance(
                item, (pn.widgets.Tabulator, pn.widgets.FileDownload, pn.widgets.Button, pn.widgets.RadioButtonGroup)):
            if not (getattr(item, "label", None) or item.name):
                found.append(item)
    return found


def test_every_widget_of_the_sections_has_a_name(minimal_state: OrchestrateState) -> None:
    for section in (SystemSettingsSection(minimal_state), InstallSection(minimal_state), DistributeSection(minimal_state),
                    RunSection(minimal_state)):
        assert _unnamed(section) == [], type(section).__name__
    run = RunSection(minimal_state)
    assert run.benchmark_toggle.label == "Benchmark all modes"  # the switch carries its label (clickable)
    minimal_state.bus.log("a line", source="run")  # the log's toolbar shows with its first line
    run.logs.flush()
    assert isinstance(run.logs._toolbar.objects[2], pn.widgets.Switch)  # "Follow the tail"
    assert run.logs._toolbar in run.logs._lines_view and _unnamed(run) == []
    settings = SystemSettingsSection(minimal_state)
    assert isinstance(settings.widgets["verbose"], pn.widgets.IntInput)  # a named field, not an unnamed handle
    assert settings.widgets["verbose"].label == "Verbosity level"


def test_the_design_makes_labels_clickable_and_pressed_toggles_look_pressed() -> None:
    modifiers = OfflineFast.modifiers
    assert SWITCH_CSS in modifiers[pn.widgets.Switch]["stylesheets"] and "left: -100vw" in SWITCH_CSS
    assert SPINNER_CSS in modifiers[pn.widgets.IntInput]["stylesheets"]
    assert TOGGLE_GROUP_CSS in modifiers[pn.widgets.RadioButtonGroup]["stylesheets"] and ".bk-active" in TOGGLE_GROUP_CSS


def test_one_row_shows_no_sort_arrows() -> None:
    make = lambda frame: pn.widgets.Tabulator(frame)  # noqa: E731
    table = show_frame(None, pd.DataFrame({"host": ["127.0.0.1"]}), make)
    assert NO_SORT_CSS in table.stylesheets
    same = show_frame(table, pd.DataFrame({"host": ["127.0.0.1", "192.0.2.10"]}), make)
    assert same is table and NO_SORT_CSS not in table.stylesheets
    show_frame(table, pd.DataFrame({"host": ["127.0.0.1"]}), make)
    assert table.stylesheets.count(NO_SORT_CSS) == 1


def test_workplan_marks_editable_cells_and_says_what_a_weight_is(minimal_state: OrchestrateState) -> None:
    section = DistributeSection(minimal_state)
    minimal_state.plan = build_plan("minimal_app", [Partition(f"p{i}", 1234.5 * (i + 1)) for i in range(3)],
                                    {"127.0.0.1": 2}, minimal_state.settings.args_dict)
    table = section.workplan.table
    assert table.editors["worker slot"] and table.editors["partition"] is None and table.editors["weight"] is None
    assert EDITABLE_CSS in table.stylesheets and ".tabulator-editable" in EDITABLE_CSS
    assert table.titles["worker slot"] == "worker slot ✎" and table.titles["weight"] == "weight (relative work)"
    assert table.formatters["weight"]["thousand"] == ","
    text = visible_text(section)
    assert "only the ratios matter" in text and "the tinted cells" in text
    assert NO_SORT_CSS not in table.stylesheets
    minimal_state.plan = build_plan("minimal_app", [Partition("only", 1.0)], {"127.0.0.1": 1},
                                    minimal_state.settings.args_dict)
    assert NO_SORT_CSS in table.stylesheets


def test_install_logs_name_this_machine_as_the_worker_map_does(minimal_state: OrchestrateState) -> None:
    section = InstallSection(minimal_state)
    minimal_state.bus.emit(LogLine(text="uv venv", source="install", host="localhost", step="venv"))
    minimal_state.bus.emit(LogLine(text="ssh", source="install", host="192.0.2.10", step="venv"))
    section.logs.flush()
    assert [line.host for line in section.logs.lines] == ["127.0.0.1", "192.0.2.10"]
    assert "[127.0.0.1]" in section.logs.text and "localhost" not in section.logs.text
