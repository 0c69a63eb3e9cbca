"""Beside the app selector: "New app…" (the ``new-app`` scaffold), the check-app problems of an app
that cannot be opened or whose code does not load, and the app's argument sets.

An author's broken app is shown as a list of ``file:line: problem`` — the same words as
``agilab-panel check-app`` — instead of a traceback, and the page stays on the app it showed.
"""
from __future__ import annotations

import asyncio
import functools
import html
from pathlib import Path
from typing import Any

import panel as pn
import param

from ..appcheck import Problem, check_app
from ..apps import discover_apps
from ..presets import split_preset
from ..scaffold import KINDS, new_app
from .deferred import show_when

__all__ = ["AppProblems", "ArgumentSets", "NewAppDialog", "DEFAULT_APPS_FOLDER"]

DEFAULT_APPS_FOLDER = Path.home() / "agilab_apps"  # where new apps go when the page was given no apps folder
_PROBLEMS_CSS = """
ul { padding-left: 1.1em; margin: 0.3em 0; }
li { margin: 0.25em 0; font-size: 12px; overflow-wrap: anywhere; }
code { font-size: 11px; }
"""


class NewAppDialog(pn.viewable.Viewer):
    """A "New app…" button opening a small form: name, kind, folder; Create writes the app and selects it.

    The folder is one of the page's app folders (or a default one): the browser never names a path
    of the server to write to.
    """

    message = param.String(default="", doc="Why the last Create was refused ('' after a success).")
    created = param.Parameter(default=None, doc="Path of the last app created here.")

    def __init__(self, state: Any, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self.open_button = pn.widgets.Button(label="New app…", color="light", sizing_mode="stretch_width")
        self._message = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width",
                                      styles={"font-size": "13px", "padding": "4px 10px"})
        self._form_box = pn.Column(sizing_mode="stretch_width", margin=0, visible=False)  # the form once opened
        self.open_button.on_click(lambda _: self._toggle(True))

    # The form is made when first opened (or asked for): a page where nobody creates an app has no use for it.
    @functools.cached_property
    def _fields(self) -> dict[str, pn.widgets.Widget]:
        folders = [*(str(Path(p).expanduser()) for p in self.state.apps_path), str(DEFAULT_APPS_FOLDER)]
        fields = {
            "name": pn.widgets.TextInput(label="Name", placeholder="my_app (lower case, a Python identifier)"),
            "kind": pn.widgets.Select(label="Kind", options={f"{k}: {v.description}": k for k, v in KINDS.items()}),
            "folder": pn.widgets.Select(label="Folder", options=list(dict.fromkeys(folders))),
            "create": pn.widgets.Button(label="Create", color="primary", width=90),
            "cancel": pn.widgets.Button(label="Cancel", color="light", width=90),
        }
        fields["cancel"].on_click(lambda _: self._toggle(False))
        fields["create"].on_click(lambda _: self.create())
        return fields

    name_input = property(lambda self: self._fields["name"])
    kind_select = property(lambda self: self._fields["kind"])
    folder_select = property(lambda self: self._fields["folder"])
    create_button = property(lambda self: self._fields["create"])
    cancel_button = property(lambda self: self._fields["cancel"])

    @functools.cached_property
    def form(self) -> pn.Column:
        return pn.Column(self.name_input, self.kind_select, self.folder_select,
                         pn.Row(self.create_button, self.cancel_button), self._message,
                         visible=False, sizing_mode="stretch_width")

    def _toggle(self, open_: bool) -> None:
        self.form.visible = open_
        show_when(self._form_box, [self.form], open_)  # sent to the page when first opened
        self.open_button.visible = not open_
        if open_:
            self._show("")

    def _show(self, text: str, ok: bool = False) -> None:
        self.message = "" if ok else text
        self._message.object = text
        self._message.alert_type = "success" if ok else "danger"
        self._message.visible = bool(text)

    def create(self) -> Path | None:
        """Write the app (the same scaffold as ``agilab-panel new-app``), add its folder to the page's app
        folders for this session, and select it; a refused name is shown and nothing is written."""
        state, folder = self.state, Path(self.folder_select.value)
        name = self.name_input.value.strip()
        try:
            path = new_app(name, self.kind_select.value, folder, [Path(p) for p in state.apps_path])
        except (ValueError, OSError) as exc:
            self._show(str(exc).splitlines()[0])
            return None
        if str(folder) not in state.apps_path:
            state.apps_path = [*state.apps_path, str(folder)]
        state.param.app.objects = sorted(discover_apps([Path(p) for p in state.apps_path]))
        state.app = name
        self.created = path
        self.name_input.value = ""
        self._toggle(False)
        self._show(f"Created {path}. Serve with --apps-path {folder} to find it again later.", ok=True)
        self._message.visible = True
        return path

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(self.open_button, self._form_box, self._message, sizing_mode="stretch_width", margin=0)


