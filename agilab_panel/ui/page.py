"""The ORCHESTRATE page: every section, in the order of the reference page, in one template.

System settings and Install are built with the page (they are what a visitor sees first); the sections
below them start as collapsed cards and are built the first time they are opened, so the first render
costs little more than a bare page. A successful INSTALL opens Run, as the reference page does.
Choosing another app keeps the sections that follow the state by themselves (their widgets stay, their
values change) and builds again only those holding the previous app's live views (Install, Run).
"""
from __future__ import annotations

import html
import importlib
import importlib.util
import traceback
from dataclasses import dataclass
from typing import Any

import panel as pn
import param

from ..agi import AGI
from .offline import FONT_CSS, OfflineFast, register
from .page_template import PageTemplate
from .state import OrchestrateState

__all__ = ["OrchestratePage", "SectionSpec", "SECTIONS", "EXTENSIONS", "TITLE", "load_extensions"]

TITLE = "AGILAB · ORCHESTRATE"
ACCENT = "#0b6e99"
# Panel extensions any section may need once the page is live (lazily built sections cannot load JS).
EXTENSIONS = ("tabulator",)

_MUTED = {"color": "var(--neutral-foreground-hint, #6b6b6b)"}
_HEADER_CSS = """
h3 { margin-block-start: 0.2em; margin-block-end: 0.2em; }
.hint { margin-left: 0.9em; font-size: 0.72em; font-weight: normal; color: var(--neutral-foreground-hint, #6b6b6b); }
.hint.ok { color: #2e7d32; }
"""
_CHECK_CSS = """
ul { list-style: none; padding-left: 0.2em; margin: 0; }
li { margin: 0.35em 0; }
.mark { display: inline-block; width: 1.3em; text-align: center; font-weight: bold; }
.done .mark { color: #2e7d32; }
.todo { color: var(--neutral-foreground-hint, #6b6b6b); }
.busy { margin: 0.8em 0 0 0.4em; font-style: italic; color: #1565c0; }
"""


def load_extensions() -> None:
    """Load the JS the page needs (call before building it in a served script or a notebook)."""
    register()  # the page's icons and fonts are served with it
    pn.extension(*EXTENSIONS)


@dataclass(frozen=True)
class SectionSpec:
    """One section of the page: where its class lives and whether it is built with the page."""

    key: str
    title: str
    module: str
    cls: str
    eager: bool = False
    optional: bool = False  # omitted when its module does not exist yet


SECTIONS: tuple[SectionSpec, ...] = (
    SectionSpec("settings", "System settings", "settings_section", "SystemSettingsSection", eager=True),
    SectionSpec("install", "Install", "install_section", "InstallSection", eager=True),
    SectionSpec("distribute", "Distribute", "distribute_section", "DistributeSection"),
    SectionSpec("run", "Run", "run_section", "RunSection"),
    SectionSpec("notebook", "Notebook", "notebook_section", "NotebookSection"),
    SectionSpec("service", "Service mode", "service_section", "ServiceSection", optional=True),
    SectionSpec("load_data", "LOAD DATA", "data_section", "LoadDataSection"),
    SectionSpec("prepare_data", "Prepare Data for Pipeline and Analysis", "data_section", "PrepareDataSection"),
)


def _section_class(spec: SectionSpec) -> type | None:
    try:
        module = importlib.import_module(f"{__package__}.{spec.module}")
    except ModuleNotFoundError as exc:
        if spec.optional and exc.name == f"{__package__}.{spec.module}":
            return None
        raise
    return getattr(module, spec.cls, None) if spec.optional else getattr(module, spec.cls)


def _available(spec: SectionSpec) -> bool:
    if not spec.optional:
        return True
    return importlib.util.find_spec(f"{__package__}.{spec.module}") is not None


