"""Dashboard cost, measured in one run of one server, in headless Chromium:

1. First complete render (every Bokeh root rendered: ``Bokeh.documents[0].is_idle``) of the ORCHESTRATE
   page with every section open (built and expanded on the server) against a bare Panel page (the
   same template, one HoloViews plot, one Tabulator), interleaved. Goal: ratio < 1.5. The lazy page
   (sections built when first opened, as served) is printed beside them.
2. Opening each section of the lazy page, one after the other: from the click on its header to the page
   settled with the section's content shown. Goal: each < 1 s.
3. Switching the app with every section open: from the choice in the App list to the page settled
   (the args card of the new app shown, nothing loading). Goal: < 2 s.

"Settled" is the moment the page was last busy (a server message arrived or a Bokeh view was still
rendering at an animation frame) before it stayed quiet for 0.7 s (benchmarks/_page.py); the quiet wait
is not counted. The page is watched with a plain walk of its text a few times a second, not with
Playwright's locators, whose accessibility-tree queries at every animation frame take the main thread
from the very update being timed.
4. Server CPU while a ProgressPlot streams simulated workers to an open page, after the sessions of the
   pages above have been discarded. Goal: < 10 % of one core.

    python benchmarks/dashboard.py [--runs 5] [--switches 6] [--stream-seconds 10] [--workers 64]

Ends with one ``claim:`` line per goal (benchmarks/table.py builds the README table from them). Every
per-user folder points at a temporary directory; Chromium is /usr/bin/chromium (or CHROMIUM).
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import claim, load, print_claims  # noqa: E402
from _page import (VIEWPORT, click_ms, fresh_page, launch, render_ms, section_header, served,  # noqa: E402
                   settled_ms, text_shown, wait_text)

APPS = ("flight_telemetry", "mandelbrot")  # the built-in apps the switch goes between
# What shows that a section opened: a text only its content holds (the header holds the title).
SECTION_MARKS = {  # a text each section shows once open, and nowhere before
    "distribute": "Distribute details",
    "run": "Run logs",
    "notebook": "Download notebook",
    "service": "Service settings",
    "load_data": "Preview the latest output dataframe",
    "prepare_data": "Reload columns",
}
# -- server side --------------------------------------------------------------------------------------
def bare_page():  # noqa: ANN201 - a Panel template
    """The reference: one template, one HoloViews plot, one Tabulator."""
    import holoviews as hv
    import holoviews.plotting.bokeh  # noqa: F401  (the plot's options need the backend, whichever page came first)
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


def open_page():  # noqa: ANN201 - a Panel template
    """The ORCHESTRATE page of one session with every section built and expanded before the first render."""
    from agilab_panel.ui.serve import session_page

    page = session_page(app=APPS[0])
    for slot in page.slots.values():
        slot.expand()
    return page.template


def run_server(port: int, workers: int) -> None:
    from agilab_panel.ui.serve import serve

    serve(port=port, routes={"bare": bare_page, "open": open_page, "stream": lambda: stream_page(workers)})


# -- driver -------------------------------------------------------------------------------------------
def _section_headers(page) -> dict[str, object]:  # noqa: ANN001
    """The header button of each lazy section still collapsed, by key."""
    from agilab_panel.ui.page import SECTIONS

    found = {}
    for spec in SECTIONS:
        if spec.key not in SECTION_MARKS:
            continue
        header = section_header(page, spec.title)
        if header.count():
            found[spec.key] = header
    return found


def _open(page, key: str, header) -> float:  # noqa: ANN001
    """Open one section; seconds from the click to the page settled with the section's content shown."""
    mark = SECTION_MARKS[key]
    if text_shown(page, mark):
        raise SystemExit(f"the mark of the {key} section ({mark!r}) is shown before it opens: choose another")
    header.scroll_into_view_if_needed()
    settled_ms(page)
    clicked = click_ms(page, header)
    wait_text(page, mark)
    return (settled_ms(page) - clicked) / 1000


def _open_sections(browser, url: str) -> dict[str, float]:  # noqa: ANN001
    """Seconds from the click on each section's header to the page settled with its content shown (see
    _page.settled_ms), on a fresh lazy page, each section opened after the ones above it."""
    page = fresh_page(browser, url)
    seconds = {key: _open(page, key, header) for key, header in _section_headers(page).items()}
    page.context.close()
    return seconds


def _settled(page, app: str, since: float) -> float:  # noqa: ANN001
    """Seconds from page time ``since`` until every open section shows ``app`` (its args card) and the page
    settled, nothing loading."""
    wait_text(page, f"{app} args")
    page.wait_for_function("!document.querySelector('.pn-loading') && Bokeh.documents[0].is_idle", polling=200)
    return (settled_ms(page) - since) / 1000


def _switches(browser, url: str, count: int) -> list[float]:  # noqa: ANN001
    """Seconds from choosing another app to the page settled, with every section open, ``count`` times."""
    page = fresh_page(browser, url)
    for key, header in _section_headers(page).items():
        _open(page, key, header)
    seconds = []
    for i in range(count + 1):  # the first switch imports the other app's modules: not timed
        app = APPS[(i + 1) % 2]
        since = float(page.evaluate("performance.now()"))
        page.get_by_label("App").select_option(app)
        took = _settled(page, app, since)
        if i:
            seconds.append(took)
    page.context.close()
    return seconds


