"""Live run progress: partitions done per worker over time, streamed from the event bus.

Partition events can arrive fast (64 workers finishing a partition every second) and from any thread.
The bus listener only queues them; a periodic callback on the session's event loop drains the queue
every ``period`` ms and sends the new rows to HoloViews ``Buffer`` streams in one batch, so the
browser receives small appends (Bokeh ``stream``) and the server does a few updates per second
however many workers report. Updates also back off when one costs more than a fifth of the period
(very long runs), so the plot never takes more than a small share of the server.
"""
from __future__ import annotations

import html
import time
from typing import Any

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the Bokeh backend the plots' options need)
import pandas as pd
import panel as pn
import param
from holoviews.streams import Buffer

from ..events import Event, EventBus, PartitionEvent, RunEvent
from ..modes import mode_label
from .logs import EventFeed
from .plot_style import CANVAS, one_document_pass

__all__ = ["ProgressPlot"]

_DONE_COLOR = "#2e7d32"
_FAILED_COLOR = "#c62828"
_TIMELINE_COLUMNS = ["start", "worker", "end", "lane", "label", "seconds"]
_HISTORY_ROWS = 20_000  # partitions kept on the timeline (the newest); the counts are exact whatever the run size
_MAX_FAILURES_SHOWN = 5
_MUTED = {"color": "var(--neutral-foreground-hint, #6b6b6b)"}


def _empty_timeline() -> pd.DataFrame:
    return pd.DataFrame({
        "start": pd.Series(dtype=float), "worker": pd.Series(dtype=str), "end": pd.Series(dtype=float),
        "lane": pd.Series(dtype=str), "label": pd.Series(dtype=str), "seconds": pd.Series(dtype=float),
    })


def _empty_cumulative() -> pd.DataFrame:
    return pd.DataFrame({"elapsed": pd.Series(dtype=float), "done": pd.Series(dtype=int)})


def _accepts(event: Event) -> bool:
    return isinstance(event, (PartitionEvent, RunEvent))


