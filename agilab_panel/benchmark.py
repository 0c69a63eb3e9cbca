"""Benchmark all modes: one table per app in benchmark.json (seconds, rank, delta to the fastest)."""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from .execute.result import BenchmarkResult, RunResult
from .fsutil import atomic_write_text
from .modes import mode_label, mode_to_str

__all__ = ["benchmark_table", "write_benchmark"]


def benchmark_table(runs: Sequence[RunResult], errors: dict[int, str] | None = None) -> dict[str, dict[str, Any]]:
    """Per mode: seconds, order (1 = fastest), delta % to the fastest, speedup over mode 0, nodes, workers."""
    fastest = min((r.seconds for r in runs), default=0.0)
    base = next((r.seconds for r in runs if r.mode == 0), None)
    ranked = sorted(runs, key=lambda r: r.seconds)
    table: dict[str, dict[str, Any]] = {}
    for run in runs:
        table[str(run.mode)] = {
            "mode": run.mode,
            "mode_str": mode_to_str(run.mode),
            "label": mode_label(run.mode),
            "seconds": round(run.seconds, 4),
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


def write_benchmark(path: Any, app: str, runs: Sequence[RunResult], errors: dict[int, str] | None = None) -> BenchmarkResult:
    table = benchmark_table(runs, errors)
    payload = {"app": app, "created": time.time(), "modes": table}
    atomic_write_text(path, json.dumps(payload, indent=2))
    return BenchmarkResult(app=app, runs=list(runs), table=table, path=str(path))
