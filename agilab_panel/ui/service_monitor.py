"""The live view of an app's service: its status, queue counts, health table and a streamed plot.

Everything comes from :func:`agilab_panel.service.monitor.snapshot`, files only (no Dask connection,
no restart), read afresh on every tick: the view keeps working while the service stops and starts
again, and after the dashboard itself restarts. Ticks run once a second from a periodic callback
that exists only while the view is shown: started when its layout is rendered (a browser session, a
notebook output), stopped when the last rendering goes (the session ends), by :meth:`stop` (a
section hides it) and by :meth:`close`. Nobody watching means no work on the server.
"""
from __future__ import annotations

import asyncio
import functools
import os
import time
from typing import Any

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the Bokeh backend the plots' options need)
import pandas as pd
import panel as pn
import param
from holoviews.streams import Buffer

from ..service.monitor import snapshot
from .deferred import made, show_when
from .plot_style import CANVAS

__all__ = ["ServiceMonitor", "HEALTH_COLUMNS", "QUEUES", "health_frame", "ServiceDashboard", "service_dashboard"]

HEALTH_COLUMNS = ["worker", "healthy", "reason", "future_state", "heartbeat_state", "heartbeat_age_sec"]
QUEUES = ["pending", "running", "done", "failed"]
_HISTORY_ROWS = 20_000
_EMPTY = ("No service data yet: START the service and the heartbeat age of each loop and the queue counts "
          "stream here every second.")
_MUTED = {"color": "var(--neutral-foreground-hint, #6b6b6b)"}
_STATUS_COLORS = {"running": "#2e7d32", "degraded": "#e65100", "error": "#c62828"}


def health_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The health table's rows in its fixed columns (an age is blank when no heartbeat was read)."""
    frame = pd.DataFrame([{c: r.get(c) for c in HEALTH_COLUMNS} for r in rows], columns=HEALTH_COLUMNS)
    frame["heartbeat_age_sec"] = pd.to_numeric(frame["heartbeat_age_sec"], errors="coerce").round(2)
    frame["reason"] = frame["reason"].fillna("")
    return frame


class _Shown(pn.Column):
    """A column that says when it is first rendered and when its last rendering is cleaned up."""

    def __init__(self, *objects: Any, on_show: Any, on_hide: Any, **params: Any) -> None:
        super().__init__(*objects, **params)
        self._on_show, self._on_hide = on_show, on_hide

    def _get_model(self, doc: Any, root: Any = None, parent: Any = None, comm: Any = None) -> Any:
        self._on_show()  # first: the models are made with the first snapshot in them
        return super()._get_model(doc, root, parent, comm)

    def _cleanup(self, root: Any = None) -> None:
        super()._cleanup(root)
        if not self._models:
            self._on_hide()


def _lines(data: pd.DataFrame, key: str, value: str, title: str, ylabel: str) -> hv.Path:
    """One line per ``key`` in a single element, so the streamed plot keeps its shape as lines join."""
    paths = [group[["t", value, key]].assign(lane=lane) for lane, (_, group) in enumerate(data.groupby(key))]
    paths = paths or [pd.DataFrame({"t": [float("nan")], value: [float("nan")], key: [""], "lane": [0]})]
    return hv.Path(paths, ["t", value], vdims=[key, "lane"]).opts(
        color="lane", cmap="Category10", line_width=2, tools=["hover"], responsive=True, height=220,
        title=title, xlabel="seconds since this view opened", ylabel=ylabel, framewise=True, ylim=(0, None),
        backend_opts=CANVAS,
    )


