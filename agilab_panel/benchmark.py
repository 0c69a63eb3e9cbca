"""Benchmark all modes: one table per app in benchmark.json (seconds, rank, delta to the fastest).

Every mode is timed the same way: one untimed warm-up run of each mode first (the warm runner, the
Dask cluster, the app's imports and its prepared inputs are then ready for all of them), then
``repeats`` timed rounds over the modes in turn, so a passing load weighs on every mode alike.
``seconds`` is the fastest of the repeats (the figure least disturbed by other work on the machine);
``median`` and every repeat are kept beside it.
"""
from __future__ import annotations

import json
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .execute.result import BenchmarkResult, RunResult
from .fsutil import atomic_write_text
from .modes import mode_label, mode_to_str

__all__ = ["benchmark_summary", "benchmark_table", "write_benchmark"]

SECONDS_NOTE = "seconds: the fastest of the timed repeats, after one untimed warm-up run of every mode"


def benchmark_table(runs: Sequence[RunResult], errors: dict[int, str] | None = None,
                    timings: Mapping[int, Sequence[float]] | None = None) -> dict[str, dict[str, Any]]:
    """Per mode: seconds (min of the repeats), median, order (1 = fastest), delta % to the fastest,
    speedup over mode 0, nodes, workers. ``runs`` holds the fastest run of each mode."""
    fastest = min((r.seconds for r in runs), default=0.0)
    base = next((r.seconds for r in runs if r.mode == 0), None)
    ranked = sorted(runs, key=lambda r: r.seconds)
    table: dict[str, dict[str, Any]] = {}
    for run in runs:
        repeats = list((timings or {}).get(run.mode) or [run.seconds])
        table[str(run.mode)] = {
            "mode": run.mode,
            "mode_str": mode_to_str(run.mode),
            "label": mode_label(run.mode),
            "seconds": round(run.seconds, 4),
            "median": round(statistics.median(repeats), 4),
            "repeats": len(repeats),
            "repeat_seconds": [round(s, 4) for s in repeats],
            "order": ranked.index(run) + 1,
            "delta_pct": round(100.0 * (run.seconds - fastest) / fastest, 2) if fastest else 0.0,
            "speedup": round(base / run.seconds, 3) if base and run.seconds else None,
            "nodes": run.nodes,
            "workers": sum(run.workers.values()),
            "rows": run.rows,
        }
    for mode, error in (errors or {}).items():
        table[str(mode)] = {"mode": mode, "mode_str": mode_to_str(mode), "label": mode_label(mode), "error": error}
    return dict(sorted(table.items(), key=lambda kv: int(kv[0])))


def benchmark_summary(table: Mapping[str, Mapping[str, Any]], seconds: float) -> str:
    """The line that closes a benchmark: how many modes, how long it all took, which mode won."""
    timed = [row for row in table.values() if "seconds" in row]
    fastest = min(timed, key=lambda row: row["seconds"])["label"] if timed else "none"
    return f"Benchmark: {len(timed)} mode{'' if len(timed) == 1 else 's'} in {seconds:.1f} s, fastest: {fastest}"


def write_benchmark(path: Any, app: str, runs: Sequence[RunResult], errors: dict[int, str] | None = None,
                    timings: Mapping[int, Sequence[float]] | None = None, seconds: float = 0.0,
                    repeats: int = 1) -> BenchmarkResult:
    """Write benchmark.json (``modes`` keeps the keys readers use) and return the result with its summary."""
    table = benchmark_table(runs, errors, timings)
    summary = benchmark_summary(table, seconds)
    payload = {"app": app, "created": time.time(), "repeats": repeats, "seconds_note": SECONDS_NOTE,
               "total_seconds": round(seconds, 3), "summary": summary, "modes": table}
    atomic_write_text(path, json.dumps(payload, indent=2))
    return BenchmarkResult(app=app, runs=list(runs), table=table, path=str(path), repeats=repeats,
                           seconds=seconds, summary=summary)
