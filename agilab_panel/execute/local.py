"""Local runs (no cluster bit): the plan executes in a process of the worker environment.

By default a warm runner forks the process (no interpreter start-up, the app already imported);
with ``warm=False`` a fresh interpreter of the worker environment is started directly. Either way a
run never waits on a package manager. Partition progress comes back on a dedicated pipe as JSON;
stdout/stderr are log lines.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ..events import EventBus, PartitionEvent
from ..runtime.job import Job
from .common import child_env, stream_lines
from .result import PartitionStatus, RunError
from .zygote import zygote_for

__all__ = ["run_local", "warm_runner"]


async def _reader(fd: int) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", 0))
    return reader


async def _read_events(reader: asyncio.StreamReader, bus: EventBus, statuses: dict[str, PartitionStatus],
                       final: dict[str, Any]) -> None:
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


async def warm_runner(python: Path, worker_ref: str, cython_path: str | None, src_path: str, workdir: Path) -> Any:
    """The warm runner of this worker environment and app, started now if it is not running."""
    paths = [p for p in (cython_path, src_path) if p]
    # the environment's own packages change only through INSTALL, which rewrites its state file
    state = [python.parent.parent.parent / "install_state.json"]
    return await zygote_for(python, worker_ref.partition(":")[0], paths, workdir / "runner.log", state)


async def _launch(job: Job, job_path: str, python: Path, workdir: Path, warm: bool,
                  fds: list[int]) -> tuple[Callable[[], Awaitable[int]], Callable[[], None]]:
    """Start the job with (stdout, stderr, events) write ends; returns (wait, kill)."""
    if warm:
        zygote = await warm_runner(python, job.worker_ref, job.cython_path, job.src_path, workdir)
        pid = await zygote.launch(job_path, fds)

        def kill() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

        return (lambda: zygote.wait(pid)), kill
    out, err, events = fds
    proc = await asyncio.create_subprocess_exec(
        str(python), "-m", "agilab_panel.runtime.runner", job_path, "--events-fd", str(events),
        stdout=out, stderr=err, pass_fds=(events,), env=child_env(), cwd=str(workdir),
    )
    return proc.wait, proc.kill


async def run_local(job: Job, python: Path, bus: EventBus, workdir: Path, *,
                    warm: bool = True) -> tuple[dict[str, Any], dict[str, PartitionStatus]]:
    """Run ``job`` with ``python``; returns the result record and the per-partition statuses."""
    statuses = {p["label"]: PartitionStatus(label=p["label"], worker=slot) for slot, p in job.partitions()}
    workdir.mkdir(parents=True, exist_ok=True)
    fd, job_path = tempfile.mkstemp(prefix=f"job-{job.run_id}-", suffix=".json", dir=workdir)
    with os.fdopen(fd, "w") as handle:
        handle.write(job.to_json())
    pipes = [os.pipe() for _ in range(3)]
    final: dict[str, Any] = {}
    try:
        try:
            wait, kill = await _launch(job, job_path, python, workdir, warm, [w for _, w in pipes])
        finally:
            for _, w in pipes:
                os.close(w)
        out, err, events = [await _reader(r) for r, _ in pipes]
        try:
            await asyncio.gather(
                _read_events(events, bus, statuses, final),
                stream_lines(out, bus, source="run", stream="stdout", host="localhost"),
                stream_lines(err, bus, source="run", stream="stderr", host="localhost"),
            )
            code = await wait()
        except asyncio.CancelledError:
            kill()
            raise
    finally:
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
