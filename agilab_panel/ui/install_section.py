"""Install: the generated ``AGI.install(...)`` snippet, INSTALL, live Install logs, a status per host and,
for remote hosts refused for their host key, the key they offer and a Trust button."""
from __future__ import annotations

import html
from typing import Any

import pandas as pd
import panel as pn
import param

from ..events import Event, StepEvent
from ..hosts import is_local_host
from ..install import install_steps
from .host_trust import HostTrust
from .logs import ActionStatus, EventFeed, LogView, Watchers, cancel_button, log_archive_dir
from .offline import icon
from .snippet_view import SnippetView

__all__ = ["HostStatusTable", "InstallSection"]

_MUTED = {"color": "var(--neutral-foreground-hint, #6b6b6b)"}
_STATUS_COLORS = {
    "ok": "#2e7d32", "ready": "#2e7d32", "cached": "#2e7d32", "running": "#1565c0",
    "failed": "#c62828", "stopped": "#b26a00", "pending": "#6b6b6b",
}


class HostStatusTable(pn.viewable.Viewer):
    """One row per host of the worker map: overall status and the outcome of each install step.

    Fed with :class:`~agilab_panel.events.StepEvent` (local hosts share one environment, so a step on one
    local host is a step on all) and finished with the :class:`~agilab_panel.results.InstallResult`.
    ``steps`` are the columns laid out before INSTALL starts, so its events only fill cells.

    A plain HTML table in one pane: a few rows to read, nothing to sort, page or edit, and a Tabulator
    costs the page some 25 models and its script's layout passes (a tenth of a second and more when the
    page opens). Each cell carries its column in ``data-field``.
    """

    def __init__(self, hosts: list[str] | None = None, ready: bool = False, steps: list[str] | None = None,
                 **params: Any) -> None:
        super().__init__(**params)
        self._steps: list[str] = []
        self._rows: dict[str, dict[str, str]] = {}
        self._pane = pn.pane.HTML("", sizing_mode="stretch_width", margin=(5, 10), stylesheets=[_TABLE_CSS])
        self.reset(hosts or [], ready=ready, steps=steps)

    @property
    def columns(self) -> list[str]:
        return ["host", "status", *self._steps, "detail"]

    @property
    def frame(self) -> pd.DataFrame:
        columns = self.columns
        return pd.DataFrame([{"host": h, **{c: "" for c in columns[1:]}, **row} for h, row in self._rows.items()],
                            columns=columns)

    def status(self, host: str) -> str:
        return self._rows[host]["status"]

    def step(self, host: str, step: str) -> str:
        return self._rows[host].get(step, "")

    def reset(self, hosts: list[str], ready: bool = False, steps: list[str] | None = None) -> None:
        """Every host pending (or ready, when a still-valid install exists), a column per step."""
        self._steps = list(steps or [])
        self._rows = {h: {"status": "ready" if ready else "pending", "detail": ""} for h in hosts}
        self._refresh()

    def _targets(self, host: str) -> list[str]:
        if host not in self._rows:
            self._rows[host] = {"status": "pending", "detail": ""}
        if is_local_host(host):
            return [h for h in self._rows if is_local_host(h)]
        return [host]

    def apply(self, events: list[Event]) -> None:
        """Apply a batch of step events."""
        for event in events:
            if not isinstance(event, StepEvent):
                continue
            if event.step not in self._steps:
                self._steps.append(event.step)
            cell = {"started": "running", "done": f"ok {event.seconds:.1f}s", "skipped": "cached",
                    "failed": "failed"}[event.state]
            for host in self._targets(event.host):
                row = self._rows[host]
                row[event.step] = cell
                if event.state == "failed":
                    row["status"], row["detail"] = "failed", event.detail
                elif row["status"] != "failed":
                    row["status"] = "running"
        self._refresh()

    def finish(self, result: Any) -> None:
        """Set each host's final status from an install result (None: the install was stopped)."""
        for host, row in self._rows.items():
            outcome = result.hosts.get(host) if result is not None else None
            if outcome is not None:
                row["status"] = "ok" if outcome.ok else "failed"
                row["detail"] = outcome.error
            elif row["status"] == "running":
                row["status"] = "stopped"
            for step in self._steps:
                if row.get(step) == "running":
                    row[step] = "stopped"
        self._refresh()

    def _refresh(self) -> None:
        self._pane.object = self.to_html()

    def to_html(self) -> str:
        """The table as the page shows it: every value escaped, each status word in its colour."""
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            f'<tr>{"".join(_cell(c, values.get(c, "")) for c in self.columns)}</tr>'
            for values in ({"host": h, **row} for h, row in self._rows.items())
        )
        return f'<table class="host-status"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

    def __panel__(self) -> pn.viewable.Viewable:
        return self._pane