class AppProblems(pn.viewable.Viewer):
    """check-app's problems of an app that could not be opened (``state.broken_app``) or whose args class
    did not load (``state.settings_error`` with an app whose own files are at fault); hidden otherwise."""

    problems = param.List(default=[], item_type=Problem, doc="The problems shown.")
    app = param.String(default="", doc="The app they belong to.")
    folder = param.Parameter(default=None, doc="That app's folder.")

    def __init__(self, state: Any, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self._pane = pn.pane.HTML("", sizing_mode="stretch_width", stylesheets=[_PROBLEMS_CSS],
                                  styles={"border-left": "3px solid #d9534f", "padding": "2px 8px"})
        self.again_button = pn.widgets.Button(label="Check again", color="light", width=110)
        self.again_button.on_click(lambda _: self.check_again())
        # filled when there is a problem to show (see deferred.show_when): a page without one sends nothing
        self._layout = pn.Column(visible=False, sizing_mode="stretch_width", margin=0)
        self._task: asyncio.Future | None = None
        state.param.watch(self._changed, ["broken_app", "settings_error", "env"])
        self._changed()

    def _target(self) -> tuple[str, Path] | None:
        """The app to check: the one refused, else the selected one when its settings did not load."""
        name = self.state.broken_app or (self.state.app if self.state.settings_error else "")
        if not name:
            return None
        path = discover_apps([Path(p) for p in self.state.apps_path]).get(name)
        return (name, path) if path is not None else None

    def _changed(self, *_events: Any) -> None:
        target = self._target()
        if target is None:
            self.param.update(problems=[], app="", folder=None)
            self._render()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a script, a test): check now
            self._set(*target, check_app(target[1], [Path(p) for p in self.state.apps_path]))
            return
        self._task = loop.create_task(self.refresh())  # the check imports the app elsewhere: the page stays live

    async def refresh(self) -> list[Problem]:
        """Check the app again (in a thread) and show what is wrong."""
        target = self._target()
        if target is None:
            return []
        problems = await asyncio.to_thread(check_app, target[1], [Path(p) for p in self.state.apps_path])
        self._set(*target, problems)
        return problems

    def _set(self, app: str, folder: Path, problems: list[Problem]) -> None:
        self.param.update(problems=list(problems), app=app, folder=folder)
        self._render()

    def _render(self) -> None:
        refused = bool(self.app) and self.state.broken_app == self.app
        if not refused and not self.problems:  # a settings file at fault, not the app: that section says so
            show_when(self._layout, [self._pane, self.again_button], False)
            return
        name = html.escape(self.app)
        head = f"<b>{name}</b> could not be opened" if refused else f"<b>{name}</b> does not load"
        if self.problems:
            items = "".join(f"<li><code>{html.escape(_short(p, self.folder))}</code> {html.escape(p.message)}</li>"
                            for p in self.problems)
            body = f"{head}; check-app finds:<ul>{items}</ul>"
        else:
            body = f"{head}, and check-app finds nothing wrong with its files now: check again."
        self._pane.object = body
        show_when(self._layout, [self._pane, self.again_button], True)

    def check_again(self) -> None:
        """Open the app again (after its author edited it): the problems go away once it loads."""
        if self.state.broken_app == self.app:
            self.state.app = self.app
        else:
            self.state.param.trigger("app")

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def _short(problem: Problem, root: Path | None) -> str:
    """``file:line`` with the file relative to the app's folder, as its author reads it."""
    path = Path(problem.file)
    try:
        shown = str(path.relative_to(root)) if root is not None else path.name
    except ValueError:
        shown = path.name
    return f"{shown}:{problem.line}" if problem.line else shown


class ArgumentSets(pn.viewable.Viewer):
    """The app's argument sets (``[args.presets]``): Load one into ``[args]``; and which keys the app's
    own settings brought into this user's file (merged when the app was opened)."""

    message = param.String(default="", doc="What the last Load did.")

    def __init__(self, state: Any, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self.select = pn.widgets.Select(label="Argument set", options=[], sizing_mode="stretch_width")
        self.load_button = pn.widgets.Button(label="Load into args", color="light", width=130)
        self.load_button.on_click(lambda _: self.load())
        self._note = pn.pane.Markdown("", sizing_mode="stretch_width", styles={"font-size": "12px"}, margin=(0, 10))
        # filled once the app has argument sets or merged keys to show (see deferred.show_when)
        self._layout = pn.Column(visible=False, sizing_mode="stretch_width", margin=0)
        state.param.watch(self._changed, ["settings"])
        self._changed()

    def _changed(self, *_events: Any) -> None:
        settings = self.state.settings
        presets = sorted(settings.presets) if settings is not None else []
        merged = list(getattr(settings, "merged", []) or [])
        self.select.options = presets
        if self.select.value not in presets:
            self.select.value = presets[0] if presets else None
        self.select.visible = self.load_button.visible = bool(presets)
        self._note.object = (f"Added from the app's settings: {', '.join(f'`{k}`' for k in merged)}" if merged else "")
        show_when(self._layout, [self.select, self.load_button, self._note], bool(presets or merged))

    def load(self) -> dict[str, Any] | None:
        """Save the chosen set's arguments into ``[args]`` (the other arguments keep their values)."""
        settings, name = self.state.settings, self.select.value
        if settings is None or not name:
            return None
        args, folders = split_preset(settings.preset(name))
        try:
            settings.save_args(args)
        except ValueError as exc:
            self.message = str(exc).splitlines()[0]
        else:
            where = ", ".join(f"{k} {v}" for k, v in folders.items())
            self.message = (f"Loaded '{name}' into [args]." + (
                f" Its folders ({where}) apply with `--preset {name}` on the command line." if where else ""))
            self.state.param.trigger("settings")  # every section shows the saved values
        self._note.object = self.message
        return args

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

