"""The generated snippet of one action, following the settings: highlighted code, Copy and Download.

The code, its two buttons and the note saying why there is no snippet are one browser component
(:class:`SnippetBlock`): Copy writes the code to the clipboard and Download saves it from the browser,
neither asks the server, and the page holds one model per snippet instead of a dozen.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import panel as pn
import param
from panel.custom import JSComponent
from panel.io.resources import CDN_DIST
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from ..snippets import snippet_file_name, snippet_for
from .logs import Watchers
from .offline import icon

__all__ = ["SnippetBlock", "SnippetView", "highlighted"]

_FORMATTER = HtmlFormatter(cssclass="codehilite", wrapcode=True)  # the classes Panel's markdown.css colours
_LEXER = PythonLexer()


def highlighted(code: str) -> str:
    """``code`` as highlighted HTML (pygments escapes it), as Panel's Markdown pane renders a python block."""
    return highlight(code, _LEXER, _FORMATTER) if code else ""


_CSS = """
:host { display: block; }
.code { max-height: 340px; overflow-y: auto; margin: 0 10px 8px; }
.code:empty, .note:empty { display: none; }
.bar { display: flex; gap: 10px; margin: 0 10px; }
.bar[hidden] { display: none; }
button { display: inline-flex; align-items: center; gap: 6px; height: 31px; padding: 0 12px;
  font: inherit; font-size: var(--type-ramp-base-font-size, 14px); cursor: pointer; border-radius: 4px;
  color: #212529; background: #f8f9fa; border: 1px solid #dde0e3; }
button:hover { background: #e9ecef; }
button:focus-visible { outline: 2px solid #0b6e99; outline-offset: 1px; }
button svg { width: 16px; height: 16px; }
.note { margin: 0 10px 10px; padding: 12px 16px; border-radius: 4px; border: 1px solid; }
.note.info { color: #055160; background: #cff4fc; border-color: #b6effb; }
.note.warning { color: #664d03; background: #fff3cd; border-color: #ffecb5; }
"""

_ESM = """
export function render({ model, el }) {
  const code = document.createElement("div"); code.className = "code";
  const note = document.createElement("div"); note.setAttribute("role", "status");
  const bar = document.createElement("div"); bar.className = "bar";
  const button = (svg, label) => {
    const b = document.createElement("button"); b.type = "button";
    b.innerHTML = svg; const text = document.createElement("span"); text.textContent = label; b.append(text);
    bar.append(b); return [b, text];
  };
  const [copy, copyText] = button(COPY_ICON, "Copy");
  const [download] = button(DOWNLOAD_ICON, "Download snippet");
  const selectAndCopy = () => {  // pages served over plain http to another host have no clipboard API
    const t = document.createElement("textarea"); t.value = model.code; t.readOnly = true;
    t.style.position = "fixed"; t.style.opacity = "0"; el.append(t); t.select();
    const ok = document.execCommand("copy"); t.remove();
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  };
  const said = (text) => { copyText.textContent = text; setTimeout(() => { copyText.textContent = "Copy" }, 1200) };
  copy.addEventListener("click", () => {
    const done = navigator.clipboard && window.isSecureContext ? navigator.clipboard.writeText(model.code) : selectAndCopy();
    done.then(() => said("Copied"), () => said("Not copied: select the code"));
  });
  download.addEventListener("click", () => {
    const url = URL.createObjectURL(new Blob([model.code], { type: "text/x-python" }));
    const a = document.createElement("a"); a.href = url; a.download = model.filename; a.hidden = true;
    el.append(a); a.click(); a.remove(); setTimeout(() => URL.revokeObjectURL(url), 1000);
  });
  const show = () => {
    code.innerHTML = model.html;
    bar.hidden = !model.code;
    note.className = "note " + model.alert; note.textContent = model.problem;
  };
  for (const name of ["code", "html", "problem", "alert"]) model.on(name, show);
  show();
  el.append(code, note, bar);
}
"""


class SnippetBlock(JSComponent):
    """Highlighted code with Copy and Download, or the note saying why there is none, drawn in the browser."""

    code = param.String(default="", doc="The code Copy and Download take.")
    html = param.String(default="", doc="The code highlighted (see :func:`highlighted`).")
    filename = param.String(default="snippet.py", doc="The name Download saves the code under.")
    problem = param.String(default="", doc="Why there is no snippet ('' shows no note).")
    alert = param.Selector(default="info", objects=["info", "warning"], doc="How the note looks.")

    _esm = _ESM.replace("COPY_ICON", json.dumps(icon("copy"))).replace("DOWNLOAD_ICON", json.dumps(icon("download")))
    _stylesheets = [f"{CDN_DIST}css/markdown.css", _CSS]


class SnippetView(pn.viewable.Viewer):
    """``AGI.<kind>(...)`` for the current settings; it changes as the settings change.

    Follows the cluster and args models of ``state.settings``; ``benchmark`` says whether the run
    snippet should benchmark every enabled mode. Call :meth:`follow_settings` after the args were
    saved elsewhere, and :meth:`refresh` when only ``benchmark`` changed.
    """

    def __init__(self, state: Any, kind: str, benchmark: Callable[[], bool] = lambda: False,
                 render: Callable[[Any], str] | None = None, **params: Any) -> None:
        super().__init__(**params)
        self.state, self.kind, self.benchmark = state, kind, benchmark
        self.render = render  # the snippet from the settings, when not snippet_for(kind) (a service action)
        self.block = SnippetBlock(sizing_mode="stretch_width", margin=0)
        self._state_watchers, self._model_watchers = Watchers(), Watchers()
        self._state_watchers.watch(state, self.follow_settings, ["settings"])
        self.follow_settings()

    @property
    def code(self) -> str:
        """The snippet shown now ('' when there is none)."""
        return self.block.code

    source = code

    @property
    def filename(self) -> str:
        return self.block.filename

    @property
    def problem(self) -> str:
        """Why no snippet is shown ('' while one is)."""
        return self.block.problem

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
        code, problem, alert, filename = "", "", "info", self.block.filename
        if settings is None:
            problem = "No snippet: the settings file could not be read (see System settings)."
        else:
            try:
                code = (self.render(settings) if self.render is not None
                        else snippet_for(self.kind, settings, benchmark=self.benchmark()))
                filename = snippet_file_name(self.kind, settings.env.app)
            except Exception as exc:  # a value the generator refuses: say which, keep the page
                problem, alert = f"No snippet for these settings: {exc}", "warning"
        self.block.param.update(code=code, html=highlighted(code), filename=filename, problem=problem, alert=alert)

    def __panel__(self) -> pn.viewable.Viewable:
        return self.block
