"""Live logs and action outcomes: the feedback pieces every section reuses.

:class:`EventFeed` queues events from an :class:`~agilab_panel.events.EventBus` (listeners run in the
emitting thread) and hands them over in batches from a periodic callback on the session's event loop,
so widgets are only touched where Bokeh allows it and the browser gets a few small updates per second
however fast lines arrive. :class:`LogView` shows :class:`~agilab_panel.events.LogLine` events live,
with a level filter, a text filter, "follow the tail" and a download. :class:`ActionStatus` shows a
state action while it runs and, when it fails, a readable error with the details on demand.
"""
from __future__ import annotations

import functools
import html
import io
import itertools
import math
import os
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import panel as pn
import param

from ..events import Event, EventBus, LogLine
from .deferred import made, show_when
from .offline import icon

__all__ = ["LEVELS", "EventFeed", "LogView", "log_archive_dir", "ActionStatus", "Watchers", "details_card"]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
_RANK = {name: i for i, name in enumerate(LEVELS)}
_MAX_CHUNKS = 40  # appended HTML blocks before they are merged into one
# A fast stream (more than this many lines waiting) is shown at most once a second, its last lines only;
# the whole buffer once it calms down: the browser would otherwise lay out up to a whole buffer of lines
# five times a second, and fall further and further behind.
_BURST_LINES = 1_000
_BURST_GAP = 1.0  # seconds

_LOG_CSS = """
:host { width: 100%; }
.log { font-family: var(--font-monospace, ui-monospace, SFMono-Regular, Menlo, Consolas, monospace);
       font-size: 12px; line-height: 1.45; margin: 0; white-space: pre-wrap; word-break: break-word; }
.line { padding: 0 8px; }
.t { color: #8a8f98; }
.h { color: #5c7cbd; }
.lv { display: inline-block; min-width: 4.2em; font-weight: 600; }
.DEBUG .lv, .DEBUG { color: #8a8f98; }
.INFO .lv { color: #2e7d32; }
.WARNING { background: rgba(255, 193, 7, 0.10); }
.WARNING .lv { color: #b26a00; }
.ERROR { background: rgba(220, 53, 69, 0.10); }
.ERROR .lv { color: #c62828; }
.stderr .x { color: #7a4b00; }
"""
_BOX_STYLES = {
    "border": "1px solid var(--neutral-stroke-rest, #d0d7de)",
    "border-radius": "6px",
    "background": "var(--neutral-fill-rest, #fbfbfc)",
}
_MUTED = {"color": "var(--neutral-foreground-hint, #6b6b6b)"}


class Watchers:
    """Param watchers a component sets on objects it does not own (the state, a settings model), so
    it can drop them all at once when it is rebuilt or closed."""

    def __init__(self) -> None:
        self._items: list[tuple[Any, Any]] = []

    def watch(self, owner: Any, fn: Callable[..., Any], names: str | list[str]) -> None:
        self._items.append((owner, owner.param.watch(fn, names)))

    def follow(self, owner: Any, names: list[str], update: Callable[[], Any]) -> None:
        """Call ``update`` now and whenever ``names`` of ``owner`` change (what ``pn.bind`` does, but
        removable: a bound widget would keep the owner calling into a closed view)."""
        self.watch(owner, lambda *_: update(), names)
        update()

    def link(self, model: Any, name: str, widget: Any) -> Any:
        """Keep ``widget.value`` and ``model.<name>`` equal both ways (what ``Widget.from_param`` does, but
        removable); a value the model refuses raises as with ``from_param``. Returns the widget."""
        widget.value = getattr(model, name)
        self.watch(model, lambda event: setattr(widget, "value", event.new), [name])
        widget.param.watch(lambda event: setattr(model, name, event.new), "value")  # the widget goes with the view
        return widget

    def clear(self) -> None:
        for owner, watcher in self._items:
            owner.param.unwatch(watcher)
        self._items.clear()


