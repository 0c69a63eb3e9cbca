"""ProgressPlot: events batched per flush, per-worker lanes, reset per run, replay, cheap flushes."""
from __future__ import annotations

import threading
import time

import pandas as pd

from agilab_panel.events import EventBus, LogLine, PartitionEvent, RunEvent
from agilab_panel.ui.progress import ProgressPlot

from .conftest import visible_text


def _partition(bus: EventBus, label: str, worker: str, t: float, seconds: float = 0.5, ok: bool = True) -> None:
    bus.emit(PartitionEvent(label=label, worker=worker, state="started", time=t))
    bus.emit(PartitionEvent(label=label, worker=worker, state="done" if ok else "failed", time=t + seconds,
                            seconds=seconds, error="" if ok else "boom"))


def test_empty_state_then_lanes_per_worker() -> None:
    bus = EventBus()
    plot = ProgressPlot(bus, total=6)
    assert "No run yet" in visible_text(plot)
    t0 = time.time()
    bus.emit(RunEvent(app="a", mode=0, state="started", time=t0))
    for i in range(6):
        _partition(bus, f"p{i}", f"127.0.0.1-{i % 3}", t0 + i, ok=i != 4)
    bus.log("not a progress event")
    assert plot.flush() == 13  # the run start and 12 partition events; the log line is ignored
    assert (plot.done, plot.failed, plot.running) == (5, 1, 0)
    data = plot.timeline.data  # done partitions: one bar per partition on its worker's lane
    assert list(data["worker"].unique()) == ["127.0.0.1-0", "127.0.0.1-1", "127.0.0.1-2"]
    assert data["label"].tolist() == ["p0", "p1", "p2", "p3", "p5"]
    assert data.iloc[2]["start"] == 2.0 and data.iloc[2]["end"] == 2.5
    assert plot.cumulative.data["done"].tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5]  # steps: before, after
    text = visible_text(plot)
    assert "0: python" in text and "5 / 6" in text and "1 failed" in text and "3 workers" in text
    assert "No run yet" not in text
    assert "Failed partitions" in text and "p4</b> on 127.0.0.1-1: boom" in text
    assert plot.summary.startswith("0: python · 5 / 6 partitions done · 0 running · 1 failed · 3 workers")


def test_a_new_run_clears_the_plot_and_running_partitions_are_counted() -> None:
    bus = EventBus()
    plot = ProgressPlot(bus)
    t0 = time.time()
    bus.emit(RunEvent(app="a", mode=0, state="started", time=t0))
    _partition(bus, "p0", "w-0", t0)
    plot.flush()
    bus.emit(RunEvent(app="a", mode=0, state="done", time=t0 + 1))
    bus.emit(RunEvent(app="a", mode=4, state="started", time=t0 + 2))
    bus.emit(PartitionEvent(label="q0", worker="w-1", state="started", time=t0 + 2.1))
    plot.flush()
    assert plot.timeline.data.empty and plot.cumulative.data.empty
    assert (plot.done, plot.running, plot.mode) == (0, 1, 4)
    assert "4: dask" in plot.summary and "1 running" in plot.summary


def test_replays_the_latest_run_from_the_bus_history() -> None:
    bus = EventBus()
    t0 = time.time()
    bus.emit(RunEvent(app="a", mode=0, state="started", time=t0))
    _partition(bus, "old", "w-0", t0)
    bus.emit(RunEvent(app="a", mode=1, state="started", time=t0 + 5))
    _partition(bus, "new", "w-0", t0 + 5)
    bus.emit(RunEvent(app="a", mode=1, state="done", time=t0 + 6))
    plot = ProgressPlot(bus)  # built after the run (a section opened late) shows it
    assert plot.timeline.data["label"].tolist() == ["new"]
    assert plot.summary.endswith("finished") and "1: pool" in plot.summary


def test_events_from_threads_are_batched_into_one_send_per_flush() -> None:
    bus = EventBus()
    plot = ProgressPlot(bus)
    t0 = time.time()
    bus.emit(RunEvent(app="a", mode=4, state="started", time=t0))
    plot.flush()
    sends: list[int] = []
    original = plot.timeline.send
    plot.timeline.send = lambda data: (sends.append(len(data)), original(data))  # type: ignore[method-assign]

    def worker(w: int) -> None:
        for k in range(20):
            _partition(bus, f"p{w}-{k}", f"10.0.0.{w // 8}-{w % 8}", t0 + k, seconds=0.9)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(64)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    plot.flush()
    assert sends == [64 * 20]  # one send for the whole batch
    assert plot.done == 1280 and plot.timeline.data["worker"].nunique() == 64
    assert plot.flush() == 0  # nothing queued: nothing sent
    assert sends == [1280]


def test_a_flush_walks_the_page_once_however_many_plots_it_updates() -> None:
    """20 s of 64 workers at 1 Hz, flushed every 400 ms: each flush with new partitions updates both plots
    (timeline and total) in one pass over the session's document (Bokeh walks every model of the page at
    the end of each pass), not one pass per plot."""
    from bokeh.document import Document
    from panel.io.state import set_curdoc

    bus = EventBus()
    plot = ProgressPlot(bus)
    doc = Document()
    doc.add_root(plot.__panel__().get_root(doc))  # plots attached, as in a served page
    passes: list[int] = [0]  # the first: the flush of the run start
    recompute = doc.models.recompute

    def counted() -> None:
        passes[-1] += 1
        recompute()

    doc.models.recompute = counted  # type: ignore[method-assign]
    t0 = time.time()
    bus.emit(RunEvent(app="a", mode=4, state="started", time=t0))
    with set_curdoc(doc):  # what the session's periodic callback runs under
        plot.flush()
        for tick in range(50):  # 50 flushes of 400 ms = 20 s
            second = tick * 0.4
            if tick % 5 == 0 or tick % 5 == 2:  # ~1 partition per worker per second, in two waves
                for w in range(64):
                    if (w % 2 == 0) == (tick % 5 == 0):
                        _partition(bus, f"p{w}-{tick}", f"w-{w}", t0 + second, seconds=0.9)
            passes.append(0)
            plot.flush()
    assert plot.done == 64 * 10 and len(plot.timeline.data) == 64 * 10
    with_data = [n for tick, n in enumerate(passes[1:]) if tick % 5 in (0, 2)]
    assert with_data and set(with_data) == {1}, passes  # both plots updated, the page walked once
    plot.close()


def test_close_stops_listening() -> None:
    bus = EventBus()
    plot = ProgressPlot(bus)
    plot.close()
    bus.emit(PartitionEvent(label="p", worker="w", state="done"))
    assert plot.flush() == 0
    assert isinstance(plot.timeline.data, pd.DataFrame)
    bus.emit(LogLine(text="x"))
