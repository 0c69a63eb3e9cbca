"""LogView: source and level filters, the kept-lines cap, download, live flushing; ActionStatus."""
from __future__ import annotations

import asyncio
import threading

import param

from agilab_panel.events import EventBus, LogLine, StepEvent
from agilab_panel.ui.logs import ActionStatus, LogView

from .conftest import visible_text


def _emit_mixed(bus: EventBus) -> None:
    for i, level in enumerate(["DEBUG", "INFO", "WARNING", "ERROR"]):
        bus.log(f"install {level.lower()} {i}", level=level, source="install", host="127.0.0.1", step="venv")
    bus.log("run line", source="run")
    bus.emit(StepEvent(host="127.0.0.1", step="venv", state="done"))


def test_sources_and_levels() -> None:
    bus = EventBus()
    view = LogView(bus, sources=("install",), title="Install logs")
    _emit_mixed(bus)
    assert view.lines == []  # nothing shown before a flush
    assert view.flush() == 4  # the run line and the step event are not for this view
    assert [line.text for line in view.lines] == ["install debug 0", "install info 1", "install warning 2",
                                                  "install error 3"]
    assert [line.level for line in view.visible_lines] == ["INFO", "WARNING", "ERROR"]  # INFO by default
    view.level = "WARNING"
    assert [line.level for line in view.visible_lines] == ["WARNING", "ERROR"]
    assert "install warning 2" in visible_text(view) and "install info 1" not in visible_text(view)
    view.level = "DEBUG"
    view.search = "ERROR"
    assert [line.text for line in view.visible_lines] == ["install error 3"]
    assert "1 of 4 lines shown" in visible_text(view)
    assert "Install logs" in visible_text(view)


def test_all_sources_history_and_empty_state() -> None:
    bus = EventBus()
    bus.log("before the view existed", source="engine")
    view = LogView(bus, empty_text="Nothing yet.")
    view.flush()
    assert [line.text for line in view.lines] == ["before the view existed"]  # history is replayed
    view.clear()
    assert "Nothing yet." in visible_text(view)


def test_keeps_the_newest_lines_and_downloads_them() -> None:
    bus = EventBus()
    view = LogView(bus, max_lines=10)
    for i in range(25):
        bus.log(f"line {i}", level="DEBUG" if i % 2 else "INFO")
        if i % 7 == 0:
            view.flush()
    view.flush()
    assert [line.text for line in view.lines] == [f"line {i}" for i in range(15, 25)]
    text = view.download_text()  # every kept line, whatever the filter shows
    assert "line 16" in text and "line 14" not in text and text.count("\n") == 10
    assert view._download.filename == "logs.log"
    assert "line 15" not in view.text and "line 16" in view.text  # DEBUG lines hidden from the view


def test_appends_chunks_then_merges() -> None:
    bus = EventBus()
    view = LogView(bus)
    for i in range(60):
        bus.log(f"line {i}")
        view.flush()
    assert len(view._box.objects) <= 41  # appended in small chunks, merged before they pile up
    assert "line 59" in "".join(chunk.object for chunk in view._box.objects)
    view.follow = False
    assert view._box.auto_scroll_limit == 0
    view.follow = True
    assert view._box.auto_scroll_limit > 0


async def test_lines_stream_live_from_another_thread() -> None:
    bus = EventBus()
    view = LogView(bus, sources=("install",), period=50)
    view.start()  # periodic flush on the running loop, as on a server session
    try:
        worker = threading.Thread(target=lambda: [bus.log(f"step {i}", source="install") for i in range(5)])
        worker.start()
        worker.join()
        for _ in range(40):
            if len(view.lines) == 5:
                break
            await asyncio.sleep(0.05)
        assert [line.text for line in view.lines] == [f"step {i}" for i in range(5)]  # no flush() called by hand
    finally:
        view.close()
    bus.log("after close", source="install")
    await asyncio.sleep(0.12)
    assert len(view.lines) == 5


class _State(param.Parameterized):
    busy = param.String("")
    error = param.String("")
    error_details = param.String("")


def test_action_status_shows_error_and_details() -> None:
    state = _State()
    status = ActionStatus(state, "INSTALL")
    assert status._layout.objects == [] and not status._layout.visible  # nothing sent before the first run
    state.busy = "INSTALL"
    assert status.running and "INSTALL is running" in visible_text(status)
    state.param.update(error="INSTALL failed: host 10.0.0.9: step 'venv' failed: no space left",
                       error_details="Traceback (most recent call last):\n  ...")
    state.busy = ""
    text = visible_text(status)
    assert "step 'venv' failed" in text and "Details" in text
    assert "Traceback" not in text  # the details stay collapsed until asked for
    state.busy = "RUN"  # another action leaves this status alone
    assert status.error
    state.busy = ""
    state.busy = "INSTALL"
    assert not status.error  # a new run clears the old outcome
    state.error = ""
    state.busy = ""
    assert not status._layout.visible and not visible_text(status).strip()  # a success shows nothing


class _AppState(_State):
    env = param.Parameter(default=None)


def test_action_status_forgets_the_error_of_the_previous_app() -> None:
    state = _AppState()
    status = ActionStatus(state, "RUN")
    state.busy = "RUN"
    state.error = "RUN failed: the output folder is read-only"
    state.busy = ""
    assert "read-only" in visible_text(status)
    state.env = object()  # another app loaded: the section showing this status stays on the page
    assert not status.error and "read-only" not in visible_text(status)


