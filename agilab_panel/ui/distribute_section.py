"""Distribute: the app's args (generated or custom form) and the distribution details.

``<module> args`` edits a draft copy of the app's args object: the generated form and the app's custom
``app_args_form.py`` both bind to that draft, so switching between them keeps what was typed. A value
the args class refuses is shown under its field and never reaches the draft; Save writes ``[args]``.
``Distribute details`` shows the ``AGI.get_distrib`` snippet, CHECK DISTRIBUTE, the distribution tree
and the Workplan editor (reassign partitions to worker slots, watch the load per slot, save).
"""
from __future__ import annotations

import functools
import importlib.util
import json
import math
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import panel as pn
import param

from ..plan import PlanError
from ..settings import args_to_dict
from .snippet_view import SnippetView
from .logs import ActionStatus, Watchers, cancel_button, details_card
from .offline import icon
from .inplace_plot import InPlacePlot
from .plan_graph import bars_shape, compact_number, load_bars, plan_tree, tree_shape
from .settings_section import FieldMessage
from .deferred import show_when
from .tables import sort_arrows

__all__ = ["ArgsEditor", "DistributeSection", "WorkplanEditor", "load_args_form", "summary_path"]

_MUTED = {"color": "var(--neutral-foreground-hint, #6b6b6b)"}
PAGE_SIZE = 25  # rows per page of the Workplan table
# the cells a user may change stand out: tinted, underlined, a pointer over them
EDITABLE_CSS = """
.tabulator-cell.tabulator-editable { background-color: #fff8e1; cursor: pointer;
  text-decoration: underline dotted #b26a00; text-underline-offset: 3px; }
"""
WEIGHT_TEXT = ("A partition's **weight** is the work the app expects it to take, in the app's own measure (rows, "
               "pixels, files…): only the ratios matter, as the balance gives each worker slot an even share of "
               "the total.")
_GENERATED, _CUSTOM = "Generated form", "Custom form (app_args_form.py)"


def load_args_form(path: Path, app: str) -> ModuleType:
    """Import an app's ``app_args_form.py`` from its file (it is not part of any package)."""
    spec = importlib.util.spec_from_file_location(f"agilab_args_form_{app}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path.name}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "build_form", None)):
        raise ImportError(f"{path.name} defines no build_form(args)")
    return module


def summary_path(state: Any) -> Path | None:
    """Where the app wrote the metrics of the last RUN (the file ``[tool.agilab] summary`` names): beside
    its output, else in the share's data_out; None when the app declares no summary."""
    name = state.env.spec.summary
    if not name:
        return None
    result = state.run_result
    output = getattr(result, "output", None) if result is not None else None
    if output:
        return Path(output).parent / name
    return state.env.resolve_data_path(None, f"{state.env.app}/data_out") / name


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.6g}"
    return str(value)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _widget_for(name: str, template: param.Parameterized, spec: Any = None) -> pn.widgets.Widget:
    """An unlinked copy of the widget ``pn.Param`` makes for one arg (same type, bounds, options, doc),
    made alone: a whole ``pn.Param`` pane would first build a widget for every arg."""
    widget = pn.Param.widget(name, parameterized=template, widget_spec=spec).clone()
    widget.label = name
    return widget


