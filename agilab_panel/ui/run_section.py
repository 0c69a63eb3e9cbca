"""Run: the ``AGI.run`` snippet, RUN / Cancel, Benchmark all modes, live Run logs and progress, and the
benchmark results (table and bar chart, from benchmark.json).

The section is a view over :class:`~agilab_panel.ui.state.OrchestrateState`: RUN awaits
``state.run()``; everything shown comes from the state's params and its event bus.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the Bokeh backend the plots' options need)
import pandas as pd
import panel as pn

from ..benchmark import benchmark_summary
from ..modes import benchmark_modes, mode_label
from .heartbeats import HeartbeatPlot
from .logs import ActionStatus, LogView, Watchers, log_archive_dir
from .offline import icon
from .plot_style import CANVAS
from .snippet_view import SnippetView
from .progress import ProgressPlot
from .tables import show_frame

__all__ = ["RunSection", "SnippetView", "benchmark_frame", "benchmark_headline", "muted", "MUTED"]

MUTED = {"color": "var(--neutral-foreground-hint, #6b6b6b)"}
RUN_LOG_SOURCES = ["run", "worker", "scheduler", "distrib"]
_BENCH_COLUMNS = ["mode", "mode_str", "label", "seconds", "order", "delta_pct", "speedup", "nodes", "workers", "rows", "error"]


def muted(text: str, **kw: Any) -> pn.pane.Markdown:
    """A secondary line of text (hints, empty states)."""
    return pn.pane.Markdown(text, styles=dict(MUTED), margin=kw.pop("margin", (0, 10)), **kw)


# -- small shared views -----------------------------------------------------------------------------
def _first_line(text: str, limit: int = 400) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _finished(stamp: float) -> str:
    """`` · finished 14:03:07`` (with the date when not today); nothing for a result without the time."""
    if not stamp:
        return ""
    when = time.localtime(stamp)
    same_day = time.strftime("%Y-%m-%d", when) == time.strftime("%Y-%m-%d")
    return " · finished " + time.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S", when)


# -- benchmark data ---------------------------------------------------------------------------------
def benchmark_frame(table: dict[str, dict[str, Any]] | None) -> pd.DataFrame:
    """benchmark.json's ``modes`` table as a frame, one row per mode, fastest first."""
    rows = list((table or {}).values())
    frame = pd.DataFrame(rows, columns=_BENCH_COLUMNS) if rows else pd.DataFrame(columns=_BENCH_COLUMNS)
    for col in ("seconds", "delta_pct", "speedup"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    frame["error"] = frame["error"].astype(object).where(frame["error"].notna(), "")
    frame = frame.sort_values(["order", "mode"], na_position="last", kind="stable").reset_index(drop=True)
    return frame


def _read_benchmark(path: Path) -> dict[str, Any] | None:
    """benchmark.json as written (``modes``, ``summary``, ``created``...); None when absent or unreadable."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    modes = data.get("modes") if isinstance(data, dict) else None
    return data if isinstance(modes, dict) and modes else None


def benchmark_headline(data: dict[str, Any]) -> str:
    """``**Benchmark: N modes in X s, fastest: <mode>**`` with how the seconds were taken and when."""
    table = data.get("modes") or {}
    summary = data.get("summary") or benchmark_summary(
        table, float(data.get("total_seconds") or sum(r.get("seconds") or 0.0 for r in table.values())))
    repeats = int(data.get("repeats") or 1)
    how = ""
    if data.get("seconds_note"):  # written by a benchmark that warms every mode up before timing them
        how = f"best of {repeats} timed runs per mode" if repeats > 1 else "one timed run per mode"
        how += ", after an untimed warm-up of every mode"
    failed = sum(1 for row in table.values() if row.get("error"))
    notes = [how, f"{failed} mode{'s' if failed != 1 else ''} failed" if failed else ""]
    tail = "; ".join(n for n in notes if n)
    return f"**{summary}**" + (f" ({tail})" if tail else "") + _finished(float(data.get("created") or 0.0))


def _bench_table(frame: pd.DataFrame) -> pn.widgets.Tabulator:
    return pn.widgets.Tabulator(
        frame, disabled=True, selectable=False, show_index=False, sizing_mode="stretch_width",
        layout="fit_data_stretch",
        formatters={"seconds": {"type": "money", "precision": 3, "symbol": ""},
                    "delta_pct": {"type": "money", "precision": 1, "symbol": "%", "symbolAfter": True},
                    "speedup": {"type": "money", "precision": 2, "symbol": "×", "symbolAfter": True}},
        titles={"mode_str": "rdcp", "delta_pct": "Δ to fastest", "order": "rank"},
        margin=(5, 10),
    )


class RunSection(pn.viewable.Viewer):
    """RUN with the current settings (or benchmark every enabled mode) and watch it live."""

    def __init__(self, state: Any, **params: Any) -> None:
        super().__init__(**params)
        self.state = state
        self._settings_watchers = Watchers()
        self._state_watchers = Watchers()

        self.snippet = SnippetView(state, "run", benchmark=lambda: state.benchmark_all)
        self.run_button = pn.widgets.Button(label="RUN", color="primary", icon=icon("player-play"), width=120,
                                            margin=(5, 10), align="center")
        self.run_button.on_click(self._on_run)
        self.cancel_button = pn.widgets.Button(label="Cancel", color="danger", variant="outline", icon=icon("x"),
                                               width=110, margin=(5, 5), disabled=True, align="center")
        self.cancel_button.on_click(self._on_cancel)
        self.benchmark_toggle = self._state_watchers.link(
            state, "benchmark_all", pn.widgets.Switch(label="Benchmark all modes", margin=(5, 10, 5, 24), width=190,
                                                      align="center"))
        self._modes_hint = muted("", margin=(0, 10), align="center")
        self._gate = pn.pane.Alert("", alert_type="info", visible=False, sizing_mode="stretch_width", margin=(5, 10))
        self._plan_hint = muted("")
        self.status = ActionStatus(state, "RUN", running_text="**RUN is running…** logs and progress below update live.")
        self._result = pn.pane.Alert("", alert_type="success", visible=False, sizing_mode="stretch_width", margin=(5, 10))

        self.progress = ProgressPlot(state.bus)
        self.heartbeats = HeartbeatPlot(state.bus)
        self.logs = LogView(state.bus, sources=RUN_LOG_SOURCES, title="Run logs",
                            archive_dir=log_archive_dir(state.env),
                            empty_text="No run logs yet: press RUN and its lines stream here live.")
        self._progress_card = pn.Card(self.progress, self.heartbeats, title="Progress", collapsed=False,
                                      sizing_mode="stretch_width", margin=(5, 0))
        self._bench_table: pn.widgets.Tabulator | None = None
        self._bench_seconds = pn.pane.HoloViews(None, sizing_mode="stretch_width", linked_axes=False)
        self._bench_speedup = pn.pane.HoloViews(None, sizing_mode="stretch_width", linked_axes=False)
        self._bench_plot = pn.Row(self._bench_seconds, self._bench_speedup, sizing_mode="stretch_width")
        self._bench_empty = muted("")
        self._bench_where = muted("")
        self._bench_summary = pn.pane.Markdown("", margin=(5, 10), sizing_mode="stretch_width")
        self._bench_body = pn.Column(self._bench_empty, sizing_mode="stretch_width", margin=0)
        self._bench_card = pn.Card(self._bench_body, title="Benchmark results", collapsed=False,
                                   sizing_mode="stretch_width", margin=(5, 0))

        controls = pn.Row(self.run_button, self.cancel_button, self.benchmark_toggle,
                          self._modes_hint, sizing_mode="stretch_width", margin=0)
        self._layout = pn.Card(
            muted("Run the app with the current settings and args, or time every mode the toggles enable. "
                  "The snippet below does the same from Python."),
            self.snippet,
            controls,
            self._gate,
            self._plan_hint,
            self.status,
            self._result,
            self.logs,
            self._progress_card,
            self._bench_card,
            title="Run", sizing_mode="stretch_width", collapsible=True,
        )
        for fn, names in ((self._on_settings, ["settings", "env"]),
                          (self._refresh_controls, ["installed", "busy", "install_note", "plan", "benchmark_all"]),
                          (self._refresh_snippet, ["benchmark_all"]),
                          (self._on_busy, ["busy"]),
                          (self._refresh_result, ["run_result"]),
                          (self._refresh_benchmark, ["benchmark_result", "env"])):
            self._state_watchers.watch(state, fn, names)
        self._on_settings()
        self._refresh_result()
        self._refresh_benchmark()
        if state.busy == "RUN":
            self._on_busy()

    # -- settings-driven views --------------------------------------------------------------------------
    def _on_settings(self, *_events: Any) -> None:
        self._settings_watchers.clear()
        settings = self.state.settings
        if settings is not None:
            for obj in (settings.cluster, settings.args):
                names = [n for n in obj.param if n != "name"]
                self._settings_watchers.watch(obj, self._refresh_controls, names)
        self._refresh_controls()  # the snippet view follows the settings by itself

    def refresh(self) -> None:
        """Regenerate the snippet and the hints (call after the args were saved elsewhere)."""
        self._on_settings()
        self.snippet.follow_settings()

    def _refresh_snippet(self, *_events: Any) -> None:
        self.snippet.refresh()

    def _refresh_controls(self, *_events: Any) -> None:
        state = self.state
        busy = state.busy
        ready = bool(state.installed) and state.settings is not None
        self.run_button.disabled = not ready or bool(busy)
        self.cancel_button.disabled = busy != "RUN"
        self.benchmark_toggle.disabled = busy == "RUN"
        if state.settings is None:
            self._gate.param.update(object="Run needs readable settings: fix or reseed them in **System settings**.",
                                    alert_type="warning", visible=True)
        elif not state.installed:
            why = f" ({state.install_note})" if state.install_note else ""
            self._gate.param.update(
                object=f"**Run INSTALL first.** RUN is enabled once the worker environment is installed{why}.",
                alert_type="info", visible=True)
        else:
            self._gate.visible = False
        if busy and busy != "RUN":
            self.run_button.description = f"{busy} is running"
        else:
            self.run_button.description = None
        cluster = state.settings.cluster if state.settings is not None else None
        if cluster is None:
            self._modes_hint.object = ""
        elif state.benchmark_all:
            enabled = cluster.mode
            chosen = benchmark_modes(enabled)
            self._modes_hint.object = f"times {len(chosen)} mode{'s' if len(chosen) != 1 else ''}: " + ", ".join(
                mode_label(m) for m in chosen)
        else:
            self._modes_hint.object = f"runs mode {mode_label(cluster.mode)}"
        self._plan_hint.object = self._plan_text()

    def _plan_text(self) -> str:
        state = self.state
        if state.settings is None:
            return ""
        plan = state.plan
        if plan is None:
            return "Work plan: none saved yet; RUN builds one (CHECK DISTRIBUTE in Distribute shows it first)."
        try:
            reason = plan.mismatch(state.settings.args_dict, dict(state.settings.cluster.workers))
        except Exception:  # noqa: BLE001 - a hint only
            reason = None
        if reason:
            return f"Work plan: the saved plan no longer fits ({reason}); RUN will rebuild it."
        edited = " (edited)" if getattr(plan, "edited", False) else ""
        n = len(plan.partitions)
        return f"Work plan: RUN will use the saved work plan{edited}, {n:,} partition{'s' if n != 1 else ''}."

    # -- actions ----------------------------------------------------------------------------------------
    async def _on_run(self, _event: Any = None) -> None:
        state = self.state
        if not state.installed or state.busy:
            return
        total = len(state.plan.partitions) if state.plan is not None else None
        slots = sum(state.settings.cluster.workers.values()) if state.settings is not None else None
        self.progress.param.update(total=total, lanes=slots or None)
        self._result.visible = False
        await state.run()

    def _on_cancel(self, _event: Any = None) -> None:
        self.state.cancel()

    def _on_busy(self, *_events: Any) -> None:
        if self.state.busy == "RUN":
            self._result.visible = False

    # -- outcome ----------------------------------------------------------------------------------------
    def _refresh_result(self, *_events: Any) -> None:
        result = self.state.run_result
        if result is None:
            self._result.visible = False
            return
        parts = len(result.partitions)
        failed = [p for p in result.partitions if p.status != "done"]
        slots = sum(result.workers.values()) if result.workers else 0
        output = ""
        if result.output:
            output = (f"Output: {result.rows:,} rows × {len(result.columns):,} columns in `{result.output}` — "
                      + ("LOAD DATA previews it." if Path(result.output).exists() else "no longer on disk."))
        lines = [
            f"**RUN done in {result.seconds:,.2f} s** · mode {result.label} · {parts:,} partition{'s' if parts != 1 else ''}"
            f" on {slots:,} worker slot{'s' if slots != 1 else ''}"
            + (f" ({result.cluster} Dask cluster)" if result.cluster else "") + _finished(result.finished),
            f"Work plan: {result.plan_note}." if result.plan_note else "",
            output or "No output dataframe was written.",
        ]
        if failed:
            lines.insert(1, f"{len(failed)} partition{'s' if len(failed) != 1 else ''} failed: "
                            + ", ".join(f"{p.label} on {p.worker}" for p in failed[:5]))
        self._result.param.update(object="\n\n".join(l for l in lines if l),
                                  alert_type="success" if result.ok else "warning", visible=True)

    def _refresh_benchmark(self, *_events: Any) -> None:
        state = self.state
        result = state.benchmark_result
        data = None
        path = Path(result.path) if result is not None and result.path else None
        if path is not None:
            data = _read_benchmark(path)
        if data is None and result is not None and result.table:
            data = {"modes": result.table, "summary": result.summary, "repeats": result.repeats}
        if data is None and state.env is not None:
            path = state.env.benchmark_path
            data = _read_benchmark(path)
        table = data["modes"] if data else None
        if not table:
            self._bench_empty.object = ("No benchmark yet. Turn on **Benchmark all modes** and press RUN: the time, rank "
                                        "and speedup over mode 0 of every enabled mode appear here (saved in benchmark.json).")
            self._bench_body[:] = [self._bench_empty]
            return
        frame = benchmark_frame(table)
        shown = frame if frame["error"].astype(bool).any() else frame.drop(columns=["error"])
        self._bench_table = show_frame(self._bench_table, shown, _bench_table)
        self._bench_seconds.object, self._bench_speedup.object = self._bench_bars(frame)
        self._bench_where.object = f"From `{path}`." if path else ""
        self._bench_summary.object = benchmark_headline(data)
        self._bench_body[:] = [self._bench_summary, self._bench_table, self._bench_plot, self._bench_where]

    @staticmethod
    def _bench_bars(frame: pd.DataFrame) -> tuple[hv.Bars, hv.Bars]:
        """Seconds and speedup per mode label, one horizontal bar per mode (in mode order)."""
        ok = frame[frame["seconds"].notna()].sort_values("mode", ascending=False)
        height = max(160, 70 + 34 * len(ok))
        opts = dict(invert_axes=True, responsive=True, height=height, tools=["hover"], xlabel="", ylabel="",
                    show_grid=True, default_tools=["save", "reset"], toolbar="above", active_tools=[],
                    backend_opts=CANVAS)
        seconds = hv.Bars(ok, "label", "seconds").opts(color="#1565c0", title="Seconds per mode (lower is faster)", **opts)
        speedup = hv.Bars(ok.fillna({"speedup": 0.0}), "label", "speedup").opts(
            color="#2e7d32", title="Speedup over mode 0 (higher is faster)", **opts)
        return seconds, speedup

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the live views (log tail, progress) on the current session."""
        self.logs.start()
        self.progress.start()
        self.heartbeats.start()

    def close(self) -> None:
        """Stop the live views and stop following the state (the section is being dropped)."""
        self.logs.close()
        self.progress.close()
        self.heartbeats.close()
        self.status.close()
        self.snippet.close()
        self._state_watchers.clear()
        self._settings_watchers.clear()

    def __panel__(self) -> pn.viewable.Viewable:
        self.start()
        return self._layout
