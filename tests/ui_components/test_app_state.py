"""Every section shows the selected app's own state, read from disk: after switching apps (in a page
rendered as the server renders it), in a fresh session, and after another session saved something;
closed sections stop following the state."""
from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from bokeh.document import Document
from panel.io.state import set_curdoc

from agilab_panel.agi import AGI
from agilab_panel.ui import page as page_module
from agilab_panel.ui.file_versions import version
from agilab_panel.ui.page import SECTIONS, OrchestratePage
from agilab_panel.ui.state import OrchestrateState

from .conftest import visible_text

MODES = AGI.POOL_MODE | AGI.DASK_MODE
OPENED = ("distribute", "run", "notebook", "load_data", "prepare_data")


@contextmanager
def served(page: OrchestratePage) -> Iterator[Document]:
    """The page rendered in its template into a document, as a server session renders it (design applied)."""
    doc = Document()
    page.template.server_doc(doc)
    with set_curdoc(doc):
        yield doc


def ticks(page: OrchestratePage) -> dict[str, bool]:
    """The sidebar's first-pass checklist: label -> ticked."""
    items = re.findall(r'<li class="(done|todo)"><span class="mark">.</span>(.*?)</li>', page._checklist.object)
    return {label: kind == "done" for kind, label in items}


def watcher_count(obj: object) -> int:
    return sum(len(ws) for what in obj.param.watchers.values() for ws in what.values())  # type: ignore[attr-defined]


def _open(page: OrchestratePage) -> None:
    for key in OPENED:
        page.slots[key].placeholder.collapsed = False  # what a click on the card does


def _assert_shows_minimal_app(page: OrchestratePage) -> None:
    state = page.state
    assert state.installed and state.plan is not None and state.run_result is not None
    assert ticks(page) == dict.fromkeys(["Settings loaded", "Installed", "Work plan checked", "Run done",
                                         "Output available"], True)
    run = page.slots["run"].section
    assert not run.run_button.disabled and not run._gate.visible
    assert run._result.visible and re.search(r"RUN done in [\d.]+ s\*\* .* finished \d\d:\d\d:\d\d", run._result.object)
    assert "From `" in visible_text(run._bench_card) and run._bench_table is not None
    distribute = page.slots["distribute"].section
    assert distribute._tree_box.visible and not distribute.plan_note.visible
    assert page.slots["prepare_data"].section.columns  # the columns of minimal_app's output
    assert "Ready." in page.slots["install"].section.status_text


async def test_switching_apps_shows_each_apps_own_state_from_disk(installed, use_home) -> None:  # noqa: ANN001
    use_home(installed("minimal_app", modes_enabled=MODES))
    state = OrchestrateState("minimal_app")
    state.benchmark_all = True  # mode 0 only: benchmark.json, last_run.json, a plan and an output on disk
    await state.run()
    assert state.error == "" and state.run_result is not None
    page = OrchestratePage(state)
    with served(page):
        _open(page)
        await page.section("load_data").load()
        _assert_shows_minimal_app(page)
        distribute = page.slots["distribute"].section
        page.slots["run"].section.logs.flush()
        page.slots["run"].section.progress.flush()
        assert page.slots["run"].section.logs.lines and page.slots["run"].section.progress.done == 4  # the RUN's
        watchers = watcher_count(state)

        page.app_select.value = "mandelbrot"  # never installed in this home, never run
        assert state.env.app == "mandelbrot" and not state.installed and state.plan is None
        assert state.run_result is None and state.benchmark_result is None and state.install_result is None
        assert ticks(page) == {"Settings loaded": True, "Installed": False, "Work plan checked": False,
                               "Run done": False, "Output available": False}
        assert all(page.slots[key].built for key in ("settings", "install", *OPENED))  # open sections reopened
        assert page.slots["distribute"].section is distribute  # it follows the new app in place
        install = page.slots["install"].section
        assert "Run INSTALL first" in install.status_text
        install.logs.flush()
        assert install.logs.lines == []  # nothing that happened to minimal_app
        assert set(install.hosts.frame["status"]) == {"pending"}
        run = page.slots["run"].section
        run.logs.flush()
        run.progress.flush()
        assert run.logs.lines == [] and run.progress.done == 0  # minimal_app's RUN is not shown for mandelbrot
        assert run.run_button.disabled and run._gate.visible and "Run INSTALL first" in run._gate.object
        assert not run._result.visible and "No benchmark yet" in visible_text(run._bench_card)
        assert "none saved yet" in run._plan_hint.object
        dist = page.slots["distribute"].section
        assert dist.args._layout.title.startswith("mandelbrot") and not dist.plan_note.visible
        assert dist._tree_empty.visible and not dist._tree_box.visible and dist.workplan._empty.visible
        assert page.slots["load_data"].section.frame is None
        prepare = page.slots["prepare_data"].section
        assert prepare.columns == [] and "No output yet" in prepare._empty.object
        assert page.slots["notebook"].section.download.filename == "mandelbrot_orchestrate.ipynb"
        main = visible_text(page.main)
        assert "RUN done" not in main and "Ready." not in main and "rows ×" not in main
        assert watcher_count(state) == watchers  # the closed sections' watchers went with them

        page.app_select.value = "minimal_app"  # back: everything read again from disk
        _assert_shows_minimal_app(page)
        assert state.run_result is not None and state.run_result.finished > 0
        assert watcher_count(state) == watchers

    fresh = OrchestratePage(OrchestrateState("minimal_app"))  # another session, opened later
    assert ticks(fresh)["Run done"] and ticks(fresh)["Output available"]
    assert "RUN done in" in fresh.section("run")._result.object
    assert fresh.slots["load_data"].header.object.count("output available") == 1


