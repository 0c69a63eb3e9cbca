"""The generated snippet of one action, following the settings: highlighted code, Copy and Download."""
from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import panel as pn
import param

from ..snippets import snippet_file_name, snippet_for
from .logs import Watchers
from .deferred import show_when
from .offline import icon

__all__ = ["SnippetView"]


class SnippetView(pn.viewable.Viewer):
    """``AGI.<kind>(...)`` for the current settings; it changes as the settings change.

    Follows the cluster and args models of ``state.settings``; ``benchmark`` says whether the run
    snippet should benchmark every enabled mode. Call :meth:`follow_settings` after the args were
    saved elsewhere, and :meth:`refresh` when only ``benchmark`` changed.
    """

    code = param.String(default="", doc="The snippet shown now ('' when there is none).")
    filename = param.String(default="snippet.py")
    problem = param.String(default="", doc="Why no snippet is shown.")

    def __init__(self, state: Any, kind: str, benchmark: Callable[[], bool] = lambda: False,
                 render: Callable[[Any], str] | None = None, **params: Any) -> None:
        super().__init__(**params)
        self.state, self.kind, self.benchmark = state, kind, benchmark
        self.render = render  # the snippet from the settings, when not snippet_for(kind) (a service action)
        # the code block's own copy button has no name; the named Copy button below does the same
        self._code = pn.pane.Markdown("", sizing_mode="stretch_width", margin=(0, 10),
                                      styles={"max-height": "340px", "overflow-y": "auto"},
                                      stylesheets=[".copybtn { display: none; }"])
        self._source = pn.widgets.TextAreaInput(value="", visible=False)
        self._copy = pn.widgets.Button(label="Copy", icon=icon("copy"), color="light", width=100, margin=(0, 0, 0, 10))
        self._copy.js_on_click(args={"source": self._source, "button": self._copy}, code="""
            navigator.clipboard.writeText(source.value).then(() => {
              button.label = 'Copied'; setTimeout(() => { button.label = 'Copy' }, 1200) })""")
        self._download = pn.widgets.FileDownload(callback=lambda: io.StringIO(self.code), filename=self.filename,
                                                 label="Download snippet", color="light", icon=icon("download"),
                                                 embed=False, width=170, margin=(0, 10))
        self._note: pn.pane.Alert | None = None  # why there is no snippet: made the first time there is a reason
        self._note_box = pn.Column(sizing_mode="stretch_width", margin=0, visible=False)  # holds _note once shown
        self._layout = pn.Column(self._code, self._note_box, pn.Row(self._copy, self._download, self._source, margin=0),
                                 sizing_mode="stretch_width", margin=0)
        self._state_watchers, self._model_watchers = Watchers(), Watchers()
        self._state_watchers.watch(state, self.follow_settings, ["settings"])
        self.follow_settings()

    @property
    def source(self) -> str:
        return self.code

    def follow_settings(self, *_events: Any) -> None:
        """Follow the current settings models (saving args replaces the args object) and regenerate."""
        self._model_watchers.clear()
        settings = self.state.settings
        if settings is not None:
            for model in (settings.cluster, settings.args):
                self._model_watchers.watch(model, lambda *_: self.refresh(), [p for p in model.param if p != "name"])
        self.refresh()

    def close(self) -> None:
        """Stop following the state and the settings models."""
        self._state_watchers.clear()
        self._model_watchers.clear()

    def refresh(self) -> None:
        settings = self.state.settings
        code, problem, alert = "", "", "info"
        if settings is None:
            problem = "No snippet: the settings file could not be read (see System settings)."
        else:
            try:
                code = (self.render(settings) if self.render is not None
                        else snippet_for(self.kind, settings, benchmark=self.benchmark()))
                self.filename = snippet_file_name(self.kind, settings.env.app)
            except Exception as exc:  # a value the generator refuses: say which, keep the page
                problem, alert = f"No snippet for these settings: {exc}", "warning"
        self.param.update(code=code, problem=problem)
        self._code.object = f"```python\n{code}\n```" if code else ""
        self._source.value = code
        self._download.filename = self.filename
        self._code.visible = self._copy.visible = self._download.visible = bool(code)
        if problem and self._note is None:
            self._note = pn.pane.Alert("", sizing_mode="stretch_width", margin=(0, 10))
        if self._note is not None:
            self._note.param.update(object=problem, alert_type=alert)
        show_when(self._note_box, lambda: [self._note], bool(problem))  # sent to the page the first time there is one

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
