"""Worker heartbeats of a cluster run: seconds since the scheduler last heard from each worker, live.

A flat line near zero is a healthy worker; a line that climbs is a worker that stopped answering
(a long task holding the GIL, or a dying process), which the run's watchdog reports when it leaves.
"""
from __future__ import annotations

import math
from typing import Any

import holoviews as hv
import pandas as pd
import panel as pn
import param
from holoviews.streams import Buffer

from ..events import Event, EventBus, RunEvent, WorkerEvent
from ..modes import DASK_MODE, mode_label
from .logs import EventFeed
from .plot_style import CANVAS

__all__ = ["HeartbeatPlot"]

_COLUMNS = ["t", "worker", "age"]
_HISTORY_ROWS = 20_000
MIN_SPAN = 10.0  # seconds the time axis shows at least, so the first points do not stretch across it
MIN_AGE = 2.0  # seconds the age axis shows at least: healthy ages (well under a second) stay near the floor
IDLE_TEXT = ("No heartbeats yet: during a cluster run (a mode with Dask), each worker's heartbeat age is "
             "plotted here about once a second.")
WAITING_TEXT = "The cluster run has started: waiting for the workers' first heartbeat…"
LOCAL_TEXT = "This run ({mode}) uses no Dask workers, so it sends no heartbeats; cluster runs plot them here."


class HeartbeatPlot(pn.viewable.Viewer):
    """Heartbeat age per worker over the run, fed by ``WorkerEvent(state="heartbeat")`` on ``bus``."""

    period = param.Integer(default=1000, bounds=(100, 10_000), doc="Milliseconds between two plot updates.")
    workers = param.List(default=[], item_type=str, doc="Workers heard from in the current run.")
    latest = param.Dict(default={}, doc="Last heartbeat age per worker, in seconds.")

    def __init__(self, bus: EventBus, **params: Any) -> None:
        super().__init__(**params)
        self._start: float | None = None
        self.buffer = Buffer(pd.DataFrame({"t": [], "worker": [], "age": []}), length=_HISTORY_ROWS, index=False)
        self._pane: pn.pane.HoloViews | None = None  # drawn at the first heartbeat: a page with no cluster run
        self._empty = pn.pane.Markdown(IDLE_TEXT, margin=(5, 10), styles={"color": "#6b6b6b"})  # pays no figure
        # visibility is switched on a wrapper: switching it on the HoloViews pane itself trips Panel
        self._plot_box = pn.Column(sizing_mode="stretch_width", margin=0, visible=False)
        self._layout = pn.Column(self._empty, self._plot_box, sizing_mode="stretch_width", margin=0)
        self._feed = EventFeed(bus, self._accepts, self.apply, period=self.period)

    @staticmethod
    def _accepts(event: Event) -> bool:
        return isinstance(event, RunEvent) and event.state == "started" or (
            isinstance(event, WorkerEvent) and event.state == "heartbeat" and event.age is not None)

    def apply(self, events: list[Event]) -> None:
        """Add a batch of events; a run that starts clears the plot."""
        rows = []
        for event in events:
            if isinstance(event, RunEvent):
                self._start, rows, self.workers, self.latest = event.time, [], [], {}
                self.buffer.clear()
                self._empty.object = WAITING_TEXT if event.mode & DASK_MODE else LOCAL_TEXT.format(
                    mode=mode_label(event.mode))
                continue
            start = self._start if self._start is not None else event.time
            rows.append((event.time - start, event.worker, float(event.age)))
            self.latest = {**self.latest, event.worker: float(event.age)}
        if rows:
            self.workers = sorted(self.latest)
            self.buffer.send(pd.DataFrame(rows, columns=_COLUMNS))
            if self._pane is None:
                plot = hv.DynamicMap(self._element, streams=[self.buffer])
                self._pane = pn.pane.HoloViews(plot, sizing_mode="stretch_width", margin=(5, 10))
                self._plot_box.objects = [self._pane]
        self._empty.visible = not self.latest
        self._plot_box.visible = bool(self.latest)

    def _element(self, data: pd.DataFrame) -> hv.Path:
        """One line per worker, in a single element so the streamed plot keeps its shape as workers join."""
        paths = [group[["t", "age", "worker"]].assign(lane=lane)
                 for lane, (_, group) in enumerate(data.groupby("worker"))]
        # an empty Path cannot be colour-mapped: draw nothing with one blank point instead
        paths = paths or [pd.DataFrame({"t": [float("nan")], "age": [float("nan")], "worker": [""], "lane": [0]})]
        return hv.Path(paths, ["t", "age"], vdims=["worker", "lane"]).opts(
            color="lane", cmap="Category10", line_width=2, tools=["hover"], responsive=True, height=220,
            title="Worker heartbeats (age of the last one)", xlabel="seconds since the run started",
            ylabel="heartbeat age (s)", framewise=True, xlim=self.time_range(data), ylim=self.age_range(data),
            backend_opts=CANVAS,
        )

    @staticmethod
    def time_range(data: pd.DataFrame) -> tuple[float, float]:
        """From the run's start to the last heartbeat, at least :data:`MIN_SPAN` wide (a single point
        would otherwise make a zero-width axis)."""
        last = float(data["t"].max()) if len(data) else math.nan
        return 0.0, MIN_SPAN if math.isnan(last) else max(MIN_SPAN, last * 1.05)

    @staticmethod
    def age_range(data: pd.DataFrame) -> tuple[float, float]:
        """From zero to the oldest heartbeat age seen, at least :data:`MIN_AGE`."""
        top = float(data["age"].max()) if len(data) else math.nan
        return 0.0, MIN_AGE if math.isnan(top) else max(MIN_AGE, top * 1.15)

    def flush(self) -> int:
        return self._feed.flush()

    def start(self) -> None:
        self._feed.start()

    def close(self) -> None:
        self._feed.close()

    def __panel__(self) -> pn.viewable.Viewable:
        self.start()
        return self._layout
