"""How the page's costs grow with the work, measured in headless Chromium on a served ORCHESTRATE page.

1. Plan axis: minimal_app with a saved plan of 100 (the baseline) → 1,000 → 10,000 partitions (weights 1
   to 7, 2 worker slots). On a fresh page, opening the Distribute section (from the click on its header
   to the distribution tree and the Workplan table on screen, the page quiet), then CHECK DISTRIBUTE
   (the engine rebuilds the plan, of even weights this time, from the saved args: from the click to the
   new plan in the tree, the load chart and the table). Goals: opening and re-distributing 1,000 and
   10,000 partitions each < 2 s and within 3x of 100.
2. Log axis: the Run logs of an open Run section after 1,000 (the baseline) → 10,000 → 100,000 lines
   streamed from another thread (as a run's lines arrive, in bursts of 1,000). Then, every 3 s, 100 new
   lines: from their emission (the server's clock, in the lines) to the last one on screen (the view
   shows new lines every 0.2 s). Chromium's JS heap (after a garbage collection) and DOM nodes after
   that. Goals: new lines shown in < 1 s and within 2x of 1,000 at 100,000; the heap at 100,000 lines
   within 1.25x of 10,000 (both beyond the 5,000 lines the view keeps: a bounded buffer).

"On screen" is the moment the page was last busy (a server message arrived or a Bokeh view was still
rendering at an animation frame) before it stayed quiet for 0.7 s: the quiet wait is not counted. The page
is watched with a plain walk of its text a few times a second (benchmarks/_page.py), not with Playwright's
locators, which take the page's main thread at every animation frame.
Sizes are interleaved (each run measures every size in turn), so load on a shared machine hits all alike.

    python benchmarks/page_scale.py [--runs 3] [--updates 5] [--axes plan,log]
    ./dev bench page_scale [same options]

Ends with one ``claim:`` line per goal (benchmarks/table.py builds the README table from them).
"""
from __future__ import annotations

import argparse
import itertools
import re
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import claim, load, print_claims  # noqa: E402
from _page import (click_ms, fresh_page, heap_and_nodes, launch, page_epoch_ms, section_header,  # noqa: E402
                   served, settled_ms, wait_text)

APP = "minimal_app"
SIZE = 10  # the app's "size" arg: a re-distributed partition weighs this much
SLOTS = 2  # minimal_app's worker map: 127.0.0.1 with 2 slots
PLANS = (100, 1_000, 10_000)
LOGS = (1_000, 10_000, 100_000)
BURST = 1_000  # lines per burst while streaming
NEW_LINES = 100  # lines per measured update
TICK = 3.0  # seconds between two bursts of new lines (room for the page to settle in between)


def _size() -> int:
    import panel as pn

    return int((pn.state.session_args or {}).get("n", [b"100"])[0])


# -- server side --------------------------------------------------------------------------------------
def plan_page():  # noqa: ANN201 - a Panel template
    """The lazy page of minimal_app with a saved plan of ``?n=`` partitions of uneven weights."""
    from agilab_panel.plan import Partition, build_plan
    from agilab_panel.ui.serve import session_page

    n = _size()
    page = session_page(app=APP)
    state = page.state
    state.settings.save_args({"partitions": n, "size": SIZE})
    parts = [Partition(f"range-{i:04d}", float(1 + i % 7), {"start": i * SIZE, "stop": (i + 1) * SIZE})
             for i in range(n)]
    state.plan = build_plan(APP, parts, dict(state.settings.cluster.workers), state.settings.args_dict)
    state.save_plan()
    return page.template