class _LazySection:
    """A section slot: a collapsed placeholder card until first opened, then the section itself."""

    def __init__(self, page: OrchestratePage, spec: SectionSpec) -> None:
        self.page, self.spec = page, spec
        self.section: Any = None
        self.header = pn.pane.HTML(self._header_html(""), stylesheets=[_HEADER_CSS], css_classes=["card-title"],
                                   margin=(5, 0))
        self.placeholder = pn.Card(
            title=spec.title, header=self.header, collapsed=True, collapsible=True, sizing_mode="stretch_width",
        )
        self.placeholder.param.watch(self._opened, "collapsed")
        self.slot = pn.Column(self.placeholder, sizing_mode="stretch_width", margin=0)

    def _header_html(self, hint: str, ok: bool = False) -> str:
        hint_html = f'<span class="hint{" ok" if ok else ""}">{html.escape(hint)}</span>' if hint else ""
        return f"<h3>{html.escape(self.spec.title)} {hint_html}</h3>"

    def set_hint(self, hint: str, ok: bool = False) -> None:
        self.header.object = self._header_html(hint, ok)

    def _opened(self, event: param.parameterized.Event) -> None:
        if event.new is False and self.section is None:
            self.page.state.refresh_from_disk()  # show what other sessions saved meanwhile
            self.placeholder.loading = True
            doc = pn.state.curdoc
            if doc is not None and doc.session_context is not None:
                doc.add_next_tick_callback(self.build)  # let the spinner reach the browser first
            else:
                self.build()

    def build(self, new_slot: bool = False) -> Any:
        """Create the section (once) and show it in place of the placeholder; with ``new_slot``, in a new
        slot, which the page puts in place together with the other slots rebuilt at the same time."""
        if self.section is None:
            try:
                cls = _section_class(self.spec)
                self.section = cls(self.page.state)
            except Exception as exc:  # a broken section must not take the page down: say what happened
                self.section = _broken(self.spec.title, exc)
            layout = getattr(self.section, "_layout", None)
            if isinstance(layout, pn.Card):  # its header keeps the hint the collapsed card showed
                layout.header = self.header
            if new_slot:
                self.slot = pn.Column(self.section, sizing_mode="stretch_width", margin=0)
            else:
                self.slot[:] = [self.section]
            self.placeholder.loading = False
            self.page._wire(self.spec.key, self.section)
        return self.section

    def drop(self, reopen: bool = False) -> None:
        """Close the section (it stops following the state) and show the collapsed placeholder again;
        with ``reopen``, the closed section stays shown until :meth:`build` replaces it (each change of a
        slot costs a pass over the whole page)."""
        old, self.section = self.section, None
        if old is not None and hasattr(old, "close"):
            old.close()
        if not reopen:
            self.placeholder.collapsed = True
            if self.slot.objects != [self.placeholder]:  # a section never opened left nothing to swap
                self.slot[:] = [self.placeholder]

    @property
    def built(self) -> bool:
        return self.section is not None

    def expand(self) -> None:
        """Open the section (building it if needed)."""
        if self.section is None:
            self.build()
        layout = getattr(self.section, "_layout", None)
        if isinstance(layout, pn.Card):
            layout.collapsed = False


def _follows_app(section: Any) -> bool:
    """The section shows whichever app the state loads (its class sets ``follows_app``)."""
    return section is not None and bool(getattr(section, "follows_app", False))


def _short(path: Any) -> str:
    """A path as the user knows it: ``~/...`` under the home folder."""
    from pathlib import Path

    path = Path(path)
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