def cancel_button(state: Any, action: str, watchers: Watchers) -> pn.widgets.Button:
    """Cancel, enabled while ``action`` runs, wired to ``state.cancel()`` (following the state through ``watchers``)."""
    button = pn.widgets.Button(label="Cancel", color="light", icon=icon("square"), width=110)
    watchers.follow(state, ["busy"], lambda: setattr(button, "disabled", state.busy != action))
    button.on_click(lambda _event: state.cancel())
    return button


class EventFeed:
    """Queue the events ``accept`` lets through and pass them to ``on_batch`` every ``period`` ms.

    The bus listener only appends to a queue (any thread); :meth:`flush` hands the queue over in one
    batch. :meth:`start` schedules the flush (or the given ``tick``) as a background periodic callback
    of the current session, or of the running asyncio loop in a notebook; without either, call
    :meth:`flush` yourself. ``replay`` queues the bus history first: all of it, or only from the
    latest event ``replay`` returns True for (e.g. the start of the latest run).
    """

    def __init__(self, bus: EventBus, accept: Callable[[Event], bool], on_batch: Callable[[list[Event]], None],
                 *, period: int = 200, replay: bool | Callable[[Event], bool] = True) -> None:
        self.bus, self.accept, self.on_batch, self.period = bus, accept, on_batch, period
        self._lock = threading.Lock()
        self._queue: deque[Event] = deque()
        self._callback: Any = None
        if replay:
            history = list(bus.history)
            if callable(replay):
                starts = [i for i, event in enumerate(history) if replay(event)]
                history = history[starts[-1]:] if starts else history
            for event in history:
                self.push(event)
        self._remove: Callable[[], None] | None = bus.add_listener(self.push)

    def push(self, event: Event) -> None:
        """Queue one event (what the bus listener does, from any thread)."""
        if self.accept(event):
            with self._lock:
                self._queue.append(event)

    def drain(self) -> list[Event]:
        """Take every queued event."""
        with self._lock:
            batch = list(self._queue)
            self._queue.clear()
        return batch

    def flush(self) -> int:
        """Hand the queued events to ``on_batch``; returns how many there were."""
        batch = self.drain()
        if batch:
            self.on_batch(batch)
        return len(batch)

    def start(self, tick: Callable[[], Any] | None = None) -> None:
        if self._callback is None:
            from panel.io.callbacks import PeriodicCallback

            # background: a flush with nothing to show must not flash the page's busy indicator
            self._callback = PeriodicCallback(callback=tick or self.flush, period=self.period, background=True)
            self._callback.start()
            if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
                pn.state.on_session_destroyed(lambda _ctx: self.close())

    def close(self) -> None:
        """Stop the periodic flush and stop listening to the bus."""
        if self._callback is not None:
            self._callback.stop()
            self._callback = None
        if self._remove is not None:
            self._remove()
            self._remove = None


def log_archive_dir(env: Any) -> Path | None:
    """Where the page's log views write every line they receive: the app's log folder."""
    return None if env is None else Path(env.log_dir) / "page"


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def format_line(line: LogLine) -> str:
    """One log line as plain text: ``12:01:02 INFO    [host] step: text``."""
    where = f"[{line.host}] " if line.host else ""
    step = f"{line.step}: " if line.step else ""
    return f"{_clock(line.time)} {line.level:<7} {where}{step}{line.text}"


def _line_html(line: LogLine) -> str:
    where = f'<span class="h">[{html.escape(line.host)}]</span> ' if line.host else ""
    step = f'<span class="h">{html.escape(line.step)}:</span> ' if line.step else ""
    return (f'<div class="line {line.level} {line.stream}"><span class="t">{_clock(line.time)}</span> '
            f'<span class="lv">{line.level}</span> {where}{step}<span class="x">{html.escape(line.text)}</span></div>')


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "logs"