class ArgsEditor(pn.viewable.Viewer):
    """The "<module> args" card: generated form or the app's custom form, preview metrics, Save."""

    view = param.Selector(default=_GENERATED, objects=[_GENERATED, _CUSTOM], doc="Which form is shown.")
    dirty = param.Boolean(default=False, doc="The draft differs from the saved [args].")
    saved = param.Event(doc="Fires after [args] were written.")
    message = param.String(default="", doc="Outcome of the last Save (or why it was refused).")

    def __init__(self, state: Any, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self.draft: param.Parameterized | None = None
        self.form_module: ModuleType | None = None
        self.form_error = ""
        self._widgets: dict[str, pn.widgets.Widget] = {}
        self.messages: dict[str, FieldMessage] = {}
        self._generated: pn.viewable.Viewable | None = None
        self._custom_view: pn.viewable.Viewable | None = None
        self._base: dict[str, Any] = {}  # the saved [args] the draft started from
        self._state_watchers, self._model_watchers = Watchers(), Watchers()
        # The card's parts are made once; another app changes their content and what the form area holds
        # (each change of a layout's children costs the served page a pass over all its models).
        self._toggle = pn.widgets.RadioButtonGroup.from_param(self.param.view, color="light", margin=(5, 10))
        self._form_problem = pn.Column(sizing_mode="stretch_width", margin=0)
        self._form_area = pn.Column(sizing_mode="stretch_width", margin=0)
        self._metrics = pn.pane.Markdown("", sizing_mode="stretch_width", margin=(0, 10))
        self._metrics_title = pn.pane.Markdown("**Preview metrics and the metrics the last RUN wrote**",
                                               margin=(5, 10, 0, 10))
        self.save_button = pn.widgets.Button(label="Save args", color="primary", icon=icon("device-floppy"), width=130)
        self.save_button.on_click(self._save)
        self.revert_button = pn.widgets.Button(label="Revert", color="light", icon=icon("arrow-back-up"), width=100,
                                               disabled=self.param.dirty.rx.not_())
        self.revert_button.on_click(lambda _e: self.revert())
        self._save_message = FieldMessage()
        self._status = pn.pane.Markdown(self.param.message, styles=_MUTED, margin=(0, 10))
        self._form_view = [pn.panel(part) for part in (  # as a layout holds them (a Viewer: its view)
            pn.pane.Markdown("Run arguments of the app; Save writes them to `[args]` of app_settings.toml, which "
                             "CHECK DISTRIBUTE and RUN use.", styles=_MUTED, margin=(0, 10)),
            self._toggle, self._form_problem, self._form_area, self._metrics_title, self._metrics,
            pn.Row(self.save_button, self.revert_button, self._status, margin=(5, 0)), self._save_message,
        )]
        self._no_settings = [pn.pane.Alert("The args need valid settings: see System settings above.",
                                           alert_type="warning", sizing_mode="stretch_width")]
        self._building = False
        self._body = pn.Column(sizing_mode="stretch_width", margin=0)
        self._layout = pn.Card(self._body, title="args", sizing_mode="stretch_width", collapsible=True)
        self._state_watchers.watch(state, self._rebuild, ["settings", "env"])
        self._state_watchers.watch(state, self._refresh_metrics, ["run_result"])
        self._rebuild()

    # -- building ------------------------------------------------------------------------------------
    @property
    def widgets(self) -> dict[str, pn.widgets.Widget]:
        """The generated form's widget of each arg (the form is made when first needed)."""
        if self._generated is None and self.draft is not None:
            self._generated = self._generated_form()
        return self._widgets

    def _rebuild(self, *_events: Any) -> None:
        settings = self.state.settings
        self._layout.title = f"{self.state.env.module} args"
        self._widgets, self.messages, self._generated, self._custom_view = {}, {}, None, None
        self._model_watchers.clear()
        if settings is None:
            self.draft = None
            self._body.objects = self._no_settings
            return
        self._base = settings.args_dict
        self.draft = settings.args_class(**self._base)
        self.draft.param.watch(self._draft_changed, [n for n in self.draft.param if n != "name"])
        self._model_watchers.watch(settings.args, self._saved_elsewhere, [n for n in self._base])
        self._load_form()
        self._toggle.visible = self.form_module is not None
        self._form_problem.objects = [] if not self.form_error else [
            pn.pane.Alert(f"The app's custom form could not be loaded: {self.form_error.splitlines()[-1]}",
                          alert_type="warning", sizing_mode="stretch_width", margin=(5, 10)),
            details_card(self.form_error)]
        self._building = True  # the form area changes once, below
        try:
            self.view = _CUSTOM if self.form_module is not None else _GENERATED
        finally:
            self._building = False
        self._show_view()
        self.message = ""
        self._save_message.clear()
        self._draft_changed()
        if self._body.objects != self._form_view:
            self._body.objects = self._form_view

    def _load_form(self) -> None:
        self.form_module, self.form_error = None, ""
        path = self.state.env.spec.args_form
        if path is None:
            return
        try:
            self.form_module = load_args_form(path, self.state.env.app)
        except Exception as exc:  # the app's own code: report it, fall back to the generated form
            self.form_error = "".join(traceback.format_exception(exc))

    def _generated_form(self) -> pn.Column:
        names = [n for n in self.draft.param if n != "name"]
        specs = {n: pn.widgets.IntInput for n in names if isinstance(self.draft.param[n], param.Integer)}
        specs.update({n: pn.widgets.FloatInput for n in names
                      if isinstance(self.draft.param[n], param.Number) and n not in specs})
        specs.update({n: pn.widgets.TextInput for n in names if isinstance(self.draft.param[n], param.Path)})
        template = self.state.settings.args_class(**args_to_dict(self.draft))
        rows = []
        for name in names:
            widget = _widget_for(name, template, specs.get(name))
            if hasattr(widget, "sizing_mode"):
                widget.width = 260
            self._widgets[name] = widget
            self.messages[name] = FieldMessage(widget)
            widget.param.watch(lambda e, n=name: self._set(n, e.new), "value")
            doc = self.draft.param[name].doc or ""
            rows.append(pn.Column(pn.Row(widget, pn.pane.Markdown(doc, styles=_MUTED, margin=(28, 10, 0, 10),
                                                                  sizing_mode="stretch_width"),
                                         sizing_mode="stretch_width", margin=0),
                                  self.messages[name], sizing_mode="stretch_width", margin=0))
        return pn.Column(*rows, sizing_mode="stretch_width", margin=0)

    @param.depends("view", watch=True)
    def _show_view(self) -> None:
        """Only the form shown is made: the other one when first chosen (both edit the same draft)."""
        if self.draft is None or self._building:
            return
        if self.view == _CUSTOM and self.form_module is not None:
            if self._custom_view is None:
                try:
                    self._custom_view = pn.panel(self.form_module.build_form(self.draft))
                except Exception as exc:
                    self._custom_view = pn.Column(
                        pn.pane.Alert(f"The app's custom form failed: {exc}", alert_type="warning",
                                      sizing_mode="stretch_width"),
                        details_card("".join(traceback.format_exception(exc))), sizing_mode="stretch_width")
            shown = self._custom_view
        else:
            self.widgets  # noqa: B018 - makes the generated form when first shown
            shown = self._generated
        if self._form_area.objects != [shown]:
            self._form_area.objects = [shown]

    # -- edits ---------------------------------------------------------------------------------------
    def _set(self, name: str, value: Any) -> None:
        try:
            setattr(self.draft, name, value)
        except (ValueError, TypeError) as exc:
            self.messages[name].error(f"Not accepted: {exc}")
        else:
            self.messages[name].clear()
        self._update_save_state()

    def _draft_changed(self, *events: param.parameterized.Event) -> None:
        for event in events:  # values set by the custom form or a revert: show them in the generated form
            widget = self._widgets.get(event.name)
            if widget is not None and widget.value != event.new:
                widget.value = event.new
            if event.name in self.messages:
                self.messages[event.name].clear()
        if self.draft is None or self.state.settings is None:
            return
        self.dirty = args_to_dict(self.draft) != self.state.settings.args_dict
        self._update_save_state()
        self._refresh_metrics()

    @property
    def field_errors(self) -> dict[str, str]:
        return {n: m.text for n, m in self.messages.items() if m.is_error}

    def _update_save_state(self) -> None:
        errors = self.field_errors
        self.save_button.disabled = bool(errors)
        if errors:
            self._save_message.error(f"Fix {', '.join(sorted(errors))} before saving: invalid values are not saved.")
        else:
            self._save_message.clear()
        if self.dirty and not errors:
            self.message = "Unsaved changes."
        elif not self.dirty and self.message == "Unsaved changes.":
            self.message = ""

    def revert(self) -> None:
        """Back to the saved [args]."""
        for message in self.messages.values():
            message.clear()
        self.draft.param.update(**self.state.settings.args_dict)
        for name, widget in self._widgets.items():  # a refused value left in a widget goes too
            widget.value = getattr(self.draft, name)
        self._update_save_state()

    def _saved_elsewhere(self, *events: param.parameterized.Event) -> None:
        """Saved [args] changed (read back from the file another session wrote, or saved here): the
        draft takes each new value the user has not edited; an edited value stays for Save."""
        untouched = {e.name: e.new for e in events
                     if self.draft is not None and _same(getattr(self.draft, e.name), self._base.get(e.name))}
        self._base.update({e.name: e.new for e in events})
        if untouched:
            self.draft.param.update(**untouched)
        self._draft_changed()

    def _save(self, _event: Any = None) -> None:
        errors = self.field_errors
        if errors:
            self._save_message.error(f"Not saved: fix {', '.join(sorted(errors))} first.")
            return
        self.state.refresh_from_disk()  # edits of other sessions first: those of this draft then go on top
        if self.state.settings is None:  # the file broke meanwhile: the section now says why
            return
        edited = {k: v for k, v in args_to_dict(self.draft).items() if not _same(v, self._base.get(k))}
        try:
            if edited:  # only what was edited here: the file keeps newer values saved elsewhere
                self.state.settings.save_args(edited)
        except Exception as exc:  # refused by the args class or the store: nothing was written
            self._save_message.error(f"Not saved: {exc}")
            return
        self._save_message.clear()
        self.dirty = False
        self.message = "Saved to [args] of app_settings.toml."
        self.param.trigger("saved")

    # -- preview metrics -----------------------------------------------------------------------------
    def preview(self) -> dict[str, Any] | None:
        """The custom form's preview metrics for the draft (None when the form has none)."""
        fn = getattr(self.form_module, "preview_metrics", None)
        if fn is None or self.draft is None:
            return None
        return dict(fn(self.draft))

    def last_run_metrics(self) -> dict[str, Any] | None:
        path = summary_path(self.state)
        if path is None:
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _refresh_metrics(self, *_events: Any) -> None:
        if not hasattr(self, "_metrics"):
            return
        try:
            preview = self.preview()
        except Exception as exc:
            self._metrics.object = f"The preview could not be computed: {exc}"
            self._metrics.visible = self._metrics_title.visible = True
            return
        visible = preview is not None
        self._metrics.visible = self._metrics_title.visible = visible
        if not visible:
            return
        last = self.last_run_metrics()
        rows = ["| metric | preview (these inputs) | last RUN | match |", "|---|--:|--:|:-:|"]
        for key, value in preview.items():
            after = None if last is None else last.get(key)
            mark = "" if after is None else ("✓" if _same(value, after) else "≠")
            rows.append(f"| {key} | {_fmt(value)} | {_fmt(after)} | {mark} |")
        note = ("\n\n*No RUN has written metrics yet: run the app to compare.*" if last is None else
                "\n\n*≠: the last RUN used other inputs (save and RUN again to compare).*"
                if any("≠" in r for r in rows[2:]) else "")
        self._metrics.object = "\n".join(rows) + note

    @property
    def metrics_text(self) -> str:
        return self._metrics.object if hasattr(self, "_metrics") and self._metrics.visible else ""

    def close(self) -> None:
        self._state_watchers.clear()
        self._model_watchers.clear()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


class WorkplanEditor(pn.viewable.Viewer):
    """The "Workplan" card: partitions and their worker slot (editable), the load per slot, Save."""

    unsaved = param.Boolean(default=False, doc="The plan was edited since it was loaded or saved.")
    edits = param.Integer(default=0, doc="Counts accepted reassignments (redraw the tree on change).")
    message = param.String(default="")

    def __init__(self, state: Any, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self._state_watchers = Watchers()
        self.save_button = pn.widgets.Button(label="Save work plan", color="primary", icon=icon("device-floppy"),
                                             width=160)
        self._state_watchers.follow(state, ["busy", "plan"], lambda: setattr(
            self.save_button, "disabled", bool(state.busy) or state.plan is None))
        self.save_button.on_click(self._save)
        self._error = FieldMessage()
        self._status = pn.pane.Markdown(self.param.message, styles=_MUTED, margin=(0, 10), align="center")
        self._empty = pn.pane.Markdown("No work plan yet: run **CHECK DISTRIBUTE** to build one, then reassign "
                                       "partitions to other worker slots here.", styles=_MUTED, margin=(5, 10))
        self._content = pn.Column(sizing_mode="stretch_width", margin=0, visible=False)  # filled once a plan shows
        self._layout = pn.Card(self._empty, self._content, title="Workplan", sizing_mode="stretch_width",
                               collapsible=True)
        self._state_watchers.watch(state, self._load, ["plan"])
        self._state_watchers.watch(state, lambda *_: setattr(self, "message", ""), ["env"])
        self._load()

    # The table, its chart and their texts are made with the first plan to show (a page without one
    # has no use for them).
    @functools.cached_property
    def table(self) -> pn.widgets.Tabulator:
        table = pn.widgets.Tabulator(
            pd.DataFrame(columns=["partition", "weight", "worker slot"]), show_index=False, sizing_mode="stretch_width",
            layout="fit_data_stretch", theme="simple", selectable=False, margin=(5, 10), max_height=420,
            titles={"worker slot": "worker slot ✎", "weight": "weight (relative work)"},
            formatters={"weight": {"type": "money", "precision": 3, "thousand": ",", "symbol": ""}},
            stylesheets=[EDITABLE_CSS],
        )
        table.param.watch(self._edited, "value")
        return table

    @functools.cached_property
    def bars(self) -> pn.pane.HoloViews:
        return pn.pane.HoloViews(None, sizing_mode="stretch_width", margin=(5, 10), linked_axes=False)

    @functools.cached_property
    def bars_plot(self) -> InPlacePlot:
        return InPlacePlot(self.bars, load_bars, bars_shape)  # an edit redraws the chart in place

    @functools.cached_property
    def _balance(self) -> pn.pane.Markdown:
        return pn.pane.Markdown("", styles=_MUTED, margin=(0, 10))

    def _parts(self) -> list[Any]:
        return [
            pn.pane.Markdown("Pick another worker slot in the **worker slot ✎** column (the tinted cells, the only "
                             "ones to edit) to move a partition; the load chart follows. RUN uses the saved plan while "
                             "the args and workers still match. " + WEIGHT_TEXT, styles=_MUTED, margin=(0, 10)),
            pn.Row(pn.Column(self.table, sizing_mode="stretch_width"), pn.Column(self.bars, self._balance,
                                                                                   sizing_mode="stretch_width"),
                   sizing_mode="stretch_width"),
            self._error,
            pn.Row(self.save_button, self._status, margin=(5, 0)),
        ]

    def _frame(self) -> pd.DataFrame:
        plan = self.state.plan
        return pd.DataFrame({
            "partition": [p.label for p in plan.partitions],
            "weight": [p.weight for p in plan.partitions],
            "worker slot": [plan.assignment[p.label] for p in plan.partitions],
        })

    def _load(self, *_events: Any) -> None:
        plan = self.state.plan
        self._empty.visible = plan is None
        self.unsaved = False
        self._error.clear()
        if plan is None:
            show_when(self._content, self._parts, False)
            return
        self.table.editors = {"partition": None, "weight": None,
                              "worker slot": {"type": "list", "values": list(plan.slots)}}
        # pages of 25 rows; the browser holds every row up to 10,000 (Panel's own limit), one page beyond
        count = len(plan.partitions)
        self.table.page_size = PAGE_SIZE
        self.table.pagination = None if count <= PAGE_SIZE else "local" if count <= 10_000 else "remote"
        self.table.value = self._frame()
        sort_arrows(self.table, count)
        self._redraw()
        # Shown once set up: options that reach a table still being made in the browser break it there.
        show_when(self._content, self._parts, True)

    def _edited(self, event: param.parameterized.Event) -> None:
        plan = self.state.plan
        if plan is None or event.new is None or "worker slot" not in event.new:
            return
        moves = {label: slot for label, slot in zip(event.new["partition"], event.new["worker slot"])
                 if label in plan.assignment and plan.assignment[label] != slot}
        if not moves:
            return
        try:
            plan.reassign_many(moves)
        except PlanError as exc:
            self._error.error(f"Not moved: {exc}")
            self.table.value = self._frame()  # back to what the plan holds
            self._redraw()
            return
        self._error.clear()
        self.unsaved = True
        self.state.plan_unsaved = True  # a plan saved elsewhere meanwhile must not replace these edits
        self.message = "Unsaved changes."
        self._redraw()
        self.edits += 1

    def reassign(self, label: str, slot: str) -> None:
        """Move one partition as if the cell had been edited (for scripts and tests)."""
        frame = self.table.value.copy()
        frame.loc[frame["partition"] == label, "worker slot"] = slot
        self.table.value = frame

    def _redraw(self) -> None:
        plan = self.state.plan
        self.bars_plot.show(plan)
        loads = plan.loads()
        mean = sum(loads.values()) / len(loads) if loads else 0.0
        heaviest = max(loads, key=loads.get) if loads else "-"
        spread = (max(loads.values()) / mean) if mean else 1.0
        self._balance.object = (f"Heaviest slot `{heaviest}` carries a weight of {compact_number(loads.get(heaviest, 0))} "
                                f"({spread:,.2f}× the even share).")

    def _save(self, _event: Any = None) -> None:
        try:
            path = self.state.save_plan()
        except Exception as exc:
            self._error.error(f"Not saved: {exc}")
            return
        self._error.clear()
        self.unsaved = False
        self.message = f"Saved to {Path(path).name}."

    def close(self) -> None:
        self._state_watchers.clear()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


class DistributeSection(pn.viewable.Viewer):
    """The "Distribute" card: "<module> args" and "Distribute details" (snippet, CHECK DISTRIBUTE,
    "Distribution tree", "Workplan")."""

    follows_app = True  # the page keeps it across an app switch: it shows whatever app the state loads

    def __init__(self, state: Any, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self.args = ArgsEditor(state)
        self._state_watchers, self._model_watchers = Watchers(), Watchers()
        self.snippet = SnippetView(state, "distrib")
        self.check_button = pn.widgets.Button(label="CHECK DISTRIBUTE", color="primary", icon=icon("sitemap"), width=190)
        self._state_watchers.follow(state, ["busy", "settings"], lambda: setattr(
            self.check_button, "disabled", bool(state.busy) or state.settings is None))
        self.check_button.on_click(self._check)
        self.cancel_button = cancel_button(state, "CHECK DISTRIBUTE", self._state_watchers)
        self.action = ActionStatus(state, "CHECK DISTRIBUTE", "Building the work plan…")
        self.plan_note = pn.pane.Alert("", alert_type="warning", visible=False, sizing_mode="stretch_width", margin=(5, 10))
        self.workplan = WorkplanEditor(state)
        self.tree = pn.pane.HoloViews(None, sizing_mode="stretch_width", margin=(5, 10))
        self.tree_plot = InPlacePlot(self.tree, plan_tree, tree_shape)  # a plan of the same shape: same figure
        # Shown and hidden through its box: once drawn in a served page, a HoloViews pane whose own
        # ``visible`` changes passes the design to its Bokeh figure, which refuses it (Panel 1.x).
        # It holds the tree once there is one to draw (see deferred.show_when).
        self._tree_box = pn.Column(sizing_mode="stretch_width", margin=0, visible=False)
        self._tree_empty = pn.pane.Markdown("No distribution yet: **CHECK DISTRIBUTE** builds the work plan for the "
                                            "saved args and worker map and draws it here (hosts → worker slots → "
                                            "partitions, with their weights).", styles=_MUTED, margin=(5, 10))
        self.args.param.watch(self._args_saved, ["saved"])
        self.args.param.watch(self._note, ["dirty"])
        self.workplan.param.watch(self._draw_tree, ["edits"])
        self._state_watchers.watch(state, self._draw_tree, ["plan"])
        self._state_watchers.watch(state, self._note, ["plan", "settings"])
        self._state_watchers.watch(state, self._watch_cluster, ["settings"])
        self._watch_cluster()
        self._draw_tree()
        details = pn.Card(
            pn.pane.Markdown("The `AGI.get_distrib(...)` call behind CHECK DISTRIBUTE: it prepares the inputs and "
                             "balances the partitions over the worker slots.", styles=_MUTED, margin=(0, 10)),
            self.snippet,
            pn.Row(self.check_button, self.cancel_button, margin=(5, 0)),
            self.action,
            self.plan_note,
            pn.Card(self._tree_empty, self._tree_box,
                    pn.pane.Markdown("The number beside each node is its weight (a slot's and a host's: the sum of "
                                     "their partitions'). " + WEIGHT_TEXT, styles=_MUTED, margin=(0, 10)),
                    title="Distribution tree", sizing_mode="stretch_width", collapsible=True),
            self.workplan,
            title="Distribute details", sizing_mode="stretch_width", collapsible=True,
        )
        self._layout = pn.Card(self.args, details, title="Distribute", sizing_mode="stretch_width", collapsible=True)

    async def _check(self, _event: Any = None) -> None:
        await self.state.check_distribute()

    def _args_saved(self, *_events: Any) -> None:
        self.snippet.follow_settings()
        self._note()

    def _watch_cluster(self, *_events: Any) -> None:
        self._model_watchers.clear()
        if self.state.settings is not None:
            self._model_watchers.watch(self.state.settings.cluster, self._note, ["workers"])
        self._note()

    def _note(self, *_events: Any) -> None:
        """Say when the plan no longer fits the saved args or workers, or the args have unsaved edits."""
        notes = []
        plan, settings = self.state.plan, self.state.settings
        if self.args.dirty:
            notes.append("The args have unsaved changes: CHECK DISTRIBUTE uses the saved args.")
        if plan is not None and settings is not None:
            reason = plan.mismatch(settings.args_dict, dict(settings.cluster.workers))
            if reason:
                notes.append(f"The work plan below was built for other settings: {reason}. "
                             "CHECK DISTRIBUTE again (RUN would rebuild it).")
        self.plan_note.object = "  \n".join(notes)
        self.plan_note.visible = bool(notes)

    def _draw_tree(self, *_events: Any) -> None:
        plan = self.state.plan
        self._tree_empty.visible = plan is None
        if plan is not None:
            self.tree_plot.show(plan)
        show_when(self._tree_box, [self.tree], plan is not None)

    def close(self) -> None:
        """Stop following the state (the section is being dropped)."""
        for part in (self.args, self.snippet, self.action, self.workplan):
            part.close()
        self._state_watchers.clear()
        self._model_watchers.clear()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