def log_page():  # noqa: ANN201 - a Panel template
    """The page with its Run section open; once loaded, ``?n=`` log lines stream in from another thread,
    then every few seconds a burst of 100 ("tick K sent <epoch ms> line 00" to "... line 99")."""
    import panel as pn

    from agilab_panel.ui.serve import session_page

    n = _size()
    page = session_page(app=APP)
    page.slots["run"].expand()
    stop = threading.Event()

    def lines(texts) -> None:  # noqa: ANN001 - emitted as a run's lines are: from another thread
        bus = page.state.bus
        for text in texts:
            bus.log(text, source="run")

    def stream() -> None:
        for start in range(0, n, BURST):
            lines(f"bulk line {i:06d}" for i in range(start, min(n, start + BURST)))
            time.sleep(0.01)
        for k in itertools.count():
            if stop.wait(TICK):
                return
            sent = round(time.time() * 1000)
            lines(f"tick {k} sent {sent} line {j:02d}" for j in range(NEW_LINES))

    pn.state.onload(lambda: threading.Thread(target=stream, daemon=True).start())
    pn.state.on_session_destroyed(lambda _context: stop.set())
    return page.template


def run_server(port: int) -> None:
    from agilab_panel.ui.serve import serve

    serve(port=port, routes={"plan": plan_page, "log": log_page})


# -- driver -------------------------------------------------------------------------------------------
def plan_once(browser, base: str, n: int) -> tuple[float, float]:  # noqa: ANN001
    """Seconds to open the Distribute section with a plan of ``n`` partitions, and to re-distribute it."""
    from agilab_panel.ui.plan_graph import compact_number

    page = fresh_page(browser, f"{base}/plan?n={n}", timeout=180_000)
    settled_ms(page)
    header = section_header(page, "Distribute")
    header.scroll_into_view_if_needed()
    clicked = click_ms(page, header)
    wait_text(page, "range-0000")  # the Workplan's first row
    wait_text(page, "Heaviest slot")  # beside the load chart
    opened = settled_ms(page) - clicked
    check = page.get_by_role("button", name="CHECK DISTRIBUTE")
    check.scroll_into_view_if_needed()
    clicked = click_ms(page, check)
    wait_text(page, f"carries a weight of {compact_number(SIZE * n / SLOTS)} (")  # even weights
    updated = settled_ms(page) - clicked
    page.context.close()
    return opened / 1000, updated / 1000


def log_once(browser, base: str, n: int, updates: int) -> tuple[list[float], float, int, str]:  # noqa: ANN001
    """Seconds from the emission of each of ``updates`` bursts of new lines to the last one on screen,
    after ``n`` lines streamed; then the page's JS heap (MB) and DOM nodes, and the view's own count of
    the lines it keeps."""
    page = fresh_page(browser, f"{base}/log?n={n}", timeout=180_000)
    wait_text(page, f"bulk line {n - 1:06d}")
    seconds = []
    for k in range(1, updates + 1):  # the first burst may meet the bulk still rendering: not timed
        last = wait_text(page, pattern=rf"^tick {k} sent \d+ line {NEW_LINES - 1:02d}$")
        shown = page_epoch_ms(page, settled_ms(page))
        sent = int(re.search(r"sent (\d+)", last)[1])
        seconds.append((shown - sent) / 1000)
    heap, nodes = heap_and_nodes(page)
    counts = page.get_by_text(re.compile(r"^[\d,]+ lines$")).all_text_contents()  # each log view's own count
    kept = max(counts, key=lambda text: int(re.sub(r"\D", "", text)), default="")
    page.context.close()
    return seconds, heap, nodes, kept.strip()


def plan_axis(browser, base: str, runs: int) -> dict[int, dict[str, float]]:  # noqa: ANN001
    plan_once(browser, base, PLANS[0])  # untimed: the section's modules are imported once
    times: dict[int, dict[str, list[float]]] = {n: {"open": [], "update": []} for n in PLANS}
    for _ in range(runs):
        for n in PLANS:
            opened, updated = plan_once(browser, base, n)
            times[n]["open"].append(opened)
            times[n]["update"].append(updated)
    print(f"\nplan axis ({APP}, {SLOTS} worker slots; seconds, median of {runs}; {load()})")
    print(f"{'partitions':>10} {'open':>7} {'per 1k':>7} {'update':>7} {'per 1k':>7}   runs (open / update)")
    table = {}
    for n, row in times.items():
        table[n] = {key: statistics.median(values) for key, values in row.items()}
        print(f"{n:>10,} {table[n]['open']:7.2f} {table[n]['open'] / n * 1000:7.3f} {table[n]['update']:7.2f} "
              f"{table[n]['update'] / n * 1000:7.3f}   " + ", ".join(f"{a:.2f}/{b:.2f}" for a, b in zip(
                  row["open"], row["update"])))
    return table


