"""Every plot of the page is drawn on a 2D canvas, not with HoloViews' default WebGL (see ui/plot_style.py)."""
from __future__ import annotations

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401 - the backend the page serves
import pandas as pd
import pytest

from agilab_panel.events import EventBus, PartitionEvent, RunEvent, WorkerEvent
from agilab_panel.plan import Partition, build_plan
from agilab_panel.ui.heartbeats import HeartbeatPlot
from agilab_panel.ui.plan_graph import load_bars, plan_tree
from agilab_panel.ui.progress import ProgressPlot
from agilab_panel.ui.run_section import RunSection
from agilab_panel.ui.service_monitor import _lines


def _plan():  # noqa: ANN202
    return build_plan("minimal_app", [Partition(f"p{i}", 1.0 + i) for i in range(6)], {"127.0.0.1": 2}, {})


def _progress() -> list[hv.Element]:
    bus = EventBus()
    plot = ProgressPlot(bus)
    bus.emit(RunEvent(app="a", mode=0, state="started"))
    bus.emit(PartitionEvent(label="p0", worker="w0", state="started"))
    bus.emit(PartitionEvent(label="p0", worker="w0", state="done", seconds=0.5))
    plot.flush()
    return [plot._timeline_element(plot.timeline.data), plot._cumulative_element(plot.cumulative.data)]


def _heartbeats() -> list[hv.Element]:
    bus = EventBus()
    plot = HeartbeatPlot(bus)
    bus.emit(RunEvent(app="a", mode=4, state="started", time=100.0))
    bus.emit(WorkerEvent(worker="w0", state="heartbeat", age=0.2, time=101.0))
    plot.flush()
    return [plot._element(plot.buffer.data)]


def _service() -> list[hv.Element]:
    data = pd.DataFrame({"t": [0.0, 1.0], "age": [0.1, 0.2], "worker": ["w0", "w0"]})
    return [_lines(data, "worker", "age", "Heartbeat age per worker", "age (s)")]


def _benchmark() -> list[hv.Element]:
    frame = pd.DataFrame({"mode": [0, 1], "label": ["plain", "pool"], "seconds": [2.0, 1.0], "speedup": [1.0, 2.0]})
    return list(RunSection._bench_bars(frame))


@pytest.mark.parametrize("elements", [
    lambda: [plan_tree(_plan()), load_bars(_plan())], _progress, _heartbeats, _service, _benchmark,
], ids=["distribution tree and load chart", "run progress", "worker heartbeats", "service health", "benchmark"])
def test_plots_are_drawn_on_a_canvas(elements) -> None:  # noqa: ANN001
    for element in elements():
        figure = hv.render(element, backend="bokeh")
        assert figure.output_backend == "canvas", element
