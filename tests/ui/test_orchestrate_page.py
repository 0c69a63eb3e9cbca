"""The seed's first pass through ORCHESTRATE, in a browser, on flight_telemetry with small args:
System settings (worker map) → INSTALL → CHECK DISTRIBUTE → RUN → LOAD DATA → Prepare Data (export.csv);
and an invalid worker map refused at the field.
"""
from __future__ import annotations

import json
import os
import re
import time

import pandas as pd
import pytest

from .conftest import APP, SMALL_ARGS, Served, assert_clean, open_page

pytestmark = [pytest.mark.ui, pytest.mark.integration, pytest.mark.timeout(900)]


def _button(page, name: str):  # noqa: ANN001, ANN202 - Playwright objects
    return page.get_by_role("button", name=name, exact=True)


def _open(page, title: str) -> None:  # noqa: ANN001
    """Open a section card by its title (lazily built sections appear when opened)."""
    page.get_by_role("button", name=re.compile(rf"^{re.escape(title)}(\s|$)")).first.click()


def test_invalid_worker_map_is_refused_at_the_field(page, served: Served, shot) -> None:  # noqa: ANN001
    before = served.settings_file.read_bytes()
    field = page.get_by_label("Worker map")
    field.fill('{"127.0.0.1": 0}')
    field.press("Enter")
    error = page.get_by_text(re.compile(r"must be a positive int"))
    error.first.wait_for()
    shot(page, "00-invalid-worker-map", error.first)
    assert served.settings_file.read_bytes() == before  # not saved: the last good value stays
    field.fill("not a dict")
    field.press("Enter")
    page.get_by_text(re.compile(r"Not saved")).first.wait_for()
    assert served.settings_file.read_bytes() == before
    assert not page.js_errors


def test_first_pass_workflow(page, served: Served, shot) -> None:  # noqa: ANN001
    shot(page, "01-page")
    page.get_by_role("button", name=re.compile(r"^Run run INSTALL first")).wait_for()  # the Run card says why it waits

    # 1. System settings: the worker map
    field = page.get_by_label("Worker map")
    field.fill('{"127.0.0.1": 2}')
    field.press("Enter")
    page.get_by_text("2 worker slots").first.wait_for()
    assert re.search(r'(?m)^"127\.0\.0\.1"\s*=\s*2\s*$', served.settings_file.read_text())
    shot(page, "02-settings-worker-map", field)

    # 2. INSTALL: logs stream while it runs, then Ready
    _button(page, "INSTALL").click()
    page.get_by_text("Installing the worker environment").first.wait_for()
    first_line = page.locator(".log .line").first
    first_line.wait_for(timeout=120_000)  # a log line while INSTALL is still running
    shot(page, "03-install-running", first_line)
    page.get_by_text("Ready.").first.wait_for(timeout=300_000)
    shot(page, "04-install-ready", page.get_by_text("Ready.").first)

    # 3. CHECK DISTRIBUTE: the distribution tree
    _open(page, "Distribute")
    _button(page, "CHECK DISTRIBUTE").click()
    tree = page.get_by_role("button", name="Distribution tree", exact=True)
    tree.wait_for()
    page.get_by_text("No distribution yet").first.wait_for(state="hidden", timeout=120_000)
    page.wait_for_timeout(1000)  # let the tree plot draw
    shot(page, "05-check-distribute", tree)
    plan = json.loads((served.dirs["AGILAB_HOME"] / "apps" / APP / "distribution_tree.json").read_text())
    assert len(plan["partitions"]) == 4 and plan["workers"] == {"127.0.0.1": 2}

    # 4. RUN (the Run section opened itself when INSTALL succeeded)
    run = _button(page, "RUN")
    run.scroll_into_view_if_needed()
    assert run.is_enabled()
    run.click()
    done = page.get_by_text(re.compile(r"RUN done in [\d.]+ s")).first
    done.wait_for(timeout=300_000)
    page.get_by_text(re.compile(r"4 / 4 partitions done")).first.wait_for()
    assert page.get_by_text("Work plan: using the saved work plan").count() >= 1
    shot(page, "06-run-done", done)
    shot(page, "06b-run-progress", page.get_by_text(re.compile(r"4 / 4 partitions done")).first)

    # 5. LOAD DATA: the rows of the output
    _open(page, "LOAD DATA")
    _button(page, "LOAD DATA").click()
    loaded = page.get_by_text(re.compile(r"4 rows × \d+ columns · .* loaded at")).first
    loaded.wait_for()
    preview = page.locator(".tabulator").filter(has=page.locator(".tabulator-col-title", has_text="mean_speed_kt"))
    rows = preview.locator(".tabulator-table .tabulator-row")
    rows.first.wait_for()
    assert preview.count() == 1 and rows.count() == 4
    shot(page, "07-load-data", loaded)

    # 6. Prepare Data: two chosen columns written to export.csv
    _open(page, "Prepare Data for Pipeline and Analysis")
    for column in ("aircraft", "mean_speed_kt"):
        page.get_by_role("checkbox", name=column, exact=True).check()
    write = page.get_by_role("button", name=re.compile(r"Write export\.csv \(2 columns\)"))
    write.click()
    wrote = page.get_by_text(re.compile(r"Wrote 2 columns to")).first
    wrote.wait_for()
    shot(page, "08-export", wrote)
    exported = pd.read_csv(served.export_csv)
    assert exported.columns.tolist() == ["aircraft", "mean_speed_kt"] and len(exported) == 4
    assert not page.js_errors, page.js_errors