class LogView(pn.viewable.Viewer):
    """Log lines from ``bus`` (only those of ``sources`` when given), live, in a titled card; ``host_name``
    renames the hosts of the lines (the engine's ``localhost`` is the worker map's ``127.0.0.1``).

    Keeps the last ``max_lines`` lines (a bounded buffer: a run of 100,000 lines costs the page no more
    than one of ``max_lines``); shows those at or above ``level`` that contain ``search``; follows the
    tail while ``follow`` is on. With ``archive_dir``, every line is also appended to a log file there,
    which the view names once it has dropped older lines. ``flush()`` applies the queued lines at once
    (the periodic callback started on first display calls it; tests can call it directly).
    """

    level = param.Selector(default="INFO", objects=list(LEVELS), doc="Lowest level shown.")
    search = param.String(default="", doc="Show only lines containing this text (case-insensitive).")
    follow = param.Boolean(default=True, doc="Keep the newest line in view.")
    max_lines = param.Integer(default=5000, bounds=(10, None), doc="Lines kept; older ones are dropped.")
    period = param.Integer(default=200, bounds=(50, 10_000), doc="Milliseconds between two flushes.")
    height = param.Integer(default=300, bounds=(80, None), doc="Height of the scrolling log box.")
    empty_text = param.String(default="No log lines yet.", doc="Shown while no line matches.")
    dropped = param.Integer(default=0, doc="Lines received but no longer kept (the oldest ones).")

    def __init__(self, bus: EventBus, sources: tuple[str, ...] | None = None, title: str = "Logs",
                 archive_dir: Path | None = None, host_name: Callable[[str], str] | None = None,
                 **params: Any) -> None:
        super().__init__(**params)
        self.host_name = host_name  # how the page names a line's host (as the worker map does)
        self.bus = bus
        self.sources = tuple(sources) if sources else None
        self.title = title
        self.archive_dir = Path(archive_dir) if archive_dir is not None else None
        self.archive: Path | None = None  # the file every line goes to, made at the first line
        self._lines: deque[LogLine] = deque(maxlen=self.max_lines)
        self._received = 0  # lines received since the last clear; the first kept one is number _received - len(_lines)
        self._chunks: list[tuple[pn.pane.HTML, int, int]] = []  # pane, number of its last line, lines it shows
        # Panes out of use, kept hidden at the top of the box and reused: a pane taken out of a page
        # leaves its DOM held by the browser (Panel 1.x), so one per flush would grow without bound.
        self._spares: list[pn.pane.HTML] = []
        self._shown_upto = 0  # number of the last line received that the page shows (or filtered out)
        self._shown_at = -math.inf  # when the page last took new lines (time.monotonic)
        self._tail_only = False  # the page shows only the tail of the buffer, after a fast burst
        self._now = time.monotonic
        self._empty = pn.pane.Markdown(self.empty_text, styles=_MUTED, margin=(5, 10))
        # The toolbar and the box reach the page with the first line (see deferred.show_when): an empty log
        # shows its sentence only, and a section holding one opens with fewer models to send and lay out.
        self._lines_view = pn.Column(sizing_mode="stretch_width", margin=0, visible=False)
        self._layout = pn.Card(self._lines_view, self._empty, title=title,
                               sizing_mode="stretch_width", collapsible=True, margin=(5, 0))
        self._feed = EventFeed(bus, self._accepts, self._append, period=self.period)
        self._render()

    # The lines' box, its toolbar and its notes are made with the first line (an empty log shows its
    # sentence only).
    @functools.cached_property
    def _box(self) -> pn.Column:
        return pn.Column(
            scroll=True, height=self.height, sizing_mode="stretch_width", styles=_BOX_STYLES,
            auto_scroll_limit=1_000_000 if self.follow else 0, scroll_button_threshold=40, view_latest=True,
            margin=(5, 10),
        )

    @functools.cached_property
    def _count(self) -> pn.pane.Markdown:
        return pn.pane.Markdown("", styles=_MUTED, margin=(5, 10), align="center")

    @functools.cached_property
    def _dropped_note(self) -> pn.pane.Markdown:
        return pn.pane.Markdown("", styles=_MUTED, margin=(0, 10), visible=False, sizing_mode="stretch_width")

    @functools.cached_property
    def _download(self) -> pn.widgets.FileDownload:
        return pn.widgets.FileDownload(
            callback=self._download_io, filename=f"{_slug(self.title)}.log", label="Download",
            color="light", icon=icon("download"), embed=False, width=130, align="end",
        )

    @functools.cached_property
    def _toolbar(self) -> pn.Row:
        clear = pn.widgets.Button(label="Clear", color="light", icon=icon("eraser"), width=90, align="end")
        clear.on_click(lambda _e: self.clear())
        return pn.Row(
            pn.widgets.Select.from_param(self.param.level, label="Level", width=110),
            pn.widgets.TextInput.from_param(self.param.search, label="Filter", placeholder="text in the line",
                                            width=220),
            pn.widgets.Switch.from_param(self.param.follow, label="Follow the tail", align="end", width=130,
                                         margin=(5, 10, 14, 10)),
            pn.layout.HSpacer(),
            self._count, clear, self._download,
            sizing_mode="stretch_width",
        )

    # -- data ----------------------------------------------------------------------------------------
    def _accepts(self, event: Event) -> bool:
        return isinstance(event, LogLine) and (self.sources is None or event.source in self.sources)

    def _filter(self) -> Callable[[LogLine], bool]:
        """The level and text filters as one function (reading params per line costs more than the test)."""
        lowest, needle = _RANK[self.level], self.search.lower()
        if needle:
            return lambda line: _RANK.get(line.level, 1) >= lowest and needle in line.text.lower()
        return lambda line: _RANK.get(line.level, 1) >= lowest

    @property
    def lines(self) -> list[LogLine]:
        """Every line kept (the level and text filters do not apply)."""
        return list(self._lines)

    @property
    def visible_lines(self) -> list[LogLine]:
        """The lines the view shows now."""
        shown = self._filter()
        return [line for line in self._lines if shown(line)]

    @property
    def text(self) -> str:
        """The shown lines as plain text."""
        return "\n".join(format_line(line) for line in self.visible_lines)

    def download_text(self) -> str:
        """Every kept line as plain text (what the Download button saves)."""
        return "\n".join(format_line(line) for line in self._lines) + ("\n" if self._lines else "")

    def _download_io(self) -> io.StringIO:
        return io.StringIO(self.download_text())

    # -- updates -------------------------------------------------------------------------------------
    def push(self, line: LogLine) -> None:
        """Queue one line by hand (what the bus listener does)."""
        self._feed.push(line)

    def flush(self) -> int:
        """Show the queued lines now; returns how many arrived."""
        return self._feed.flush()

    def tick(self) -> int:
        """What the periodic callback does: take the queued lines and show them. When more than
        ``_BURST_LINES`` wait, the page shows only the last ``_BURST_LINES`` lines kept, at most once per
        ``_BURST_GAP`` s, and the whole buffer at the first tick without new lines. Returns how many
        lines arrived."""
        batch = self._feed.drain()
        if batch:
            self._take(batch)
        waiting = min(self._received - self._shown_upto, len(self._lines))
        if waiting > _BURST_LINES:
            if self._now() - self._shown_at >= _BURST_GAP:
                self._show_tail()
        elif waiting:
            self._show_new()
        elif self._tail_only:
            self._render()
        return len(batch)

    def _show_tail(self) -> None:
        """The page shows only the last ``_BURST_LINES`` lines kept (see :meth:`tick`)."""
        self._shown_at = self._now()
        keep = self._filter()
        shown = [line for line in itertools.islice(self._lines, max(0, len(self._lines) - _BURST_LINES), None)
                 if keep(line)]
        self._spares += [chunk for chunk, _, _ in self._chunks]
        self._chunks = [(self._chunk(shown), self._received, len(shown))] if shown else []
        self._shown_upto, self._tail_only = self._received, True
        self._show()
        self._update_counts()

    def _append(self, batch: list[Event]) -> None:
        self._take(batch)
        self._show_new()

    def _take(self, batch: list[Event]) -> None:
        """Keep and archive the lines of ``batch`` (the page shows them at :meth:`_show_new`)."""
        lines = [e for e in batch if isinstance(e, LogLine)]
        if self.host_name is not None:
            lines = [replace(line, host=self.host_name(line.host)) if line.host else line for line in lines]
        self._write_archive(lines)
        before = len(self._lines)
        self._lines.extend(lines)
        self._received += len(lines)
        self.dropped += before + len(lines) - len(self._lines)

    def _show_new(self) -> None:
        """Add the kept lines not shown yet to the page, as one more chunk."""
        self._shown_at = self._now()
        if len(self._chunks) >= _MAX_CHUNKS:
            self._render()
            return
        waiting = min(self._received - self._shown_upto, len(self._lines))
        fresh = list(itertools.islice(self._lines, len(self._lines) - waiting, None)) if waiting else []
        self._shown_upto = self._received
        keep = self._filter()
        shown = [line for line in fresh if keep(line)]
        self._drop_old_chunks()
        if shown:
            self._chunks.append((self._chunk(shown), self._received, len(shown)))
        self._show()
        self._update_counts()

    def _drop_old_chunks(self) -> None:
        """Retire the chunks whose lines all left the buffer (no re-render of the rest)."""
        first_kept = self._received - len(self._lines)
        old = 0
        while old < len(self._chunks) and self._chunks[old][1] <= first_kept:
            old += 1
        self._spares += [chunk for chunk, _, _ in self._chunks[:old]]
        self._chunks = self._chunks[old:]

    def _show(self) -> None:
        """The box in one update: the spares emptied and hidden at the top, then the chunks, oldest first
        (the same panes in a new order: the browser keeps their views)."""
        for pane in self._spares:
            if pane.visible or pane.object:
                pane.param.update(object="", visible=False)
        objects = self._spares + [chunk for chunk, _, _ in self._chunks]
        if not objects and not made(self, "_box"):
            return
        if objects != list(self._box.objects):
            self._box.objects = objects

    def _write_archive(self, lines: list[LogLine]) -> None:
        if self.archive_dir is None or not lines:
            return
        try:
            if self.archive is None:
                self.archive_dir.mkdir(parents=True, exist_ok=True)
                stamp = time.strftime("%Y%m%d-%H%M%S")
                self.archive = self.archive_dir / f"{_slug(self.title)}-{stamp}-{os.urandom(3).hex()}.log"
            with self.archive.open("a", encoding="utf-8") as out:
                out.writelines(format_line(line) + "\n" for line in lines)
        except OSError as exc:  # a full disk must not stop the live view
            print(f"log archive {self.archive}: {exc}", file=sys.stderr)
            self.archive_dir = None

    def _chunk(self, lines: Iterable[LogLine]) -> pn.pane.HTML:
        """A pane showing ``lines``: a spare one when there is one, else a new one."""
        body = f'<div class="log">{"".join(_line_html(line) for line in lines)}</div>'
        if self._spares:
            pane = self._spares.pop()
            pane.param.update(object=body, visible=True)
            return pane
        return pn.pane.HTML(body, stylesheets=[_LOG_CSS], sizing_mode="stretch_width", margin=0)

    @param.depends("level", "search", watch=True)
    def _render(self) -> None:
        shown = self.visible_lines
        self._shown_upto, self._tail_only = self._received, False
        self._spares += [chunk for chunk, _, _ in self._chunks]
        self._chunks = [(self._chunk(shown), self._received, len(shown))] if shown else []
        self._show()
        self._update_counts()

    def _update_counts(self) -> None:
        kept = len(self._lines)
        keep = self._filter()
        shown = sum(1 for line in self._lines if keep(line)) if kept else 0
        if not kept and not made(self, "_toolbar"):  # nothing to show yet: the sentence only
            self._empty.param.update(object=self.empty_text, visible=True)
            return
        self._count.object = f"{kept:,} lines" if shown == kept else f"{shown:,} of {kept:,} lines shown"
        self._empty.object = self.empty_text if not kept else "No line matches the filters."
        self._empty.visible = shown == 0
        self._box.visible = shown > 0
        show_when(self._lines_view, (self._toolbar, self._dropped_note, self._box), kept > 0)
        if self.dropped:
            where = (f"the full log is in `{self.archive}`" if self.archive is not None else
                     "Download saves the lines kept")
            self._dropped_note.object = (f"Older lines were dropped from this view: it keeps the last {kept:,} of "
                                         f"{self._received:,} lines; {where}.")
        self._dropped_note.visible = bool(self.dropped)

    @param.depends("follow", watch=True)
    def _follow_changed(self) -> None:
        if not made(self, "_box"):  # made with the setting in force
            return
        self._box.auto_scroll_limit = 1_000_000 if self.follow else 0
        if self.follow and self._chunks:
            self._box.scroll_to(len(self._box.objects) - 1)

    @param.depends("empty_text", watch=True)
    def _empty_changed(self) -> None:
        self._update_counts()

    def clear(self) -> None:
        """Forget the lines kept so far (the archive file keeps them)."""
        self._lines.clear()
        self._received = 0
        self.dropped = 0
        self._render()

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Show queued lines every ``period`` ms on the current session's event loop (see :meth:`tick`)."""
        self._feed.start(self.tick)

    def close(self) -> None:
        """Stop following the bus and stop the periodic flush."""
        self._feed.close()

    def __panel__(self) -> pn.viewable.Viewable:
        self.start()
        return self._layout


