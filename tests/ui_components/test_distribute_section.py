"""Distribute: args forms (generated and custom), preview vs last RUN metrics, CHECK DISTRIBUTE, the
distribution tree and the Workplan editor."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import tomllib
from pathlib import Path

import pytest

from agilab_panel.apps import AppSpec
from agilab_panel.ui.distribute_section import DistributeSection
from agilab_panel.ui.state import OrchestrateState

from .conftest import visible_text, walk


def _args_file(state: OrchestrateState) -> dict:
    return tomllib.loads(state.env.settings_path.read_text(encoding="utf-8"))["args"]


def test_generated_form_saves_args(minimal_state: OrchestrateState) -> None:
    section = DistributeSection(minimal_state)
    editor = section.args
    text = visible_text(section)
    for title in ("Distribute", "minimal_app args", "Distribute details", "Distribution tree", "Workplan"):
        assert title in text
    assert "No distribution yet" in text and "No work plan yet" in text
    assert not editor._toggle.visible  # minimal_app has no custom form
    editor.widgets["partitions"].value = 6
    assert editor.dirty and _args_file(minimal_state)["partitions"] == 4  # not saved until Save
    assert "unsaved changes" in visible_text(section)
    editor.save_button.clicks += 1
    assert _args_file(minimal_state)["partitions"] == 6 and minimal_state.settings.args.partitions == 6
    assert not editor.dirty and "Saved to [args]" in visible_text(section)
    assert "partitions=6" in section.snippet.source  # the get_distrib snippet follows saved args


def test_invalid_arg_is_refused_at_the_field(minimal_state: OrchestrateState) -> None:
    section = DistributeSection(minimal_state)
    editor = section.args
    before = _args_file(minimal_state)
    editor.widgets["size"].value = 0
    assert editor.draft.size == 20000 and editor.field_errors.keys() == {"size"}
    assert "Not accepted" in visible_text(section) and editor.save_button.disabled
    editor._save()  # even if forced, nothing is written
    assert _args_file(minimal_state) == before
    editor.revert()
    assert not editor.field_errors and editor.widgets["size"].value == 20000 and not editor.save_button.disabled


def _summary(state: OrchestrateState, metrics: dict) -> Path:
    path = state.env.resolve_data_path(None, f"{state.env.app}/data_out") / "summary.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics), encoding="utf-8")
    return path


def test_custom_form_and_preview_metrics() -> None:
    state = OrchestrateState("flight_telemetry")
    assert state.env.spec.args_form is not None  # the built-in app that ships a custom form
    section = DistributeSection(state)
    editor = section.args
    assert editor.form_module is not None and editor.view.startswith("Custom")
    assert "flight_telemetry args" in visible_text(section)
    custom = [w for w in walk(editor) if getattr(w, "label", None) == "Aircraft (files)"]
    assert custom, "the app's form is shown"
    custom[0].value = 3  # typed in the custom form: the draft and the generated form follow
    assert editor.draft.n_aircraft == 3 and editor.widgets["n_aircraft"].value == 3
    rows = 3 * editor.draft.rows_per_file
    assert editor.preview()["rows"] == rows
    assert "No RUN has written metrics yet" in editor.metrics_text
    _summary(state, {"rows": rows, "aircraft": 3, "climbs": 7})
    state.param.trigger("run_result")  # what a finished RUN does
    assert f"| rows | {rows:,} | {rows:,} | ✓ |" in editor.metrics_text
    editor.widgets["n_aircraft"].value = 4  # the generated form edits the same draft
    assert "≠" in editor.metrics_text
    editor.view = "Generated form"
    assert "Aircraft (files)" not in visible_text(editor)
    editor.save_button.clicks += 1
    assert _args_file(state)["n_aircraft"] == 4


def test_last_run_metrics_come_from_the_file_the_app_declares() -> None:
    state = OrchestrateState("flight_telemetry")
    rows = state.settings.args.n_aircraft * state.settings.args.rows_per_file
    _summary(state, {"rows": 1})  # summary.json: not the declared file once the app names another
    declared = state.env.resolve_data_path(None, "flight_telemetry/data_out") / "metrics.json"
    declared.write_text(json.dumps({"rows": rows}), encoding="utf-8")
    state.env.spec = dataclasses.replace(state.env.spec, summary="metrics.json")
    editor = DistributeSection(state).args
    assert editor.last_run_metrics() == {"rows": rows}
    assert f"| rows | {rows:,} | {rows:,} | ✓ |" in editor.metrics_text
    state.env.spec = dataclasses.replace(state.env.spec, summary=None)  # declares none: nothing to compare
    assert editor.last_run_metrics() is None


def test_broken_custom_form_falls_back(minimal_state: OrchestrateState, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    form = tmp_path / "app_args_form.py"
    form.write_text("import no_such_module_here\n", encoding="utf-8")
    monkeypatch.setattr(AppSpec, "args_form", property(lambda self: form))
    section = DistributeSection(minimal_state)
    text = visible_text(section)
    assert "custom form could not be loaded" in text and "no_such_module_here" in text
    assert "Traceback" not in text  # details on demand only
    assert section.args.view == "Generated form" and "partitions" in section.args.widgets


async def test_check_distribute_tree_and_workplan(minimal_state: OrchestrateState) -> None:
    section = DistributeSection(minimal_state)
    await section._check()  # what the CHECK DISTRIBUTE button runs
    plan = minimal_state.plan
    assert plan is not None and not minimal_state.error
    nodes = set(section.tree_plot.element.Graph.I.nodes.dframe()["index"])
    assert {"host:127.0.0.1", "slot:127.0.0.1-0", "slot:127.0.0.1-1"} <= nodes
    assert {f"partition:{p.label}" for p in plan.partitions} <= nodes
    editor = section.workplan
    assert editor.table.value["partition"].tolist() == [p.label for p in plan.partitions]
    assert editor.table.editors["worker slot"]["values"] == plan.slots
    label = plan.partitions[0].label
    source = plan.assignment[label]
    target = next(s for s in plan.slots if s != source)
    before = plan.loads()
    editor.reassign(label, target)
    weight = plan.partition(label).weight
    assert plan.loads()[target] == before[target] + weight and plan.loads()[source] == before[source] - weight
    bars = editor.bars_plot.element.Bars.I.dframe()
    assert dict(zip(bars["slot"], bars["load"])) == plan.loads()  # the chart follows the edit
    edges = section.tree_plot.element.Graph.I.dframe()
    assert ((edges["source"] == f"slot:{target}") & (edges["target"] == f"partition:{label}")).any()
    assert editor.unsaved and "Unsaved changes" in visible_text(editor)

    editor.reassign(label, "10.9.9.9-0")  # not a slot of this plan
    assert plan.assignment[label] == target
    assert editor.table.value.set_index("partition").loc[label, "worker slot"] == target
    assert "no worker slot '10.9.9.9-0'" in visible_text(editor)

    editor.save_button.clicks += 1
    saved = json.loads(minimal_state.env.plan_path.read_text(encoding="utf-8"))
    assert saved["assignment"][label] == target and saved["edited"] is True
    assert not editor.unsaved and "Saved to distribution_tree.json" in visible_text(editor)

    minimal_state.settings.cluster.workers = {"127.0.0.1": 3}
    assert "worker map changed" in section.plan_note.object and section.plan_note.visible


def test_follows_app_changes_until_closed(minimal_state: OrchestrateState) -> None:
    section = DistributeSection(minimal_state)
    minimal_state.app = "flight_telemetry"
    assert section.args._layout.title == "flight_telemetry args" and "n_aircraft" in section.args.draft.param
    section.close()
    minimal_state.app = "minimal_app"
    assert section.args._layout.title == "flight_telemetry args"


async def test_check_distribute_can_be_cancelled() -> None:
    state = OrchestrateState("flight_telemetry")
    state.settings.save_args({"n_aircraft": 2, "rows_per_file": 1_000_000})  # seconds of data generation
    section = DistributeSection(state)
    assert section.cancel_button.disabled
    task = asyncio.create_task(section._check())
    for _ in range(200):
        await asyncio.sleep(0.01)
        if state.busy == "CHECK DISTRIBUTE":
            break
    assert not section.cancel_button.disabled and section.check_button.disabled
    section.cancel_button.clicks += 1
    await asyncio.wait_for(task, 5)
    assert state.error == "CHECK DISTRIBUTE cancelled" and state.busy == "" and state.plan is None
    assert not section.check_button.disabled


def test_ten_thousand_partitions_page_in_the_workplan_and_group_in_the_tree(minimal_state: OrchestrateState) -> None:
    from agilab_panel.plan import Partition, build_plan

    section = DistributeSection(minimal_state)
    plan = build_plan("minimal_app", [Partition(f"p{i:05d}", float(1 + i % 7)) for i in range(10_000)],
                      {"127.0.0.1": 2, "node-b": 2}, minimal_state.settings.args_dict)
    minimal_state.plan = plan
    editor = section.workplan
    table = editor.table
    assert len(table.value) == 10_000 and table.pagination == "local" and table.page_size == 25
    nodes = section.tree_plot.element.Graph.I.nodes.dframe()
    assert nodes["kind"].value_counts().to_dict() == {"host": 2, "slot": 4, "group": 4}  # one node per slot
    label = "p09876"  # a partition far down the table, on page 396
    target = next(s for s in plan.slots if s != plan.assignment[label])
    editor.reassign(label, target)
    assert plan.assignment[label] == target and editor.unsaved
    groups = section.tree_plot.element.Graph.I.dframe()
    weights = {t: w for t, w in zip(groups["target"], groups["weight"]) if t.startswith("group:")}
    assert weights[f"group:{target}"] == plan.loads()[target]  # the tree follows the edit

    bigger = build_plan("minimal_app", [Partition(f"p{i:05d}", 1.0) for i in range(12_000)], {"127.0.0.1": 2},
                        minimal_state.settings.args_dict)
    minimal_state.plan = bigger
    assert table.pagination == "remote"  # beyond 10,000 rows the browser gets one page at a time
    minimal_state.plan = build_plan("minimal_app", [Partition("only", 1.0)], {"127.0.0.1": 2},
                                    minimal_state.settings.args_dict)
    assert table.pagination is None