def test_a_long_run_blocks_nothing_and_can_be_cancelled(browser, served: Served, shot) -> None:  # noqa: ANN001
    """Runs after the first pass (installed app): a RUN on big inputs, a second session, then Cancel."""
    import psutil
    import tomlkit

    doc = tomlkit.parse(served.settings_file.read_text())
    doc["args"]["rows_per_file"] = 3_000_000  # generating and aggregating this takes many seconds
    served.settings_file.write_text(tomlkit.dumps(doc))

    log_start = served.log_size()
    first = open_page(browser, served)
    _open(first, "Run")
    run = _button(first, "RUN")
    run.scroll_into_view_if_needed()
    run.click()
    cancel = _button(first, "Cancel").last
    from playwright.sync_api import expect

    expect(run).to_be_disabled(timeout=30_000)  # RUN is under way
    expect(cancel).to_be_enabled()

    # another session opens and renders while the RUN goes on
    other = open_page(browser, served)
    other.get_by_text("Calculated mode hint").first.wait_for(timeout=30_000)
    shot(other, "09-second-session-during-run")
    assert_clean(other)
    other.context.close()

    # the rest of the page stays usable: the server still checks a field and answers at once
    field = first.get_by_label("Worker map")
    field.fill('{"127.0.0.1": 0}')
    field.press("Enter")
    first.get_by_text(re.compile(r"must be a positive int")).first.wait_for(timeout=15_000)
    expect(run).to_be_disabled()  # and the RUN is still going

    server = psutil.Process(served.proc.pid)

    def jobs() -> list[psutil.Process]:  # processes forked from the warm runner: the RUN itself
        return [p for p in server.children(recursive=True)
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
                and p.parent() and "zygote" in " ".join(p.parent().cmdline())]

    deadline = time.monotonic() + 180  # preparing the big inputs comes first; a guard, not a timing
    while not jobs() and time.monotonic() < deadline:
        time.sleep(0.2)
    running = jobs()
    assert running, "the RUN never started its process"  # cancelling nothing would prove nothing
    cancel.click()
    first.get_by_text("RUN cancelled").first.wait_for(timeout=30_000)
    shot(first, "10-run-cancelled", first.get_by_text("RUN cancelled").first)
    gone, alive = psutil.wait_procs(running, timeout=30)  # a guard for a loaded machine, not a timing
    left = [(p.pid, p.status(), os.getpgid(p.pid), p.cmdline()) for p in alive]
    assert alive == [] and jobs() == [], left  # the run's own process was stopped; only the warm runner stays
    assert_clean(first)
    served.assert_log_clean(log_start)
    first.context.close()


SECTIONS = ("Distribute", "Run", "Notebook", "LOAD DATA", "Prepare Data for Pipeline and Analysis")