def _broken(title: str, exc: BaseException) -> pn.Card:
    from .logs import details_card

    return pn.Card(
        pn.pane.Alert(f"This section could not be shown: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                      alert_type="danger", sizing_mode="stretch_width"),
        details_card("".join(traceback.format_exception(exc))),
        title=title, sizing_mode="stretch_width", margin=(5, 0),
    )


class OrchestratePage(pn.viewable.Viewer):
    """The whole ORCHESTRATE page for one session: app picker in the sidebar, the sections in the main area.

    ``OrchestratePage(app=..., apps_path=[...])`` builds its own :class:`OrchestrateState`; pass ``state``
    to share one. ``template`` is the served page; displaying the page in a notebook shows the sections
    without the template.
    """

    def __init__(self, state: OrchestrateState | None = None, *, app: str | None = None,
                 apps_path: list[str] | None = None, lazy: bool = True, **params: Any) -> None:
        super().__init__(**params)
        self.state = state if state is not None else OrchestrateState(app=app, apps_path=apps_path)
        self.lazy = lazy
        self.slots: dict[str, _LazySection] = {}
        for spec in SECTIONS:
            if _available(spec):
                self.slots[spec.key] = _LazySection(self, spec)
        for key, slot in self.slots.items():
            if slot.spec.eager or not lazy:
                slot.build()
        self._heading = pn.pane.Markdown("", sizing_mode="stretch_width", margin=(0, 10))
        self.main = pn.Column(self._heading, *(s.slot for s in self.slots.values()), sizing_mode="stretch_width",
                              margin=0)
        self.app_select = pn.widgets.Select.from_param(self.state.param.app, label="App", sizing_mode="stretch_width")
        self._app_info = pn.pane.Markdown("", styles=_MUTED, sizing_mode="stretch_width")
        self._checklist = pn.pane.HTML("", sizing_mode="stretch_width", stylesheets=[_CHECK_CSS], margin=(0, 10))
        from .new_app import AppProblems, ArgumentSets, NewAppDialog

        self.new_app, self.app_problems = NewAppDialog(self.state), AppProblems(self.state)
        self.argument_sets = ArgumentSets(self.state)
        self.sidebar = pn.Column(
            self.app_select, self.new_app, self.app_problems, self.argument_sets, self._app_info,
            pn.pane.Markdown("#### First pass", margin=(10, 10, 0, 10)), self._checklist,
            sizing_mode="stretch_width",
        )
        # Another app: the sections close before the state loads it, and open again once it is loaded.
        self._reopen: set[str] = set()
        self.state.param.watch(self._closing_app, ["app"], precedence=self.state.SWITCH_PRECEDENCE - 10)
        self.state.param.watch(self._app_loaded, ["app"], precedence=self.state.SWITCH_PRECEDENCE + 10)
        self.state.param.watch(self._busy_changed, ["busy"])
        self.state.param.watch(self._install_changed, ["installed"])
        self.state.param.watch(self._refresh_info, ["env", "installed", "plan", "run_result", "benchmark_result",
                                                    "settings", "busy"])
        self._refresh_info()
        self._template: pn.template.BaseTemplate | None = None

    # -- reactions -----------------------------------------------------------------------------------
    def _wire(self, key: str, section: Any) -> None:
        """Opening a section shows what other sessions saved; saved args change the run snippet and plan
        hint: tell Run when Distribute saves them."""
        layout = getattr(section, "_layout", None)
        if isinstance(layout, pn.Card):  # the section's own card: it goes with the section
            layout.param.watch(lambda event: event.new or self.state.refresh_from_disk(), "collapsed")
        args = getattr(section, "args", None) if key == "distribute" else None
        if args is not None and "saved" in getattr(args, "param", {}):
            def saved(*_events: Any) -> None:
                run = self.slots.get("run")
                if run is not None and run.built and hasattr(run.section, "refresh"):
                    run.section.refresh()

            args.param.watch(saved, "saved")

    def _closing_app(self, *_events: Any) -> None:
        """Before the state loads another app: close every section that cannot follow it, so none of them
        follows the state any more. A section whose class says ``follows_app`` stays: it shows the new app
        from the state's params itself, and keeping its widgets spares the page building them again."""
        self._reopen |= {key for key, slot in self.slots.items()  # |=: a refused app switches back inside
                         if (slot.spec.eager or not self.lazy or (slot.built and self._is_open(slot)))
                         and not _follows_app(slot.section)}
        for key, slot in self.slots.items():
            if not _follows_app(slot.section):
                slot.drop(reopen=key in self._reopen)

    def _app_loaded(self, *_events: Any) -> None:
        """The new app is loaded: build again the sections that were open, each showing its own state, and
        show them all in one change of the page (each change of a layout's children costs the served page a
        pass over all its models)."""
        reopen, self._reopen = self._reopen, set()
        for key, slot in self.slots.items():
            if key in reopen:
                slot.build(new_slot=True)
        objects = [self._heading, *(s.slot for s in self.slots.values())]
        if self.main.objects != objects:
            self.main.objects = objects

    def _busy_changed(self, *_events: Any) -> None:
        self.app_select.disabled = bool(self.state.busy)  # an action's outcome belongs to the app it ran for

    @staticmethod
    def _is_open(slot: _LazySection) -> bool:
        layout = getattr(slot.section, "_layout", None)
        return not getattr(layout, "collapsed", False)

    def _install_changed(self, event: param.parameterized.Event) -> None:
        if event.new and not event.old and self.state.busy == "INSTALL" and "run" in self.slots:
            self.slots["run"].expand()

    def _refresh_info(self, *_events: Any) -> None:
        state = self.state
        env = state.env
        description = (getattr(env.spec, "description", "") or "").strip() if env is not None else ""
        self._app_info.object = (f"Settings file  \n`{_short(env.settings_path)}`  \nCluster share  \n`{_short(env.share)}`"
                                 if env is not None else "")
        self._heading.object = f"## {state.app}" + (f"\n{description}" if description else "")
        run_result, plan = state.run_result, state.plan
        output = AGI.last_output(env) if env is not None else None
        steps = [
            ("Settings loaded", state.settings is not None),
            ("Installed", bool(state.installed)),
            ("Work plan checked", plan is not None),
            ("Run done", run_result is not None),
            ("Output available", output is not None),
        ]
        items = "".join(f'<li class="{"done" if done else "todo"}"><span class="mark">{"✓" if done else "○"}</span>'
                        f"{label}</li>" for label, done in steps)
        busy = f'<div class="busy">{html.escape(state.busy)} running…</div>' if state.busy else ""
        self._checklist.object = f"<ul>{items}</ul>{busy}"
        hints = {
            "run": ("ready" if state.installed else "run INSTALL first", bool(state.installed)),
            "distribute": (f"work plan: {len(plan.partitions)} partitions" if plan is not None else "no work plan yet",
                           plan is not None),
            "load_data": ("output available" if output is not None else "", True),
        }
        for key, (hint, ok) in hints.items():
            if key in self.slots:
                self.slots[key].set_hint(hint, ok)

    # -- views -----------------------------------------------------------------------------------------
    def section(self, key: str) -> Any:
        """The section ``key`` (``"run"``, ``"load_data"``...), built if it was not yet."""
        return self.slots[key].build()

    @property
    def template(self) -> PageTemplate:
        if self._template is None:
            self._template = PageTemplate(
                title=TITLE, sidebar=[self.sidebar], main=[self.main], accent=ACCENT, theme_toggle=False,
                main_layout=None, sidebar_width=300, main_max_width="1400px",
                meta_description="Install, distribute, run and benchmark an AGILAB app.", design=OfflineFast,
            )
            self._template.config.css_files.append(FONT_CSS)
        return self._template

    def servable(self, title: str | None = None, **kwargs: Any) -> Any:
        """Serve the page in its template (``panel serve``)."""
        return self.template.servable(title=title or TITLE, **kwargs)

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Row(pn.Column(self.sidebar, width=280), self.main, sizing_mode="stretch_width")
