"""Pieces every executor shares: the job built from a plan, subprocess log streaming."""
from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

from ..env import AgiEnv
from ..events import EventBus, LogLine
from ..plan import WorkPlan
from ..runtime.job import Job

__all__ = ["make_job", "stream_lines"]


def make_job(env: AgiEnv, plan: WorkPlan, mode: int, data_in: Path, data_out: Path, cython_path: Path | None) -> Job:
    slots = {slot: [p.to_dict() for p in parts] for slot, parts in plan.by_slot().items()}
    return Job(
        run_id=uuid.uuid4().hex[:12],
        app=env.app,
        worker_ref=env.spec.worker_ref,
        src_path=str(env.spec.src_path),
        mode=mode,
        args=dict(plan.args),
        data_in=str(data_in),
        data_out=str(data_out),
        output_name=env.spec.output,
        slots=slots,
        order=[p.label for p in plan.partitions],
        pool_backend=env.spec.pool_backend,
        pool_size=max(1, sum(plan.workers.values())),
        cython_path=str(cython_path) if cython_path else None,
    )


async def stream_lines(reader: asyncio.StreamReader, bus: EventBus, *, source: str, stream: str, host: str | None = None) -> None:
    """Forward each line as it is written; stderr lines that look like errors are marked so."""
    while True:
        raw = await reader.readline()
        if not raw:
            return
        text = raw.decode(errors="replace").rstrip("\n")
        level = "ERROR" if stream == "stderr" and ("Error" in text or "Traceback" in text) else "INFO"
        if stream == "stderr" and level == "INFO" and ("WARNING" in text or "Warning" in text):
            level = "WARNING"
        bus.emit(LogLine(text=text, source=source, stream=stream, level=level, host=host))


def child_env(extra_path: list[str] | None = None) -> dict[str, str]:
    """The engine's environment minus what would leak its packages into a worker Python."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(UV_PYTHON_DOWNLOADS="never", PYTHONUNBUFFERED="1")
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join(extra_path)
    return env