def _checklist(page) -> dict[str, bool]:  # noqa: ANN001
    """The sidebar's first-pass checklist as shown: label -> ticked."""
    done = {text.strip(" ✓○\n") for text in page.locator("li.done").all_inner_texts()}
    todo = {text.strip(" ✓○\n") for text in page.locator("li.todo").all_inner_texts()}
    return {**dict.fromkeys(todo, False), **dict.fromkeys(done, True)}


def _switch(page, app: str) -> None:  # noqa: ANN001
    """Choose ``app`` and wait until the last section (Prepare Data) is drawn again."""
    page.get_by_label("App").select_option(app)
    page.get_by_role("heading", name=app, exact=True).wait_for()
    page.get_by_role("button", name=re.compile(r"^Write export\.csv")).wait_for()


def _visible(page, text: str | re.Pattern) -> int:  # noqa: ANN001
    """How many elements showing ``text`` are visible now."""
    found = page.get_by_text(text)
    return sum(1 for i in range(found.count()) if found.nth(i).is_visible())


def _expect_app_a(page, shot, name: str) -> None:  # noqa: ANN001
    from playwright.sync_api import expect

    expect(page.get_by_text(re.compile(r"RUN done in [\d.]+ s")).first).to_be_visible(timeout=60_000)
    assert _checklist(page) == dict.fromkeys(["Settings loaded", "Installed", "Work plan checked", "Run done",
                                              "Output available"], True)
    assert _button(page, "RUN").is_enabled() and _visible(page, "Ready.") >= 1
    assert _visible(page, "No distribution yet") == 0 and _visible(page, "No output yet") == 0
    loaded = page.get_by_text(re.compile(r"4 rows × \d+ columns · .* loaded at")).first
    load = _button(page, "LOAD DATA").last  # the section's button (its card header bears the same name)
    spinning = page.locator(".pn-loading").filter(has=load)
    for attempt in range(3):  # a click that reaches the page while the switch still redraws it is lost: again
        load.click()
        try:
            expect(loaded).to_be_visible(timeout=30_000)
            break
        except AssertionError:
            if attempt == 2:
                raise
            expect(spinning).to_have_count(0, timeout=120_000)  # a load under way is waited for, never clicked
    shot(page, name)


def test_switching_apps_shows_each_apps_own_state(page, served: Served, shot) -> None:  # noqa: ANN001
    """Install and run app A (flight_telemetry), switch to B (mandelbrot, never installed), look at every
    section, switch back: each time the page shows the selected app's own state, as saved on disk."""
    import tomlkit
    from playwright.sync_api import expect

    doc = tomlkit.parse(served.settings_file.read_text())
    doc["args"].update(SMALL_ARGS)  # small again after the long run
    served.settings_file.write_text(tomlkit.dumps(doc))
    page.reload()
    page.get_by_text("System settings").first.wait_for()
    for title in SECTIONS:  # opened first: INSTALL would open Run by itself
        _open(page, title)
    _button(page, "INSTALL").click()  # nothing to do when the first pass installed it already
    page.get_by_text("The worker environment is installed on").first.wait_for(timeout=300_000)
    run = _button(page, "RUN")
    expect(run).to_be_enabled()
    run.click()
    page.get_by_text(re.compile(r"RUN done in [\d.]+ s")).first.wait_for(timeout=300_000)
    _expect_app_a(page, shot, "11-app-a")

    _switch(page, "mandelbrot")
    expect(page.get_by_text("No output yet").first).to_be_visible(timeout=60_000)  # the sections are B's now
    assert _checklist(page) == {"Settings loaded": True, "Installed": False, "Work plan checked": False,
                                "Run done": False, "Output available": False}
    assert _visible(page, re.compile(r"Run INSTALL first")) >= 2  # Install and Run both say so
    assert _button(page, "RUN").is_disabled()
    for text in ("No benchmark yet", "No distribution yet", "Nothing loaded yet", "No work plan yet",
                 "No install logs yet", "No run logs yet"):  # nothing of A's INSTALL and RUN either
        assert _visible(page, text) >= 1, text
    for text in ("RUN done in", "Ready.", "loaded at", "Work plan: RUN will use"):
        assert _visible(page, text) == 0, text
    assert page.get_by_role("button", name="mandelbrot args", exact=True).is_visible()
    shot(page, "12-app-b-not-installed")

    _switch(page, "flight_telemetry")
    _expect_app_a(page, shot, "13-app-a-again")