def test_a_hundred_thousand_lines_keep_a_bounded_page_and_name_the_full_log(tmp_path) -> None:
    bus = EventBus(history=10)
    view = LogView(bus, title="Run logs", max_lines=5000, archive_dir=tmp_path / "page")
    assert not view._dropped_note.visible
    for batch in range(100):
        for i in range(1000):
            bus.log(f"line {batch * 1000 + i}", level="DEBUG" if i % 10 == 0 else "INFO")
        view.flush()
        if batch == 3:
            assert view.dropped == 0 and not view._dropped_note.visible and len(view.lines) == 4000
        shown_in_page = sum(chunk.object.count('<div class="line') for chunk in view._box.objects)
        assert shown_in_page <= 2 * view.max_lines  # what the browser holds stays bounded
    assert [line.text for line in view.lines[:1] + view.lines[-1:]] == ["line 95000", "line 99999"]
    assert view.dropped == 95_000
    assert len(view._box.objects) <= 41
    assert "line 99999" in view._box.objects[-1].object  # the newest line is in the page
    note = view._dropped_note.object
    assert view._dropped_note.visible and "keeps the last 5,000 of 100,000 lines" in note
    assert str(view.archive) in note and view.archive.parent == tmp_path / "page"
    archived = view.archive.read_text().splitlines()  # every line, dropped or not, filtered or not
    assert len(archived) == 100_000 and archived[0].endswith("line 0") and archived[-1].endswith("line 99999")
    assert "4,500 of 5,000 lines shown" in visible_text(view)  # DEBUG lines hidden by the INFO level
    view.clear()
    assert view.dropped == 0 and not view._dropped_note.visible and len(view.archive.read_text().splitlines()) == 100_000


def test_a_long_stream_reuses_the_same_panes_so_the_browser_memory_stays_bounded() -> None:
    # A pane taken out of a served page leaves its DOM held by the browser: the view keeps a fixed pool
    # of panes, those out of use hidden and empty, instead of a new pane per flush.
    bus = EventBus(history=10)
    view = LogView(bus, max_lines=500)
    panes: set[int] = set()
    for batch in range(300):
        for i in range(50):
            bus.log(f"line {batch * 50 + i}")
        view.flush()
        panes |= {id(pane) for pane in view._box.objects}
        shown = [pane for pane in view._box.objects if pane.visible]
        assert all(not pane.object for pane in view._box.objects if not pane.visible)
        assert sum(pane.object.count('<div class="line') for pane in shown) == 500 or batch < 9
    assert len(panes) <= 41  # 300 flushes, the same few panes
    assert "line 14999" in view._box.objects[-1].object and view._box.objects[-1].visible
    view.search = "line 1499"  # a filter re-renders into one of the same panes
    assert {id(pane) for pane in view._box.objects} <= panes
    assert [pane for pane in view._box.objects if pane.visible][0].object.count('<div class="line') == 10


def test_a_fast_stream_shows_its_tail_at_most_once_a_second_then_the_whole_buffer() -> None:
    # The periodic tick shows a burst of more than 1,000 waiting lines at most once a second, and only
    # its last 1,000 lines, so the browser never lays out a whole buffer five times a second; once no
    # new line arrives the page shows the whole buffer; a few lines show at the next tick.
    bus = EventBus(history=10)
    view = LogView(bus, max_lines=5000)
    now = [100.0]
    view._now = lambda: now[0]

    def page_text() -> str:
        return "".join(pane.object for pane in view._box.objects)

    def burst(start: int, count: int) -> None:
        for i in range(start, start + count):
            bus.log(f"line {i}")

    burst(0, 3000)
    assert view.tick() == 3000 and ">line 2999<" in page_text() and ">line 1999<" not in page_text()
    burst(3000, 3000)
    now[0] += 0.2
    assert view.tick() == 3000 and ">line 5999<" not in page_text()  # kept, not shown yet
    assert view.lines[-1].text == "line 5999"
    now[0] += 0.8
    burst(6000, 3000)
    assert view.tick() == 3000  # a second after the previous burst: its tail
    assert ">line 8999<" in page_text() and ">line 7999<" not in page_text()
    now[0] += 0.2
    assert view.tick() == 0  # the stream calmed: the whole buffer, each line once
    assert page_text().count('<div class="line') == 5000 and ">line 4000<" in page_text()
    assert page_text().count(">line 8999<") == 1 and "5,000 lines" in view._count.object
    burst(9000, 5)
    now[0] += 0.2
    view.tick()
    assert ">line 9004<" in page_text()  # a few lines show at once
    burst(9005, 3000)
    assert view.flush() == 3000 and ">line 12004<" in page_text()  # flush() shows every kept line at once
    assert ">line 9005<" in page_text()


def test_without_an_archive_the_note_points_to_the_download() -> None:
    bus = EventBus()
    view = LogView(bus, max_lines=10)
    for i in range(12):
        view.push(LogLine(text=f"line {i}"))
    view.flush()
    assert view.dropped == 2 and "keeps the last 10 of 12 lines; Download saves the lines kept" in visible_text(view)
    assert view.archive is None


def test_an_empty_log_sends_its_sentence_only_until_the_first_line() -> None:
    bus = EventBus()
    view = LogView(bus, title="Run logs", empty_text="No run logs yet.")
    assert view._lines_view.objects == [] and not view._lines_view.visible  # no toolbar, no box in the page
    assert "No run logs yet." in visible_text(view) and "Follow the tail" not in repr(view._layout)
    bus.log("first line", source="run")
    view.flush()
    assert view._lines_view.visible and view._toolbar in view._lines_view and view._box in view._lines_view
    assert "first line" in visible_text(view) and "No run logs yet." not in visible_text(view)
    view.clear()
    assert not view._lines_view.visible and "No run logs yet." in visible_text(view)