_TABLE_CSS = """
table.host-status { border-collapse: collapse; width: 100%; font-size: 13px; }
table.host-status th { text-align: left; font-weight: 600; border-bottom: 2px solid #d0d7de; padding: 4px 10px; }
table.host-status td { border-bottom: 1px solid #e6e9ec; padding: 4px 10px; vertical-align: top; }
table.host-status td[data-field="detail"] { white-space: pre-wrap; }
"""


def _cell(field: str, value: str) -> str:
    color = _STATUS_COLORS.get(str(value).split(" ")[0])
    style = f' style="color: {color}; font-weight: 600"' if color else ""
    return f'<td data-field="{html.escape(field)}"{style}>{html.escape(str(value))}</td>'


class InstallSection(pn.viewable.Viewer):
    """The "Install" card: snippet, INSTALL / Cancel, readiness, status per host and Install logs."""

    def __init__(self, state: Any, **params: Any) -> None:
        super().__init__(**params)
        self._steps_cache: dict[tuple[str, int], list[str]] = {}
        self.state = state
        self._state_watchers, self._model_watchers = Watchers(), Watchers()
        self.snippet = SnippetView(state, "install")
        self.install_button = pn.widgets.Button(label="INSTALL", color="primary", icon=icon("download"), width=140)
        self._state_watchers.follow(state, ["busy", "settings"], lambda: setattr(
            self.install_button, "disabled", bool(state.busy) or state.settings is None))
        self.install_button.on_click(self._install)
        self.cancel_button = cancel_button(state, "INSTALL", self._state_watchers)
        self.action = ActionStatus(state, "INSTALL", "Installing the worker environment… (logs stream below)")
        self.readiness = pn.pane.Alert("", sizing_mode="stretch_width", margin=(5, 10))
        self.hosts = HostStatusTable(self._hosts(), ready=state.installed, steps=self._steps())
        self.trust = HostTrust(state)  # hosts refused for their host key: the key they offer, and Trust
        self.logs = LogView(state.bus, sources=("install",), title="Install logs",
                            archive_dir=log_archive_dir(state.env), host_name=self._host_name,
                            empty_text="No install logs yet: they stream here, line by line, while INSTALL runs.")
        self._feed = EventFeed(state.bus, lambda e: isinstance(e, StepEvent), self.hosts.apply, replay=False)
        self._state_watchers.watch(state, self._busy_changed, ["busy"])
        self._state_watchers.watch(state, self._reset_hosts, ["settings"])
        self._state_watchers.watch(state, self._show_readiness,
                                   ["installed", "install_note", "install_result", "busy", "settings"])
        self.action.param.watch(self._show_readiness, ["error"])
        self._reset_hosts()
        self._show_readiness()
        self._layout = pn.Card(
            pn.pane.Markdown("Provision the worker environment of every host (virtual environment, app "
                             "dependencies, Cython build when enabled) with this snippet or the INSTALL button.",
                             styles=_MUTED, margin=(0, 10)),
            self.snippet,
            pn.Row(self.install_button, self.cancel_button, margin=(5, 0)),
            self.action,
            self.readiness,
            pn.pane.Markdown("**Status per host**", margin=(5, 10, 0, 10)),
            self.hosts,
            self.trust,
            self.logs,
            title="Install", sizing_mode="stretch_width", collapsible=True,
        )

    # -- actions -------------------------------------------------------------------------------------
    async def _install(self, _event: Any = None) -> None:
        await self.state.install()

    # -- views ---------------------------------------------------------------------------------------
    def _host_name(self, host: str) -> str:
        """A local host as the worker map names it (the engine installs this machine as ``localhost``)."""
        if not is_local_host(host):
            return host
        return next((h for h in self._hosts() if is_local_host(h)), host)

    def _hosts(self) -> list[str]:
        settings = self.state.settings
        return list(settings.cluster.workers) if settings is not None else []

    def _steps(self) -> list[str]:
        """The steps INSTALL will run with the current toggles (the table's columns); a remote host runs
        its checks over SSH (``ssh``) and gets its uv (``uv``) before the same steps as this machine."""
        settings = self.state.settings
        if settings is None:
            return []
        key = (self.state.env.app, settings.cluster.mode)
        if key not in self._steps_cache:  # the install plan reads package metadata: once per mode
            try:
                self._steps_cache[key] = install_steps(self.state.env, settings.cluster.mode)
            except Exception:  # noqa: BLE001 - unreadable app files: INSTALL will say why; columns come with events
                return []
        remote = ["ssh", "uv"] if any(not is_local_host(h) for h in self._hosts()) else []
        return list(dict.fromkeys([*remote, *self._steps_cache[key]]))

    def _reset_hosts(self, *_events: Any) -> None:
        self._model_watchers.clear()
        if self.state.settings is not None:
            self._model_watchers.watch(self.state.settings.cluster, self._workers_changed,
                                       ["workers", "pool", "cython", "rapids", "cluster_enabled"])
        self.hosts.reset(self._hosts(), ready=self.state.installed, steps=self._steps())

    def _workers_changed(self, *_events: Any) -> None:
        if not self.state.busy:
            self.hosts.reset(self._hosts(), ready=self.state.installed, steps=self._steps())

    def _busy_changed(self, event: param.parameterized.Event) -> None:
        if event.new == "INSTALL":
            self.hosts.reset(self._hosts(), steps=self._steps())
        elif event.old == "INSTALL":
            self._feed.flush()
            self.hosts.finish(self.state.install_result)

    def _show_readiness(self, *_events: Any) -> None:
        state, alert = self.state, self.readiness
        alert.visible = True
        if state.settings is None:
            alert.object, alert.alert_type = "Install needs valid settings: see System settings above.", "warning"
        elif state.busy == "INSTALL":
            alert.visible = False
        elif state.installed and state.install_result is not None:
            result = state.install_result
            hosts = ", ".join(f"`{h}`" for h in result.hosts)
            alert.object = (f"**Ready.** The worker environment is installed on {hosts} "
                            f"({result.seconds:.1f} s). Run is enabled.")
            alert.alert_type = "success"
        elif state.installed:
            alert.object = ("**Ready.** A previous install is still valid for these settings: Run is enabled. "
                            "INSTALL again only after changing the app or its dependencies.")
            alert.alert_type = "success"
        elif self.action.error:
            alert.object = "**Not ready.** Fix what failed (see the host table and the logs) and run INSTALL again."
            alert.alert_type = "warning"
        else:
            note = f"  \n{state.install_note}" if state.install_note else ""
            alert.object = f"**Run INSTALL first** to prepare the worker environment; Run is enabled once it succeeds.{note}"
            alert.alert_type = "info"

    @property
    def status_text(self) -> str:
        """The readiness message shown now (empty while INSTALL runs)."""
        return self.readiness.object if self.readiness.visible else ""

    def start(self) -> None:
        self._feed.start()
        self.logs.start()

    def close(self) -> None:
        """Stop the live updates and stop following the state (the section is being dropped)."""
        self._feed.close()
        self.logs.close()
        self.action.close()
        self.trust.close()
        self.snippet.close()
        self._state_watchers.clear()
        self._model_watchers.clear()

    def __panel__(self) -> pn.viewable.Viewable:
        self.start()
        return self._layout
