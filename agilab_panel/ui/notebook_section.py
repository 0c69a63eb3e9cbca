"""Notebook: download the current ORCHESTRATE recipe as ``<app>_orchestrate.ipynb`` (export only)."""
from __future__ import annotations

import io
import time
import traceback
from typing import Any

import panel as pn

from .logs import details_card
from .offline import icon
from .run_section import muted

__all__ = ["NotebookSection"]


class NotebookSection(pn.viewable.Viewer):
    """A download button writing the notebook (INSTALL, CHECK distribute and RUN cells) for the current settings."""

    follows_app = True  # the page keeps it across an app switch: it shows whatever app the state loads

    def __init__(self, state: Any, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self.download = pn.widgets.FileDownload(
            callback=self._notebook_bytes, filename=self._filename(), label="Download notebook",
            color="primary", icon=icon("notebook"), embed=False, width=220, margin=(5, 10),
        )
        self._steps = muted("")
        self._saved = muted("")
        self._error = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width", margin=(5, 10))
        self._details = pn.Column(sizing_mode="stretch_width", margin=(0, 10))
        self._layout = pn.Card(
            muted("Export the current recipe as a runnable notebook for review or hand-off: a heading and a code "
                  "cell per generated snippet. Export only — importing a notebook belongs to WORKFLOW."),
            pn.Row(self.download, self._steps, sizing_mode="stretch_width", margin=0),
            self._saved, self._error, self._details,
            title="Notebook", sizing_mode="stretch_width", collapsible=True,
        )
        self._watcher = state.param.watch(self._refresh, ["env", "settings", "benchmark_all"])
        self._env_watcher = state.param.watch(self._forget, ["env"])
        self._refresh()

    def _filename(self) -> str:
        app = self.state.env.app if self.state.env is not None else "app"
        return f"{app}_orchestrate.ipynb"

    def _forget(self, *_events: Any) -> None:
        """Another app: what the last export of the previous one said is not this app's."""
        self._saved.object = ""
        self._error.visible = False
        self._details.objects = []

    def _refresh(self, *_events: Any) -> None:
        self.download.filename = self._filename()
        state = self.state
        if state.settings is None:
            self.download.disabled = True
            self._steps.object = "No recipe: the settings file could not be read (see System settings)."
            return
        self.download.disabled = False
        run = "RUN (benchmark of every enabled mode)" if state.benchmark_all else "RUN"
        self._steps.object = f"Cells: INSTALL, CHECK distribute, {run}."

    def _notebook_bytes(self) -> io.BytesIO | None:
        self._error.visible = False
        self._details.objects = []
        try:
            from ..notebook import export_notebook

            path = export_notebook(self.state.env, self.state.settings, benchmark=self.state.benchmark_all)
            data = path.read_bytes()
        except Exception as exc:  # say why there is no notebook instead of a broken download
            self._error.param.update(object=f"Notebook export failed: {str(exc).splitlines()[0] if str(exc) else exc!r}",
                                     visible=True)
            self._details.objects = [details_card("".join(traceback.format_exception(exc)))]
            return None
        self._saved.object = f"Also saved as `{path}` ({time.strftime('%H:%M:%S')})."
        return io.BytesIO(data)

    def close(self) -> None:
        """Stop following the state (the section is being dropped)."""
        if self._watcher is not None:
            self.state.param.unwatch(self._watcher)
            self.state.param.unwatch(self._env_watcher)
            self._watcher = None

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
