"""LOAD DATA (preview of the latest output dataframe) and Prepare Data for Pipeline and Analysis
(choose columns, write ``${AGILAB_EXPORT_ABS}/<module>/export.csv``).
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pandas as pd
import panel as pn
import param

from ..agi import AGI
from ..export import export_columns, output_columns, output_frame
from .logs import Watchers, details_card
from .offline import icon
from .tables import show_frame
from .run_section import muted

__all__ = ["LoadDataSection", "PrepareDataSection"]

PAGE_SIZE = 20


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _describe(path: Path) -> str:
    try:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(path.stat().st_mtime))
    except OSError:
        return f"`{path}`"
    return f"`{path}` written {stamp}"


class LoadDataSection(pn.viewable.Viewer):
    """LOAD DATA: a paginated preview of the latest output of the app.

    The frame shown is the one read when LOAD DATA was last pressed: a rerun does not replace it (a
    note says a newer output exists), pressing LOAD DATA again does. Choosing another app clears it.
    """

    follows_app = True  # the page keeps it across an app switch: it shows whatever app the state loads

    frame = param.DataFrame(default=None, allow_None=True, doc="The dataframe previewed.")
    path = param.String(default="", doc="The output file previewed.")

    def __init__(self, state: Any, page_size: int = PAGE_SIZE, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self.page_size = page_size
        self._loaded_at = 0.0
        self.load_button = pn.widgets.Button(label="LOAD DATA", color="primary", icon=icon("table"), width=150,
                                             margin=(5, 10))
        self.load_button.on_click(self._on_load)
        self._info = muted("", sizing_mode="stretch_width", align="center")
        self._newer = pn.pane.Alert("", alert_type="info", visible=False, sizing_mode="stretch_width", margin=(5, 10))
        self._error = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width", margin=(5, 10))
        self._details = pn.Column(sizing_mode="stretch_width", margin=(0, 10))
        self.table: pn.widgets.Tabulator | None = None
        self._body = pn.Column(sizing_mode="stretch_width", margin=0)
        self._nothing = muted("Nothing loaded yet: press LOAD DATA.")  # one pane: showing it again changes nothing
        self._layout = pn.Card(
            muted("Preview the latest output dataframe of the app. The preview stays while you rerun; "
                  "press LOAD DATA again to refresh it."),
            pn.Row(self.load_button, self._info, sizing_mode="stretch_width", margin=0),
            self._newer, self._error, self._details, self._body,
            title="LOAD DATA", sizing_mode="stretch_width", collapsible=True,
        )
        self._state_watchers = Watchers()
        self._state_watchers.watch(state, self._on_env, "env")
        self._state_watchers.watch(state, self._on_run_result, "run_result")
        self._show()

    # -- actions ---------------------------------------------------------------------------------------
    async def _on_load(self, _event: Any = None) -> None:
        await self.load()

    async def load(self) -> pd.DataFrame | None:
        """Read the latest output (in a thread: outputs can be large) and show it; while one load is under
        way another call waits for nothing and returns ``None`` (the button shows the one under way)."""
        if self.load_button.loading:
            return None
        self._error.visible = False
        self._details.objects = []
        path = AGI.last_output(self.state.env) if self.state.env is not None else None
        if path is None:
            self._info.object = ""
            self._error.param.update(object="No output yet: RUN the app first, then LOAD DATA previews what it wrote.",
                                     alert_type="info", visible=True)
            return None
        self.load_button.loading = True
        try:
            frame = await asyncio.to_thread(output_frame, path)
        except Exception as exc:  # an unreadable output: say which and why
            import traceback

            self._error.param.update(object=f"LOAD DATA failed: {_error_text(exc)}", alert_type="danger", visible=True)
            self._details.objects = [details_card("".join(traceback.format_exception(exc)))]
            return None
        finally:
            self.load_button.loading = False
        self._loaded_at = time.time()
        self.param.update(frame=frame, path=str(path))
        return frame

    def _on_env(self, *_events: Any) -> None:
        self._loaded_at = 0.0
        self._error.visible = self._newer.visible = False
        self._details.objects = []
        changed = self.frame is not None
        self.table = None  # the page drops it with the frame: the next app's preview gets a table of its own
        self.param.update(frame=None, path="")
        if not changed:
            self._show()  # the empty state again, in place of the previous app's error

    def _on_run_result(self, *_events: Any) -> None:
        result = self.state.run_result
        if self.frame is not None and result is not None and result.output:
            self._newer.object = ("A newer output was written by the last RUN: press **LOAD DATA** to preview it "
                                  "(the preview below is the one loaded before).")
            self._newer.visible = True

    # -- view ------------------------------------------------------------------------------------------
    @param.depends("frame", watch=True)
    def _show(self) -> None:
        frame = self.frame
        self._newer.visible = False
        if frame is None:
            self._info.object = ""
            empty = [] if self._error.visible else [self._nothing]
            if self._body.objects != empty:  # each change of the children costs the page a pass over all its models
                self._body.objects = empty
            return
        rows, cols = frame.shape
        self._info.object = (f"**{rows:,} rows × {cols} columns** · {_describe(Path(self.path))} · "
                             f"loaded at {time.strftime('%H:%M:%S', time.localtime(self._loaded_at))}")
        table = show_frame(self.table, frame, self._make_table)  # other columns: another table
        if table is self.table:
            table.page = 1
        self.table = table
        self._body.objects = [table]

    def _make_table(self, frame: pd.DataFrame) -> pn.widgets.Tabulator:
        return pn.widgets.Tabulator(
            frame, pagination="remote", page_size=self.page_size, disabled=True, selectable=False, show_index=False,
            sizing_mode="stretch_width", layout="fit_data_table", header_filters=False, margin=(5, 10),
        )

    def close(self) -> None:
        """Stop following the state (the section is being dropped)."""
        self._state_watchers.clear()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


class PrepareDataSection(pn.viewable.Viewer):
    """Choose columns of the latest output and write them to ``export.csv`` for Pipeline and Analysis."""

    follows_app = True  # the page keeps it across an app switch: it shows whatever app the state loads

    columns = param.List(default=[], item_type=str, doc="Columns of the latest output.")
    source = param.String(default="", doc="The output file the columns come from.")
    written = param.String(default="", doc="The export.csv last written.")

    def __init__(self, state: Any, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        # Check boxes, not a searchable chooser: the output's columns are a short list to tick, and the
        # chooser's script lays the whole page out again when it starts (a tenth of a second and more)
        self.selector = pn.widgets.CheckBoxGroup(label="Columns to export", options=[], value=[], inline=True,
                                                 sizing_mode="stretch_width", margin=(0, 10, 5, 10))
        self.select_all = pn.widgets.Button(label="Select all", color="light", icon=icon("checks"), width=120,
                                            margin=(5, 5))
        self.select_all.on_click(lambda _e: setattr(self.selector, "value", list(self.selector.options)))
        self.clear_button = pn.widgets.Button(label="Clear", color="light", icon=icon("eraser"), width=100, margin=(5, 5))
        self.clear_button.on_click(lambda _e: setattr(self.selector, "value", []))
        self.refresh_button = pn.widgets.Button(label="Reload columns", color="light", icon=icon("refresh"), width=150,
                                                margin=(5, 5))
        self.refresh_button.on_click(lambda _e: self.refresh())
        self.export_button = pn.widgets.Button(label="Write export.csv", color="primary", icon=icon("file-export"),
                                               width=230, margin=(5, 10), disabled=True)
        self.export_button.on_click(self._on_export)
        self._target = muted("")
        self._empty = pn.pane.Alert("", alert_type="info", visible=False, sizing_mode="stretch_width", margin=(5, 10))
        self._result = pn.pane.Alert("", alert_type="success", visible=False, sizing_mode="stretch_width", margin=(5, 10))
        self._details = pn.Column(sizing_mode="stretch_width", margin=(0, 10))
        self._layout = pn.Card(
            muted("**Columns to export**: tick the columns of the latest output that feed the Pipeline and "
                  "Analysis pages."),
            self._empty,
            self.selector,
            pn.Row(self.select_all, self.clear_button, self.refresh_button, sizing_mode="stretch_width", margin=(0, 5)),
            pn.Row(self.export_button, self._target, sizing_mode="stretch_width", margin=0),
            self._result, self._details,
            title="Prepare Data for Pipeline and Analysis", sizing_mode="stretch_width", collapsible=True,
        )
        self.selector.param.watch(self._on_selection, "value")
        self._state_watchers = Watchers()
        self._state_watchers.watch(state, self._forget, ["env"])
        self._state_watchers.watch(state, lambda *_: self.refresh(), ["env", "run_result"])
        self.refresh()

    def _forget(self, *_events: Any) -> None:
        """Another app: the export written for the previous one is not this app's."""
        self.written = ""
        self._result.visible = False
        self._details.objects = []

    def refresh(self) -> None:
        """Read the columns of the latest output (its schema only); keep the chosen ones that still exist."""
        env = self.state.env
        self._target.object = f"writes `{env.export_csv}`" if env is not None else ""
        path = AGI.last_output(env) if env is not None else None
        columns: list[str] = []
        problem = ""
        if path is None:
            problem = "No output yet: RUN the app first; its columns appear here."
        else:
            try:
                columns = output_columns(path)
            except Exception as exc:  # unreadable output: say why
                problem = f"Cannot read the columns of the latest output: {_error_text(exc)}"
        kept = [c for c in self.selector.value if c in columns]
        self.param.update(columns=columns, source=str(path) if path else "")
        self.selector.options = columns
        self.selector.value = kept
        self.selector.disabled = self.select_all.disabled = self.clear_button.disabled = not columns
        self._empty.param.update(object=problem, visible=bool(problem))
        self._on_selection()

    def _on_selection(self, *_events: Any) -> None:
        n = len(self.selector.value)
        self.export_button.disabled = n == 0 or not self.source
        self.export_button.label = f"Write export.csv ({n} column{'s' if n != 1 else ''})" if n else "Write export.csv"

    async def _on_export(self, _event: Any = None) -> None:
        await self.export()

    async def export(self) -> Path | None:
        """Write the chosen columns to export.csv (in a thread) and say where."""
        self._result.visible = False
        self._details.objects = []
        chosen = list(self.selector.value)
        self.export_button.loading = True
        try:
            path = await asyncio.to_thread(export_columns, self.state.env, self.source, chosen)
        except Exception as exc:
            import traceback

            self._result.param.update(object=f"Export failed: {_error_text(exc)}", alert_type="danger", visible=True)
            self._details.objects = [details_card("".join(traceback.format_exception(exc)))]
            return None
        finally:
            self.export_button.loading = False
        self.written = str(path)
        self._result.param.update(
            object=f"Wrote **{len(chosen)} column{'s' if len(chosen) != 1 else ''}** to `{path}` "
                   f"at {time.strftime('%H:%M:%S')}: {', '.join(chosen)}.",
            alert_type="success", visible=True)
        return path

    def close(self) -> None:
        """Stop following the state (the section is being dropped)."""
        self._state_watchers.clear()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