def log_axis(browser, base: str, runs: int, updates: int) -> dict[int, dict[str, float]]:  # noqa: ANN001
    log_once(browser, base, LOGS[0], 0)  # untimed: the Run section's modules are imported once
    times: dict[int, list[float]] = {n: [] for n in LOGS}
    memory: dict[int, list[tuple[float, int]]] = {n: [] for n in LOGS}
    kept: dict[int, str] = {}
    for _ in range(runs):
        for n in LOGS:
            seconds, heap, nodes, kept[n] = log_once(browser, base, n, updates)
            times[n] += seconds
            memory[n].append((heap, nodes))
    print(f"\nlog axis (Run logs; {NEW_LINES} new lines after N streamed; seconds, median of {runs} x {updates}; "
          f"{load()})")
    print(f"{'lines':>8} {'update':>7} {'worst':>7} {'heap MB':>8} {'nodes':>7}   kept")
    table = {}
    for n in LOGS:
        heap = statistics.median(h for h, _ in memory[n])
        nodes = int(statistics.median(c for _, c in memory[n]))
        table[n] = {"update": statistics.median(times[n]), "worst": max(times[n]), "heap": heap, "nodes": nodes}
        print(f"{n:>8,} {table[n]['update']:7.2f} {table[n]['worst']:7.2f} {heap:8.1f} {nodes:7,}   {kept[n]}")
    table[max(LOGS)]["kept"] = kept[max(LOGS)]
    return table


def claims(plans: dict[int, dict[str, float]], logs: dict[int, dict[str, float]]) -> None:
    if plans:
        small = PLANS[0]
        for n in PLANS[1:]:
            for key, what in (("open", "opening the Distribute section (tree and Workplan shown)"),
                              ("update", "CHECK DISTRIBUTE until the new plan is shown")):
                value, base = plans[n][key], plans[small][key]
                ratio = value / base
                claim(f"{what}, plan of {n:,} partitions vs {small}",
                      f"{value:.2f} s vs {base:.2f} s, x{ratio:.2f} ({load()})", "< 2 s and <= 3x",
                      value < 2 and ratio <= 3)
    if logs:
        few, some, many = LOGS
        value, base = logs[many]["update"], logs[few]["update"]
        ratio = value / base
        claim(f"Run logs showing {NEW_LINES} new lines after {many:,} streamed vs {few:,}",
              f"{value:.2f} s vs {base:.2f} s, x{ratio:.2f} (worst {logs[many]['worst']:.2f} s; {load()})",
              "< 1 s and <= 2x", value < 1 and ratio <= 2)
        heap, before = logs[many]["heap"], logs[some]["heap"]
        claim(f"page JS heap after {many:,} log lines vs {some:,}",
              f"{heap:.1f} MB vs {before:.1f} MB, x{heap / before:.2f} ({logs[many]['kept']})", "<= 1.25x",
              heap / before <= 1.25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="measured pages per size (after one untimed)")
    parser.add_argument("--updates", type=int, default=5, help="measured bursts of new log lines per page")
    parser.add_argument("--axes", default="plan,log", help="which tables to measure")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # internal: run the server on this port
    ns = parser.parse_args()
    if ns.serve:
        run_server(ns.serve)
        return

    from playwright.sync_api import sync_playwright

    axes = {a.strip() for a in ns.axes.split(",")}
    with served(__file__, ready="/") as (base, _proc), sync_playwright() as pw:
        browser = launch(pw)
        print(f"page scale benchmark ({load()})")
        plans = plan_axis(browser, base, ns.runs) if "plan" in axes else {}
        logs = log_axis(browser, base, ns.runs, ns.updates) if "log" in axes else {}
        browser.close()
    claims(plans, logs)
    print_claims()


if __name__ == "__main__":
    main()
