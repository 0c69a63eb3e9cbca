"""Local runs (no cluster bit): the plan executes in one process of the worker environment.

The interpreter of the worker environment is started directly, so a run never waits on a package
manager. Partition progress comes back on a dedicated pipe as JSON; stdout/stderr are log lines.
"""
from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..events import EventBus, PartitionEvent
from ..runtime.job import Job
from .common import child_env, stream_lines
from .result import PartitionStatus, RunError

__all__ = ["run_local"]


async def _read_events(fd: int, bus: EventBus, statuses: dict[str, PartitionStatus], final: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", 0))
    try:
        while line := await reader.readline():
            record = json.loads(line)
            kind = record.pop("kind")
            if kind == "PartitionEvent":
                event = PartitionEvent(**record)
                status = statuses[event.label]
                status.worker, status.status = event.worker, event.state
                status.seconds, status.error = event.seconds, event.error
                bus.emit(event)
            else:
                final[kind] = record
    finally:
        transport.close()


async def run_local(job: Job, python: Path, bus: EventBus, workdir: Path) -> tuple[dict[str, Any], dict[str, PartitionStatus]]:
    """Run ``job`` with ``python``; returns the result record and the per-partition statuses."""
    statuses = {label: PartitionStatus(label=label, worker=slot) for slot, p in job.partitions() for label in [p["label"]]}
    workdir.mkdir(parents=True, exist_ok=True)
    fd, job_path = tempfile.mkstemp(prefix=f"job-{job.run_id}-", suffix=".json", dir=workdir)
    with os.fdopen(fd, "w") as handle:
        handle.write(job.to_json())
    read_fd, write_fd = os.pipe()
    final: dict[str, Any] = {}
    try:
        proc = await asyncio.create_subprocess_exec(
            str(python), "-m", "agilab_panel.runtime.runner", job_path, "--events-fd", str(write_fd),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=(write_fd,),
            env=child_env(),
            cwd=str(workdir),
        )
        os.close(write_fd)
        write_fd = -1
        try:
            await asyncio.gather(
                _read_events(read_fd, bus, statuses, final),
                stream_lines(proc.stdout, bus, source="run", stream="stdout", host="localhost"),
                stream_lines(proc.stderr, bus, source="run", stream="stderr", host="localhost"),
            )
            code = await proc.wait()
        except asyncio.CancelledError:
            proc.kill()
            await proc.wait()
            raise
    finally:
        if write_fd >= 0:
            os.close(write_fd)
        Path(job_path).unlink(missing_ok=True)
    if code != 0 or "result" not in final:
        failed = [s for s in statuses.values() if s.status == "failed"]
        if failed:
            first = failed[0]
            summary = first.error.splitlines()[0] if first.error else "failed"
            raise RunError(
                f"partition {first.label} failed on worker {first.worker}: {summary}",
                partition=first.label, worker=first.worker, details=first.error,
            )
        error = final.get("error", {}).get("error", "")
        summary = error.splitlines()[0] if error else f"the worker process exited with code {code}"
        raise RunError(f"run of {job.app} failed on localhost: {summary}", worker="localhost", details=error)
    return final["result"], statuses
