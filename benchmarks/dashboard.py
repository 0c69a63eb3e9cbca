"""Dashboard cost, measured in one run of one server:

1. Server CPU while a ProgressPlot streams 64 simulated workers, each finishing a partition every second,
   for ~20 s to an open browser (psutil on the server process).
2. First complete render: time from navigation to the moment every Bokeh root of the page has rendered
   (``Bokeh.documents[0].is_idle``) in headless Chromium, for the full ORCHESTRATE page and for a bare
   Panel page (the same template, one HoloViews plot, one Tabulator). Goal: full / bare <= 1.3.

    python benchmarks/dashboard.py [--runs 5] [--stream-seconds 20] [--workers 64]

Every per-user folder points at a temporary directory; Chromium is /usr/bin/chromium (or CHROMIUM).
"""
from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]

# Polls every animation frame from the first script on; records when the Bokeh document is fully rendered.
RENDER_PROBE = """
(() => {
  const poll = () => {
    const docs = window.Bokeh && window.Bokeh.documents;
    if (docs && docs.length && docs[0].roots().length && docs.every((d) => d.is_idle)) {
      window.__rendered_ms = performance.now();
      return;
    }
    requestAnimationFrame(poll);
  };
  requestAnimationFrame(poll);
})();
"""


# -- server side --------------------------------------------------------------------------------------
def bare_page():  # noqa: ANN201 - a Panel template
    """The reference: one template, one HoloViews plot, one Tabulator."""
    import holoviews as hv
    import numpy as np
    import pandas as pd
    import panel as pn

    from agilab_panel.ui.page import ACCENT, TITLE

    x = np.linspace(0, 10, 200)
    curve = hv.Curve((x, np.sin(x)), "x", "y").opts(responsive=True, height=300, title="A plot")
    frame = pd.DataFrame({"a": range(100), "b": np.random.default_rng(0).random(100)})
    table = pn.widgets.Tabulator(frame, pagination="remote", page_size=20, sizing_mode="stretch_width")
    return pn.template.FastListTemplate(
        title=TITLE, accent=ACCENT, theme_toggle=False, main_layout=None, sidebar_width=300,
        sidebar=[pn.pane.Markdown("Bare page")], main=[pn.Column(pn.pane.HoloViews(curve), table)],
    )


def stream_page(workers: int):  # noqa: ANN201
    """A ProgressPlot fed by ``workers`` simulated workers finishing one partition a second each."""
    import panel as pn

    from agilab_panel.events import EventBus, PartitionEvent, RunEvent
    from agilab_panel.ui.progress import ProgressPlot

    bus = EventBus(history=1000)
    plot = ProgressPlot(bus, lanes=workers)
    stop = threading.Event()

    def simulate() -> None:  # emits from another thread, like the executors do
        bus.emit(RunEvent(app="bench", mode=4, state="started"))
        tick = 0
        while not stop.is_set():
            for w in range(workers):
                label = f"p{tick}-{w}"
                bus.emit(PartitionEvent(label=label, worker=f"10.0.{w // 16}.1-{w % 16}", state="started"))
                bus.emit(PartitionEvent(label=label, worker=f"10.0.{w // 16}.1-{w % 16}", state="done", seconds=0.9))
            tick += 1
            stop.wait(1.0)

    def start(*_args) -> None:  # noqa: ANN002
        threading.Thread(target=simulate, daemon=True).start()

    pn.state.onload(start)
    pn.state.on_session_destroyed(lambda _ctx: (stop.set(), plot.close()))
    return pn.template.FastListTemplate(title="Progress stream", main=[plot], main_layout=None)


def run_server(port: int, workers: int) -> None:
    from agilab_panel.ui.serve import serve

    serve(port=port, routes={"bare": bare_page, "stream": lambda: stream_page(workers)})


# -- driver -------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"server did not answer at {url}")


def _render_ms(browser, url: str) -> float:  # noqa: ANN001
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(RENDER_PROBE)
    page = context.new_page()
    page.goto(url, wait_until="commit")
    page.wait_for_function("window.__rendered_ms !== undefined", timeout=120_000)
    value = page.evaluate("window.__rendered_ms")
    context.close()
    return float(value)


def _cpu_share(process, seconds: float) -> tuple[float, float]:  # noqa: ANN001 - a psutil.Process
    """CPU time of ``process`` (all its threads) per wall-clock second over ``seconds``."""
    before, t0 = process.cpu_times(), time.monotonic()
    time.sleep(seconds)
    after, t1 = process.cpu_times(), time.monotonic()
    return (after.user - before.user + after.system - before.system) / (t1 - t0), t1 - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured page loads of each page (after one warm-up)")
    parser.add_argument("--stream-seconds", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # internal: run the server on this port
    ns = parser.parse_args()
    if ns.serve:
        run_server(ns.serve, ns.workers)
        return

    import psutil
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise SystemExit(f"no Chromium at {CHROMIUM} (set CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="agilab-bench-") as tmp:
        env = dict(os.environ, AGILAB_HOME=f"{tmp}/home", AGI_CLUSTER_SHARE=f"{tmp}/share",
                   AGILAB_EXPORT_ABS=f"{tmp}/export", AGILAB_LOG_ABS=f"{tmp}/log")
        env.pop("AGILAB_APPS_PATH", None)
        port = _free_port()
        proc = subprocess.Popen([sys.executable, __file__, "--serve", str(port), "--workers", str(ns.workers)],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_http(base + "/bare", proc)
            server = psutil.Process(proc.pid)
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

                # 1. server CPU while the progress plot streams to an open page (first: no other session alive)
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                page.goto(base + "/stream")
                shown = page.get_by_text(re.compile(r"partitions done")).first
                shown.wait_for(timeout=60_000)
                time.sleep(2)  # steady state
                cpu, seconds = _cpu_share(server, ns.stream_seconds)
                summary = shown.text_content() or ""
                context.close()
                print(f"server CPU while streaming {ns.workers} workers at 1 Hz for {seconds:.0f} s: "
                      f"{100 * cpu:.1f}% of one core (progress shown: {summary.strip() or 'n/a'})")

                # for reference: one full page open and idle (what its live views cost when nothing happens)
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                page.goto(base + "/")
                page.get_by_text("System settings").first.wait_for(timeout=60_000)
                time.sleep(2)
                idle, seconds = _cpu_share(server, 5.0)
                context.close()
                print(f"server CPU with one full page open and idle for {seconds:.0f} s: {100 * idle:.1f}% of one core")

                # 2. first complete render, full page vs bare page
                pages = {"full page": base + "/", "bare page": base + "/bare"}
                for url in pages.values():  # warm-up: imports and first-session costs are paid once
                    _render_ms(browser, url)
                times: dict[str, list[float]] = {name: [] for name in pages}
                for _ in range(ns.runs):  # interleaved, so load on the shared machine hits both alike
                    for name, url in pages.items():
                        times[name].append(_render_ms(browser, url))
                full, bare = (statistics.median(times[n]) for n in ("full page", "bare page"))
                print("first complete render (median of "
                      f"{ns.runs}, ms): full page {full:.0f}  bare page {bare:.0f}  ratio {full / bare:.2f} "
                      f"(goal <= 1.30)")
                for name, values in times.items():
                    print(f"  {name}: " + ", ".join(f"{v:.0f}" for v in values))
                browser.close()
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