async def test_a_drawn_tree_hides_and_shows_again_in_a_served_page(minimal_state: OrchestrateState) -> None:
    page = OrchestratePage(minimal_state)
    with served(page):
        page.slots["distribute"].placeholder.collapsed = False
        await minimal_state.check_distribute()
        section = page.slots["distribute"].section
        built = minimal_state.plan
        assert built is not None and section._tree_box.visible
        minimal_state.plan = None  # the plan file went away: no tree (Bokeh refused this once it was drawn)
        assert not section._tree_box.visible and section._tree_empty.visible
        minimal_state.plan = built
        assert section._tree_box.visible and section.tree.object is not None


@pytest.mark.parametrize("spec", [s for s in SECTIONS if page_module._section_class(s) is not None], ids=lambda s: s.key)
def test_a_closed_section_leaves_no_watcher_behind(spec, minimal_state: OrchestrateState) -> None:  # noqa: ANN001
    state = minimal_state
    followed = [state, state.settings.cluster, state.settings.args, state.settings.service_health]
    before = [watcher_count(obj) for obj in followed]
    section = page_module._section_class(spec)(state)
    section.__panel__()
    section.close()
    assert [watcher_count(obj) for obj in followed] == before


def test_two_sessions_take_in_each_others_saved_changes() -> None:
    first, second = OrchestrateState("minimal_app"), OrchestrateState("minimal_app")
    page_1, page_2 = OrchestratePage(first), OrchestratePage(second)
    args_1, args_2 = page_1.section("distribute").args, page_2.section("distribute").args
    path = first.env.settings_path

    args_1.widgets["partitions"].value = 6  # session 1 saves partitions
    args_1._save()
    args_2.widgets["size"].value = 500  # session 2, still showing partitions = 4, edits size only
    args_2._save()
    saved = tomllib.loads(path.read_text())["args"]
    assert saved == {"partitions": 6, "size": 500}  # session 1's newer partitions was not overwritten
    assert second.settings.args.partitions == 6 and args_2.draft.partitions == 6  # and session 2 took it in

    assert first.settings.args.size == 20_000
    page_1.slots["run"].placeholder.collapsed = False  # opening a section reads what changed
    assert first.settings.args.size == 500 and args_1.draft.size == 500 and not args_1.dirty

    # the worker map saved by session 2's System settings reaches session 1; re-reading writes nothing
    page_2.slots["settings"].section.widgets["workers"].value = '{"127.0.0.1": 3}'
    stamp, data = version(path), path.read_bytes()
    assert first.refresh_from_disk() == ["settings"] and first.settings.cluster.workers == {"127.0.0.1": 3}
    assert version(path) == stamp and path.read_bytes() == data
    assert first.refresh_from_disk() == []

    # a value set here and not saved (a script, no System settings section) stays when another session
    # saves something else
    third = OrchestrateState("minimal_app")
    third.settings.cluster.pool = True
    second.settings.cluster.verbose = 2  # saved at once by session 2's System settings
    assert third.refresh_from_disk() == ["settings"]
    assert third.settings.cluster.pool and third.settings.cluster.verbose == 2
    assert tomllib.loads(path.read_text())["cluster"]["pool"] is False