def details_card(details: str, title: str = "Details") -> pn.Card:
    """A collapsed card holding a long text (a traceback, a command's output), shown on demand."""
    return pn.Card(
        pn.pane.HTML(f"<pre>{html.escape(details)}</pre>", sizing_mode="stretch_width",
                     styles={"font-size": "12px", "overflow-x": "auto"}, margin=(0, 10)),
        title=title, collapsed=True, sizing_mode="stretch_width", margin=(0, 0, 5, 0),
        header_background="transparent",
    )


class ActionStatus(pn.viewable.Viewer):
    """How one action of the state (``"INSTALL"``, ``"RUN"``...) is going.

    While it runs: a spinner and ``running_text``. When it ends with an error: the readable message and
    its details (the traceback) in a collapsed card. A cancelled action is a warning. Success shows
    nothing (the section says what success means). Works whoever started the action.
    """

    error = param.String(default="", doc="Readable error of the last run of the action.")
    details = param.String(default="", doc="Details (traceback) of that error.")
    running = param.Boolean(default=False, doc="The action is running now.")

    def __init__(self, state: Any, action: str, running_text: str | None = None, **params: Any) -> None:
        super().__init__(**params)
        self.state, self.action = state, action
        self.running_text = running_text or f"{action} is running…"
        self._parts: tuple[Any, Any, Any, Any] | None = None  # made when the action first runs or fails
        # its parts reach the page then too (see deferred.show_when)
        self._layout = pn.Column(sizing_mode="stretch_width", margin=0, visible=False)
        self._watchers = Watchers()
        self._watchers.watch(state, self._busy_changed, ["busy"])
        if "env" in state.param:  # another app's error is not this one's
            self._watchers.watch(state, lambda *_: self.clear(), ["env"])
        self.running = state.busy == action
        self._show()

    def _busy_changed(self, event: param.parameterized.Event) -> None:
        if event.new == self.action:
            self.param.update(running=True, error="", details="")
        elif event.old == self.action:
            self.param.update(running=False, error=self.state.error, details=self.state.error_details)

    def clear(self) -> None:
        self.param.update(error="", details="")

    def close(self) -> None:
        """Stop following the state."""
        self._watchers.clear()

    def _made_parts(self) -> tuple[Any, Any, Any, Any]:
        """The spinner, the running line, the error and its details (made once: most actions of a session
        never run, and every section has one)."""
        if self._parts is None:
            self._parts = (pn.indicators.LoadingSpinner(value=True, size=20, margin=(8, 10), visible=False),
                           pn.pane.Markdown(self.running_text, margin=(5, 0), visible=False),
                           pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width",
                                         margin=(5, 10)),
                           pn.Column(sizing_mode="stretch_width", margin=0))
        return self._parts

    @param.depends("error", "details", "running", watch=True)
    def _show(self) -> None:
        shown = self.running or bool(self.error)
        if shown or self._parts is not None:
            spinner, running, alert, details = self._made_parts()
            spinner.visible = running.visible = self.running
            alert.param.update(object=self.error, visible=bool(self.error),
                               alert_type="warning" if self.error.endswith("cancelled") else "danger")
            details.objects = [details_card(self.details)] if self.error and self.details else []
        show_when(self._layout, lambda: (pn.Row(*self._parts[:2]), *self._parts[2:]), shown)

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