def _cpu_share(process, seconds: float) -> tuple[float, float]:  # noqa: ANN001 - a psutil.Process
    """CPU time of ``process`` (all its threads) per wall-clock second over ``seconds``."""
    before, t0 = process.cpu_times(), time.monotonic()
    time.sleep(seconds)
    after, t1 = process.cpu_times(), time.monotonic()
    return (after.user - before.user + after.system - before.system) / (t1 - t0), t1 - t0


def _quiet(process, limit: float = 0.01, wait: float = 90.0) -> float:  # noqa: ANN001 - a psutil.Process
    """Wait (at most ``wait`` s) until ``process`` uses under ``limit`` of a core over 2 s; its last share."""
    deadline = time.monotonic() + wait
    share, _ = _cpu_share(process, 2)
    while share >= limit and time.monotonic() < deadline:
        share, _ = _cpu_share(process, 2)
    return share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="measured page loads of each page (after one warm-up)")
    parser.add_argument("--switches", type=int, default=6, help="timed app switches (after one untimed)")
    parser.add_argument("--stream-seconds", type=float, default=10.0, help="0: skip the streaming CPU figure")
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # internal: run the server on this port
    ns = parser.parse_args()
    if ns.serve:
        run_server(ns.serve, ns.workers)
        return

    import psutil
    from playwright.sync_api import sync_playwright

    with served(__file__, "--workers", str(ns.workers), ready="/bare") as (base, proc):
        server = psutil.Process(proc.pid)
        with sync_playwright() as pw:
            browser = launch(pw)
            print(f"dashboard benchmark ({load()})")

            # 1. first complete render: every section open vs the bare page (the lazy page for reference)
            pages = {"every section open": base + "/open", "bare page": base + "/bare", "lazy page": base + "/"}
            for url in pages.values():  # warm-up: imports and first-session costs are paid once
                render_ms(browser, url)
            times: dict[str, list[float]] = {name: [] for name in pages}
            for _ in range(ns.runs):  # interleaved, so load on the shared machine hits every page alike
                for name, url in pages.items():
                    times[name].append(render_ms(browser, url))
            medians = {name: statistics.median(values) for name, values in times.items()}
            full, bare = medians["every section open"], medians["bare page"]
            print(f"first complete render, median of {ns.runs} (ms): " + "  ".join(
                f"{name} {value:.0f}" for name, value in medians.items()) + f"  ({load()})")
            for name, values in times.items():
                print(f"  {name}: " + ", ".join(f"{v:.0f}" for v in values))
            ratio = full / bare
            claim("first render with every section open vs the bare Panel page",
                  f"{ratio:.2f}x ({full:.0f} vs {bare:.0f} ms, median of {ns.runs})", "< 1.5x", ratio < 1.5)

            # 2. opening each section of the lazy page (worst of the runs, each on a fresh page)
            opened: dict[str, list[float]] = {}
            _open_sections(browser, base + "/")  # warm-up: the sections' modules are imported once
            for _ in range(max(1, ns.runs // 2)):
                for key, value in _open_sections(browser, base + "/").items():
                    opened.setdefault(key, []).append(value)
            print(f"opening each section (s, {load()}): " + "  ".join(
                f"{key} {', '.join(f'{v:.2f}' for v in values)}" for key, values in opened.items()))
            for key, values in opened.items():
                worst = max(values)
                claim(f"opening the {key.replace('_', ' ')} section", f"{worst:.2f} s (worst of {len(values)})",
                      "< 1 s", worst < 1.0)

            # 3. switching the app with every section open
            switches = _switches(browser, base + "/", ns.switches)
            typical, worst = statistics.median(switches), max(switches)
            print(f"app switch until settled (s, {load()}): " + ", ".join(f"{v:.2f}" for v in switches))
            claim("app switch with every section open, until the page is settled",
                  f"{typical:.2f} s median, {worst:.2f} s worst of {len(switches)}", "< 2 s", worst < 2.0)

            # 4. server CPU while the progress plot streams to an open page, once the sessions of the pages
            # above are gone (Bokeh discards a closed page's session only after 15 s, checked every 17 s;
            # until then its callbacks run and would be counted here)
            if ns.stream_seconds > 0:
                idle = _quiet(server)
                print(f"server CPU with no page open: {100 * idle:.1f}% of one core")
                context = browser.new_context(viewport=VIEWPORT)
                page = context.new_page()
                page.goto(base + "/stream")
                shown = page.get_by_text(re.compile(r"partitions done")).first
                shown.wait_for(timeout=60_000)
                time.sleep(2)  # steady state
                cpu, seconds = _cpu_share(server, ns.stream_seconds)
                summary = shown.text_content() or ""
                context.close()
                print(f"server CPU while streaming {ns.workers} workers at 1 Hz for {seconds:.0f} s: "
                      f"{100 * cpu:.1f}% of one core (progress shown: {summary.strip() or 'n/a'}; {load()})")
                claim(f"server CPU, progress plot streaming {ns.workers} workers at 1 Hz",
                      f"{100 * cpu:.1f} % of one core", "< 10 %", cpu < 0.10)
            browser.close()
    print_claims()


if __name__ == "__main__":
    main()
