"""HeartbeatPlot: heartbeat ages per worker from the bus, cleared when a run starts; fed by a real cluster run."""
from __future__ import annotations

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401 - the backend the page serves
import pytest

from agilab_panel import AGI, AgiEnv, EventBus, RunRequest
from agilab_panel.events import RunEvent, WorkerEvent
from agilab_panel.ui.heartbeats import IDLE_TEXT, MIN_AGE, MIN_SPAN, WAITING_TEXT, HeartbeatPlot


def test_heartbeats_stream_per_worker_and_reset_per_run() -> None:
    bus = EventBus()
    plot = HeartbeatPlot(bus)
    plot.flush()
    assert plot.workers == [] and plot._empty.visible and plot._empty.object == IDLE_TEXT
    assert plot._pane is None and plot._plot_box.objects == []  # no figure before the first heartbeat
    hv.render(plot._element(plot.buffer.data), backend="bokeh")  # nothing yet still draws
    bus.emit(RunEvent(app="a", mode=4, state="started", time=100.0))
    plot.flush()
    assert plot._empty.visible and plot._empty.object == WAITING_TEXT  # a sentence until the first heartbeat
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
    assert plot._plot_box.visible and plot._plot_box.objects == [plot._pane]
    figure = hv.render(element, backend="bokeh")  # the options are valid for the served backend
    assert figure.yaxis[0].axis_label == "heartbeat age (s)"
    assert figure.xaxis[0].axis_label == "seconds since the run started"
    # three seconds of run still show a readable span from the start; the age axis holds the oldest age
    assert (figure.x_range.start, figure.x_range.end) == (0.0, MIN_SPAN)
    assert figure.y_range.start == 0.0 and figure.y_range.end >= 2.5

    bus.emit(RunEvent(app="a", mode=4, state="started", time=200.0))
    plot.flush()
    assert plot.workers == [] and plot.buffer.data.empty and plot._empty.visible

    bus.emit(RunEvent(app="a", mode=1, state="started", time=300.0))
    plot.flush()
    assert plot._empty.visible and "no Dask workers" in plot._empty.object and "1: pool" in plot._empty.object


def test_axes_follow_a_long_run_and_old_heartbeats() -> None:
    plot = HeartbeatPlot(EventBus())
    plot.apply([RunEvent(app="a", mode=4, state="started", time=0.0)]
               + [WorkerEvent(worker="w", state="heartbeat", age=0.3 if t != 50 else 7.0, time=float(t))
                  for t in range(1, 101)])
    start, end = plot.time_range(plot.buffer.data)
    assert start == 0.0 and 100.0 <= end < 110.0
    low, high = plot.age_range(plot.buffer.data)
    assert low == 0.0 and 7.0 < high < 9.0
    assert plot.age_range(plot.buffer.data.iloc[:3]) == (0.0, MIN_AGE)


@pytest.mark.integration
async def test_a_real_cluster_run_plots_each_workers_heartbeat_age(installed, use_home) -> None:
    use_home(installed("minimal_app"))
    env = AgiEnv("minimal_app", verbose=0)
    bus = EventBus()
    plot = HeartbeatPlot(bus)
    request = RunRequest(params={"partitions": 4, "size": 2000}, workers={"127.0.0.1": 2}, mode=AGI.DASK_MODE,
                         verbose=0)
    try:
        result = await AGI.run(env, request, events=bus)
    finally:
        await AGI.shutdown()
    assert result.ok, result.to_dict()
    plot.flush()
    data = plot.buffer.data
    assert plot.workers == ["127.0.0.1-0", "127.0.0.1-1"] and not plot._empty.visible
    run = next(e for e in bus.history if isinstance(e, RunEvent) and e.state == "done")
    for worker, rows in data.groupby("worker"):
        # a point as the partitions are sent and one as the results are in, however short the run
        assert len(rows) >= 2, (worker, rows)
        assert rows.t.is_monotonic_increasing and rows.t.min() >= 0 and rows.t.max() <= run.seconds + 1
        assert ((rows.age >= 0) & (rows.age < 30)).all(), rows
    figure = hv.render(plot._element(data), backend="bokeh")
    assert figure.x_range.start == 0.0 and figure.x_range.end >= max(MIN_SPAN, data.t.max())