class ServiceMonitor(pn.viewable.Viewer):
    """Status, queue counts, health table and live plot of the service of ``app`` under ``share``."""

    share = param.String(default="", doc="The cluster share holding service/<app>/.")
    app = param.String(default="", doc="The app whose service is shown.")
    period = param.Integer(default=1000, bounds=(100, 60_000), doc="Milliseconds between two snapshots.")
    status = param.String(default="", doc="Status of the last snapshot (idle, running, degraded, error).")
    message = param.String(default="")
    queue = param.Dict(default={}, doc="Tasks per queue folder at the last snapshot.")
    rows = param.List(default=[], doc="The health table's rows at the last snapshot.")
    ticks = param.Integer(default=0, doc="Snapshots taken (none while nobody watches).")
    watching = param.Boolean(default=False, doc="The periodic snapshot runs.")

    def __init__(self, share: str | os.PathLike = "", app: str = "", **params: Any) -> None:
        super().__init__(share=os.fspath(share), app=app, **params)
        self._origin = time.time()
        self._callback: Any = None
        self._seen_data = False
        self.ages = Buffer(pd.DataFrame({"t": [], "worker": [], "age": []}), length=_HISTORY_ROWS, index=False)
        self.counts = Buffer(pd.DataFrame({"t": [], "queue": [], "tasks": []}), length=_HISTORY_ROWS, index=False)
        # Visibility is switched on a wrapper (switching it on a HoloViews pane itself trips Panel), and the
        # wrapper holds the plots and the table only once there is data: a hidden plot still costs the page
        # its figure (some forty models each) and its rendering on the server.
        self._plots = pn.Row(sizing_mode="stretch_width", margin=0, visible=False)
        self._empty = pn.pane.Markdown(_EMPTY, styles=dict(_MUTED), margin=(5, 10))
        self._status = pn.pane.Markdown("", sizing_mode="stretch_width", margin=(0, 10))
        self._queue = pn.pane.Markdown("", sizing_mode="stretch_width", margin=(0, 10))
        self._table_box = pn.Column(sizing_mode="stretch_width", margin=0, visible=False)
        self._layout = _Shown(self._status, self._queue, self._empty, self._table_box, self._plots,
                              on_show=self.start, on_hide=self.stop, sizing_mode="stretch_width", margin=0)
        self._show_status()

    # The plots and the table are made with the first data to show (see deferred.show_when).
    @functools.cached_property
    def table(self) -> pn.widgets.Tabulator:
        return pn.widgets.Tabulator(
            health_frame([]), disabled=True, selectable=False, show_index=False, sizing_mode="stretch_width",
            layout="fit_data_stretch", margin=(5, 10),
            formatters={"healthy": {"type": "tickCross"},
                        "heartbeat_age_sec": {"type": "money", "precision": 2, "symbol": ""}},
        )

    @functools.cached_property
    def _plot_panes(self) -> list[pn.pane.HoloViews]:
        ages = hv.DynamicMap(lambda data: _lines(data, "worker", "age", "Heartbeat age per worker",
                                                 "heartbeat age (s)"), streams=[self.ages])
        counts = hv.DynamicMap(lambda data: _lines(data, "queue", "tasks", "Queue", "tasks"), streams=[self.counts])
        return [pn.pane.HoloViews(plot, sizing_mode="stretch_width", margin=(5, 10), linked_axes=False)
                for plot in (ages, counts)]

    # -- data --------------------------------------------------------------------------------------------
    def tick(self) -> dict[str, Any]:
        """Take one snapshot now and show it (what the periodic callback does, off the event loop)."""
        snap = snapshot(self.share, self.app)
        self.apply(snap)
        return snap

    async def _tick(self) -> None:
        snap = await asyncio.to_thread(snapshot, self.share, self.app)
        self.apply(snap)

    def apply(self, snap: dict[str, Any]) -> None:
        """Show a snapshot of :func:`~agilab_panel.service.monitor.snapshot`."""
        rows, queue = list(snap.get("rows", [])), dict(snap.get("queue", {}))
        self.param.update(status=str(snap.get("status", "")), message=str(snap.get("message", "")), queue=queue,
                          rows=rows, ticks=self.ticks + 1)
        t = float(snap.get("time", time.time())) - self._origin
        if rows:
            self._seen_data = True
            self.table.value = health_frame(rows)
            ages = [(t, r["worker"], float(r["heartbeat_age_sec"])) for r in rows
                    if r.get("heartbeat_age_sec") is not None]
            if ages:
                self.ages.send(pd.DataFrame(ages, columns=["t", "worker", "age"]))
        elif self._seen_data:  # the table was made with the first rows
            self.table.value = health_frame([])
        if self._seen_data:  # the queue line goes on after the service stops: its tasks are still there
            self.counts.send(pd.DataFrame([(t, name, int(queue.get(name, 0))) for name in QUEUES],
                                          columns=["t", "queue", "tasks"]))
        self._empty.visible = not self._seen_data
        show_when(self._plots, lambda: self._plot_panes, self._seen_data)
        show_when(self._table_box, lambda: [self.table], bool(rows))

    def follow(self, share: str | os.PathLike, app: str) -> None:
        """Show the service of another ``app`` (under ``share``) from now on: nothing of the previous one stays
        (its table, its plotted history); a view being watched reads the new one at once."""
        self._origin, self._seen_data = time.time(), False
        self.ages.clear()
        self.counts.clear()
        if made(self, "table"):
            self.table.value = health_frame([])
        self.param.update(share=os.fspath(share), app=app, status="", message="", queue={}, rows=[])
        self._empty.visible, self._plots.visible, self._table_box.visible = True, False, False
        if self.watching:
            self.tick()

    @param.depends("app", "status", "message", "queue", watch=True)
    def _show_status(self) -> None:
        if not self.status:
            self._status.object = f"Service of **{self.app}**: not read yet."
            self._queue.object = ""
            return
        color = _STATUS_COLORS.get(self.status, "#6b6b6b")
        self._status.object = (f'Service of **{self.app}**: <span style="color:{color}"><b>{self.status}</b></span>'
                               f" — {self.message}")
        self._queue.object = "Queue: " + " · ".join(f"{name} **{int(self.queue.get(name, 0))}**" for name in QUEUES)

    # -- watching -----------------------------------------------------------------------------------------
    def start(self) -> None:
        """Snapshot every ``period`` ms from now on (in the session showing the view, or the notebook's loop)."""
        if self._callback is not None:
            return
        from panel.io.callbacks import PeriodicCallback

        self.tick()  # the first snapshot now, not a period later (files only: cheap)
        self._callback = PeriodicCallback(callback=self._tick, period=self.period, background=True)
        self._callback.start()
        self.watching = True
        doc = pn.state.curdoc
        if doc is not None and doc.session_context is not None:
            pn.state.on_session_destroyed(lambda _ctx: self.stop())

    @property
    def shown(self) -> bool:
        """Rendered somewhere now (a session or a notebook output holds its models)."""
        return bool(self._layout._models)

    def stop(self) -> None:
        """No more snapshots (the view is hidden or its session ended)."""
        if self._callback is not None:
            self._callback.stop()
            self._callback = None
        self.watching = False

    def close(self) -> None:
        self.stop()

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


