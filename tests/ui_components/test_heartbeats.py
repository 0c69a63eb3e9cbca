"""HeartbeatPlot: heartbeat ages per worker from the bus, cleared when a run starts."""
from __future__ import annotations

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401 - the backend the page serves

from agilab_panel.events import EventBus, RunEvent, WorkerEvent
from agilab_panel.ui.heartbeats import HeartbeatPlot


def test_heartbeats_stream_per_worker_and_reset_per_run() -> None:
    bus = EventBus()
    plot = HeartbeatPlot(bus)
    plot.flush()
    assert plot.workers == [] and plot._empty.visible
    hv.render(plot._element(plot.buffer.data), backend="bokeh")  # nothing yet still draws
    bus.emit(RunEvent(app="a", mode=4, state="started", time=100.0))
    for t, age in ((101.0, 0.2), (102.0, 0.3), (103.0, 2.5)):
        bus.emit(WorkerEvent(worker="127.0.0.1-0", state="heartbeat", age=age, time=t))
        bus.emit(WorkerEvent(worker="127.0.0.1-1", state="heartbeat", age=0.1, time=t))
    bus.emit(WorkerEvent(worker="127.0.0.1-1", state="joined"))  # not a heartbeat: ignored
    plot.flush()
    assert plot.workers == ["127.0.0.1-0", "127.0.0.1-1"]
    assert plot.latest == {"127.0.0.1-0": 2.5, "127.0.0.1-1": 0.1}
    data = plot.buffer.data
    assert data[data.worker == "127.0.0.1-0"][["t", "age"]].values.tolist() == [[1.0, 0.2], [2.0, 0.3], [3.0, 2.5]]
    element = plot._element(data)
    assert isinstance(element, hv.Path) and len(element.split()) == 2 and not plot._empty.visible
    figure = hv.render(element, backend="bokeh")  # the options are valid for the served backend
    assert figure.yaxis[0].axis_label == "heartbeat age (s)"

    bus.emit(RunEvent(app="a", mode=4, state="started", time=200.0))
    plot.flush()
    assert plot.workers == [] and plot.buffer.data.empty and plot._empty.visible
