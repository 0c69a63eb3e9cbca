"""The job a worker process executes: what the engine sends, and the pieces every executor shares."""
from __future__ import annotations

import importlib
import json
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..fsutil import atomic_path

__all__ = ["OUTPUT_FORMATS", "Job", "make_worker", "write_output", "describe_error"]

# What write_output can write, by suffix (apps declare one of these at load)
OUTPUT_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


@dataclass
class Job:
    """Everything a worker process needs; JSON-able so it crosses process and host boundaries."""

    run_id: str
    app: str
    worker_ref: str
    src_path: str
    mode: int
    args: dict[str, Any]
    data_in: str
    data_out: str
    output_name: str
    slots: dict[str, list[dict[str, Any]]]  # slot id -> partitions (label, weight, payload) in plan order
    order: list[str]  # partition labels in plan order (work_done receives results in this order)
    pool_backend: str = "process"
    pool_size: int = 1
    cython_path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, default=str)

    @classmethod
    def from_json(cls, text: str) -> Job:
        return cls(**json.loads(text))

    def slim(self, *, order: bool = True) -> Job:
        """The same job without its partitions (and without their order unless ``order``): what a task
        needs besides its own partitions."""
        return Job(**{**self.__dict__, "slots": {}, **({} if order else {"order": []})})

    def partitions(self) -> list[tuple[str, dict[str, Any]]]:
        """(slot, partition) pairs in plan order."""
        where = {p["label"]: (slot, p) for slot, parts in self.slots.items() for p in parts}
        return [where[label] for label in self.order]


def prepare_path(job: Job) -> None:
    """Make the app and, in cython mode, its compiled kernels importable."""
    for entry in (job.cython_path if job.mode & 2 else None, job.src_path):
        if entry and entry not in sys.path:
            sys.path.insert(0, entry)


def make_worker(job: Job, worker_id: str) -> Any:
    prepare_path(job)
    module_name, _, name = job.worker_ref.partition(":")
    cls = getattr(importlib.import_module(module_name), name)
    worker = cls(job.args, worker_id=worker_id, mode=job.mode, data_in=job.data_in, data_out=job.data_out)
    worker.summary_name = job.extra.get("summary")
    if job.mode & 8:
        worker.cudf()  # no silent fallback: a host without cuDF fails here, naming itself
    return worker


def write_output(job: Job, frame: Any) -> dict[str, Any]:
    """Write the output dataframe atomically under data_out (never through a link leading out); return where and what."""
    from ..paths import inside

    if frame is None:
        return {"output": None, "rows": 0, "columns": []}
    kind = OUTPUT_FORMATS.get(Path(job.output_name).suffix.lower())
    if kind is None:
        raise ValueError(f"output {job.output_name!r}: the engine writes only {', '.join(OUTPUT_FORMATS)} files")
    out = inside(job.data_out, job.output_name, "output", root_name="data_out folder")
    with atomic_path(out) as tmp:
        if kind == "csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    return {"output": str(out), "rows": int(len(frame)), "columns": [str(c) for c in frame.columns]}


def describe_error(exc: BaseException) -> str:
    """One readable line, then the traceback (details on demand)."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return f"{type(exc).__name__}: {exc}\n{tb}"


def now() -> float:
    return time.time()