class ServiceDashboard(pn.viewable.Viewer):
    """The monitor alone for one app (a title, then :class:`ServiceMonitor`): what
    ``dashboards/service_monitor.py`` serves and what a notebook displays."""

    def __init__(self, app: str | None = None, apps_path: list[str] | None = None, **params: Any) -> None:
        super().__init__(**params)
        from ..apps import discover_apps
        from ..env import AgiEnv

        names = sorted(discover_apps([os.fspath(p) for p in apps_path or []]))
        app = app or ("flight_telemetry" if "flight_telemetry" in names else (names[0] if names else ""))
        self.monitor: ServiceMonitor | None = None
        try:
            env = AgiEnv(app, apps_path=apps_path or None, verbose=0)
        except Exception as exc:  # noqa: BLE001 - an unknown or broken app: say which in one line
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self._layout = pn.Column(pn.pane.Alert(f"No service monitor for app {app!r}: {text}", alert_type="danger"),
                                     sizing_mode="stretch_width")
            return
        self.monitor = ServiceMonitor(str(env.share), env.app)
        self._layout = pn.Column(pn.pane.Markdown(f"## Service of {env.app}", margin=(0, 10)), self.monitor,
                                 sizing_mode="stretch_width")

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def service_dashboard(app: str | None = None, apps_path: list[str] | None = None) -> ServiceDashboard:
    """:class:`ServiceDashboard` for ``app`` (default: the first app found)."""
    return ServiceDashboard(app, apps_path)