class ProgressPlot(pn.viewable.Viewer):
    """Partitions per worker over time (one lane per worker, one bar per partition) and the running total.

    ``ProgressPlot(bus)`` follows every run on ``bus``: a run that starts clears the plot. ``total`` (the
    number of partitions expected, e.g. from the work plan) only feeds the summary line. ``flush()``
    applies the queued events at once (the periodic callback calls it; tests can call it directly).
    """

    period = param.Integer(default=1000, bounds=(50, 10_000), doc="Milliseconds between two flushes of queued events.")
    total = param.Integer(default=None, allow_None=True, bounds=(0, None), doc="Partitions expected in the run, if known.")
    height = param.Integer(default=240, bounds=(120, None), doc="Height of the plots when few workers report.")
    lanes = param.Integer(default=None, allow_None=True, bounds=(1, None),
                          doc="Workers expected (e.g. the plan's slots): sizes the timeline before they report.")

    summary = param.String(default="", doc="One line: done / running / failed, workers, elapsed time.")
    done = param.Integer(default=0, doc="Partitions done in the current run.")
    failed = param.Integer(default=0, doc="Partitions failed in the current run.")
    running = param.Integer(default=0, doc="Partitions started and not finished.")
    mode = param.Integer(default=None, allow_None=True, doc="Mode of the current run.")

    def __init__(self, bus: EventBus | None = None, **params: Any) -> None:
        super().__init__(**params)
        self.bus = bus
        self._t0: float | None = None
        self._last_time: float | None = None
        self._started: dict[str, tuple[str, float]] = {}
        self._workers: dict[str, int] = {}
        self._finished = False
        self._n_lanes = 0
        self._timeline_height = 0
        self._failures: list[PartitionEvent] = []
        self._not_before = 0.0  # back-off: no plot update before this monotonic time
        self._last_tick = 0.0
        self.timeline = Buffer(_empty_timeline(), length=_HISTORY_ROWS, index=False)
        self.cumulative = Buffer(_empty_cumulative(), length=_HISTORY_ROWS, index=False)
        self._summary_pane = pn.pane.Markdown(self._summary_text(), margin=(0, 10), sizing_mode="stretch_width")
        self._empty = pn.pane.Markdown(
            "No run yet: progress appears here as partitions finish, one lane per worker.", styles=_MUTED,
            margin=(0, 10),
        )
        self._failures_pane = pn.pane.HTML("", visible=False, margin=(0, 10), sizing_mode="stretch_width")
        self._plots: pn.viewable.Viewable | None = None
        self._layout = pn.Column(self._summary_pane, self._empty, sizing_mode="stretch_width")
        # the latest run on the bus is replayed: a section built during or after a run is not blank
        self._feed = EventFeed(bus if bus is not None else EventBus(), _accepts, self._apply, period=self.period,
                               replay=lambda e: isinstance(e, RunEvent) and e.state == "started")
        self.flush()

    def push(self, event: Event) -> None:
        """Queue one event by hand (what the bus listener does)."""
        self._feed.push(event)

    # -- batched update (event loop) ------------------------------------------------------------------
    def _reset(self, t0: float | None, mode: int | None) -> None:
        self._t0, self._last_time, self._finished = t0, t0, False
        self._started.clear()
        self._workers.clear()
        self._failures.clear()
        self.param.update(done=0, failed=0, running=0, mode=mode)

    def flush(self, force: bool = True) -> int:
        """Apply the queued events in one batch; returns how many were applied.

        The periodic callback calls ``flush(force=False)``, which waits while the last update was
        expensive (backing off to keep the server's share small); tests and callers flush at once.
        """
        now = time.monotonic()
        if not force and now < self._not_before:
            return 0
        events = self._feed.drain()
        if not events:
            if self._t0 is not None and not self._finished and self._started and now - self._last_tick >= 1.0:
                self._last_tick = now
                self._summary_pane.object = self._summary_text()  # keep the clock ticking while work runs
            return 0
        self._apply(events)
        cost = time.monotonic() - now
        self._not_before = now + max(0.0, 5 * cost - self.period / 1000)  # at most ~20% of the time in updates
        return len(events)

    def _apply(self, events: list[Event]) -> None:
        cleared = False
        done, failed = self.done, self.failed
        rows: list[dict[str, Any]] = []
        totals: list[dict[str, Any]] = []
        for event in events:
            if isinstance(event, RunEvent):
                if event.state == "started":
                    self._reset(event.time, event.mode)
                    done = failed = 0
                    rows.clear()
                    totals.clear()
                    cleared = True
                else:
                    self._finished = True
                    self._last_time = event.time
                continue
            assert isinstance(event, PartitionEvent)
            if self._t0 is None:
                self._t0 = event.time - (event.seconds if event.state != "started" else 0.0)
            self._last_time = max(self._last_time or event.time, event.time)
            self._workers.setdefault(event.worker, 0)
            if event.state == "started":
                self._started[event.label] = (event.worker, event.time)
                continue
            _worker, began = self._started.pop(event.label, (event.worker, event.time - event.seconds))
            if event.state != "done":
                failed += 1
                self._failures.append(event)
                continue
            done += 1
            self._workers[event.worker] += 1
            start, end = max(began - self._t0, 0.0), max(event.time - self._t0, 0.0)
            rows.append({"start": start, "worker": event.worker, "end": max(end, start), "lane": event.worker,
                         "label": event.label, "seconds": round(event.seconds or max(end - start, 0.0), 3)})
            # a vertical step: the count before, then after, at the same time
            totals += [{"elapsed": end, "done": done - 1}, {"elapsed": end, "done": done}]
        self.param.update(done=done, failed=failed, running=len(self._started))
        if cleared:
            self.timeline.clear()
            self.cumulative.clear()
        self._ensure_plots()
        with one_document_pass():  # both plots, the page walked once
            if rows:
                self._grow(len(self._workers))
                self.timeline.send(pd.DataFrame(rows, columns=_TIMELINE_COLUMNS))
            if totals:
                self.cumulative.send(pd.DataFrame(totals, columns=["elapsed", "done"]))
            self._summary_pane.object = self._summary_text()
            self._show_failures()

    def _show_failures(self) -> None:
        if not self._failures:
            self._failures_pane.visible = False
            return
        items = "".join(
            f"<li><b>{html.escape(e.label)}</b> on {html.escape(e.worker)}: {html.escape(e.error or 'failed')}</li>"
            for e in self._failures[:_MAX_FAILURES_SHOWN])
        more = len(self._failures) - _MAX_FAILURES_SHOWN
        tail = f"<li>… and {more} more (see Run logs)</li>" if more > 0 else ""
        self._failures_pane.object = (f'<div style="color:{_FAILED_COLOR}">Failed partitions:<ul style="margin:2px 0">'
                                      f"{items}{tail}</ul></div>")
        self._failures_pane.visible = True

    def _summary_text(self) -> str:
        """The summary line as Markdown (``summary`` holds the same words as plain text)."""
        if self._t0 is None:
            self.summary = ""
            return ""
        now = self._last_time if self._finished else max(time.time(), self._last_time or 0.0)
        elapsed = max(0.0, now - self._t0)
        expected = f" / {self.total:,}" if self.total else ""
        workers = len(self._workers)
        plain = [f"{self.done:,}{expected} partitions done", f"{self.running:,} running"]
        marked = [f"**{self.done:,}{expected}** partitions done", f"{self.running:,} running"]
        if self.failed:
            plain.append(f"{self.failed} failed")
            marked.append(f"<span style='color:{_FAILED_COLOR}'>**{self.failed} failed**</span>")
        tail = [f"{workers} worker{'s' if workers != 1 else ''}", f"{elapsed:.1f} s"] + (["finished"] if self._finished else [])
        head = [mode_label(self.mode)] if self.mode is not None else []
        self.summary = " · ".join(head + plain + tail)
        return " · ".join(head + marked + tail)

    # -- plots ---------------------------------------------------------------------------------------
    def _lane_height(self, lanes: int) -> int:
        """Timeline height: ``height`` for a few workers, growing with the lanes (capped)."""
        return max(self.height, min(70 + 16 * lanes, 1100))

    def _grow(self, lanes: int) -> None:
        """More lanes than the timeline was sized for: give it a new plot of the right height."""
        if self._plots is None or self._lane_height(lanes) <= self._timeline_height:
            return
        self._timeline_height = self._lane_height(max(lanes, 2 * self._n_lanes))
        self._n_lanes = max(lanes, 2 * self._n_lanes)
        self._timeline_pane.object = hv.DynamicMap(self._timeline_element, streams=[self.timeline])

    def _timeline_element(self, data: pd.DataFrame) -> hv.Segments:
        lanes = max(len(self._workers), 1)
        return hv.Segments(data, kdims=["start", "worker", "end", "lane"], vdims=["label", "seconds"]).opts(
            color=_DONE_COLOR,
            line_width=max(2, min(16, int(0.6 * (self._timeline_height - 70) / lanes))),
            xlabel="seconds since the run started", ylabel="", xlim=(0, None), framewise=True, padding=(0.03, 0.1),
            tools=["hover"], responsive=True, height=self._timeline_height, title="Partitions done per worker over time",
            default_tools=["pan", "wheel_zoom", "reset", "save"], active_tools=[], toolbar="above",
            backend_opts=CANVAS,
        )

    def _cumulative_element(self, data: pd.DataFrame) -> hv.Curve:
        return hv.Curve(data, "elapsed", "done").opts(
            color="#1565c0", line_width=2, framewise=True, responsive=True, padding=(0.03, 0.05),
            height=self.height, xlim=(0, None), ylim=(0, None), title="Partitions done",
            xlabel="seconds since the run started", ylabel="", tools=["hover"],
            default_tools=["pan", "wheel_zoom", "reset", "save"], active_tools=[], toolbar="above",
            backend_opts=CANVAS,
        )

    def _ensure_plots(self) -> None:
        if self._plots is not None or self._t0 is None:
            return
        self._n_lanes = max(len(self._workers), self.lanes or 0, 1)
        self._timeline_height = self._lane_height(self._n_lanes)
        timeline = hv.DynamicMap(self._timeline_element, streams=[self.timeline])
        cumulative = hv.DynamicMap(self._cumulative_element, streams=[self.cumulative])
        self._timeline_pane = pn.pane.HoloViews(timeline, sizing_mode="stretch_width", linked_axes=False)
        self._cumulative_pane = pn.pane.HoloViews(cumulative, sizing_mode="stretch_width", linked_axes=False)
        self._plots = pn.Row(pn.Column(self._timeline_pane, sizing_mode="stretch_width", margin=0),
                             pn.Column(self._cumulative_pane, width=420, sizing_mode="fixed", margin=0),
                             sizing_mode="stretch_width")
        self._layout[:] = [self._summary_pane, self._plots, self._failures_pane]

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Flush queued events every ``period`` ms (backing off when updates get slow)."""
        self._feed.start(lambda: self.flush(force=False))

    def close(self) -> None:
        """Stop following the bus and stop the periodic flush."""
        self._feed.close()

    def __panel__(self) -> pn.viewable.Viewable:
        self.start()
        return self._layout
