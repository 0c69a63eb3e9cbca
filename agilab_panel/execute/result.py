"""Structured run outcomes: what callers read instead of parsing logs."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..modes import mode_label

__all__ = ["PartitionStatus", "RunResult", "BenchmarkResult", "RunError"]


class RunError(RuntimeError):
    """A run that failed; names the partition and the worker when one is to blame."""

    def __init__(self, message: str, *, partition: str | None = None, worker: str | None = None, details: str = "") -> None:
        self.partition, self.worker, self.details = partition, worker, details
        super().__init__(message)


@dataclass
class PartitionStatus:
    label: str
    worker: str
    status: str = "pending"  # pending | started | done | failed
    seconds: float = 0.0
    error: str = ""


@dataclass
class RunResult:
    """One mode's run: timing, the plan used and where the output went."""

    app: str
    mode: int
    seconds: float
    plan_source: str  # "saved" | "built" | "rebuilt"
    plan_note: str
    plan: dict[str, Any]
    output: str | None
    rows: int
    columns: list[str]
    partitions: list[PartitionStatus]
    workers: dict[str, int]
    nodes: int
    cluster: str = ""  # "" | "started" | "reused" | "connected"
    finished: float = 0.0  # when the run ended (seconds since the epoch)

    @property
    def label(self) -> str:
        return mode_label(self.mode)

    @property
    def ok(self) -> bool:
        return all(p.status == "done" for p in self.partitions)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["label"] = self.label
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunResult:
        """The result :meth:`to_dict` gave (derived keys such as ``label`` are ignored; ``plan`` may be left out)."""
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["partitions"] = [PartitionStatus(**p) for p in data.get("partitions", [])]
        values.setdefault("plan", {})
        return cls(**values)


@dataclass
class BenchmarkResult:
    """Every benchmarked mode, and the table written to benchmark.json."""

    app: str
    runs: list[RunResult]
    table: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: str = ""
    repeats: int = 1  # timed runs per mode; ``runs`` holds each mode's fastest
    seconds: float = 0.0  # the whole benchmark, warm-up included
    summary: str = ""  # "Benchmark: N modes in X s, fastest: <mode>"

    def to_dict(self) -> dict[str, Any]:
        return {"app": self.app, "path": self.path, "table": self.table, "runs": [r.to_dict() for r in self.runs],
                "repeats": self.repeats, "seconds": self.seconds, "summary": self.summary}
