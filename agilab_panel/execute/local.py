"""Local runs (no cluster bit): the plan executes in a process of the worker environment.

By default a warm runner forks the process (no interpreter start-up, the app already imported);
with ``warm=False`` a fresh interpreter of the worker environment is started directly. Either way a
run never waits on a package manager. Partition progress comes back on a dedicated pipe as JSON;
stdout/stderr are log lines. A run is its own process group, killed whole on cancel; a run or pool
process that dies is named in the error with the partition it was running.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ..events import EventBus, PartitionEvent
from ..runtime.job import Job
from ..runtime.lifecycle import exit_text, kill_group
from ..runtime.runner import SPILL_PREFIX
from .common import child_env, read_lines, stream_lines
from .result import PartitionStatus, RunError
from .zygote import zygote_for

__all__ = ["run_local", "warm_runner", "KEPT_STATE"]


KEEP_FILES = 20  # job and event files left by killed runs: the newest are kept, older ones removed
KEPT_STATE = "runner.json"  # beside the jobs: the runner kept across processes (``--keep-cluster``)


async def _reader(fd: int) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", 0))
    return reader


def _unspill(record: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """A record too long for one atomic write comes in a file beside the job; read it and remove it."""
    name = str(record.get("file", ""))
    if not name.startswith(SPILL_PREFIX) or Path(name).name != name:
        raise ValueError(f"bad spilled event file name {name!r}")
    path = workdir / name
    try:
        return json.loads(path.read_bytes())
    finally:
        path.unlink(missing_ok=True)


async def _read_events(reader: asyncio.StreamReader, bus: EventBus, statuses: dict[str, PartitionStatus],
                       final: dict[str, Any], workdir: Path) -> None:
    async for line in read_lines(reader, max_line=None):
        try:
            record = json.loads(line)
            if record.get("kind") == "spilled":
                record = _unspill(record, workdir)
        except (OSError, ValueError) as exc:  # a stray write on the events descriptor must not end the run
            bus.log(f"unreadable run event ignored: {exc}", level="WARNING", source="run", host="localhost")
            continue
        kind = record.pop("kind")
        if kind == "PartitionEvent":
            event = PartitionEvent(**record)
            status = statuses[event.label]
            status.worker, status.status = event.worker, event.state
            status.seconds, status.error = event.seconds, event.error
            bus.emit(event)
        else:
            final[kind] = record


async def warm_runner(python: Path, worker_ref: str, cython_path: str | None, src_path: str, workdir: Path,
                      kept: bool = False) -> Any:
    """The warm runner of this worker environment and app, started now if it is not running; ``kept``:
    one that outlives this process (found again by later ones, see :data:`KEPT_STATE`)."""
    paths = [p for p in (cython_path, src_path) if p]
    # the environment's own packages change only through INSTALL, which rewrites its state file
    state = [python.parent.parent.parent / "install_state.json"]
    return await zygote_for(python, worker_ref.partition(":")[0], paths, workdir / "runner.log", state,
                            workdir / KEPT_STATE if kept else None)


async def _launch(job: Job, job_path: str, python: Path, workdir: Path, warm: bool, kept: bool,
                  fds: list[int]) -> tuple[Callable[[], Awaitable[int]], Callable[[], None]]:
    """Start the job with (stdout, stderr, events) write ends; returns (wait, kill).

    The run leads its own process group: ``kill`` ends it with its pool workers and anything the app
    started. It also dies with its parent (the warm runner, or this process).
    """
    if warm:
        zygote = await warm_runner(python, job.worker_ref, job.cython_path, job.src_path, workdir, kept)
        pid = await zygote.launch(job_path, fds)
        return (lambda: zygote.wait(pid)), (lambda: kill_group(pid))
    out, err, events = fds
    proc = await asyncio.create_subprocess_exec(
        str(python), "-m", "agilab_panel.runtime.runner", job_path, "--events-fd", str(events),
        "--parent-pid", str(os.getpid()),
        stdout=out, stderr=err, pass_fds=(events,), env=child_env(), cwd=str(workdir), process_group=0,
    )
    return proc.wait, (lambda: kill_group(proc.pid))


async def _collect(wait: Callable[[], Awaitable[int]]) -> None:
    """After a kill, let the run's exit be collected before going on (bounded; a second cancel does not stop it)."""
    with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError, Exception):
        await asyncio.wait_for(asyncio.shield(asyncio.ensure_future(wait())), 5)


def _prune(workdir: Path, keep: int = KEEP_FILES) -> None:
    """Job and event files of runs killed with their engine: keep the newest ``keep`` of each kind."""
    for pattern in ("job-*.json", f"{SPILL_PREFIX}*.json"):
        files = []
        for path in workdir.glob(pattern):
            with contextlib.suppress(OSError):
                files.append((path.stat().st_mtime, path))
        for _, path in sorted(files, reverse=True)[keep:]:
            path.unlink(missing_ok=True)


async def run_local(job: Job, python: Path, bus: EventBus, workdir: Path, *, warm: bool = True,
                    kept: bool = False) -> tuple[dict[str, Any], dict[str, PartitionStatus]]:
    """Run ``job`` with ``python``; returns the result record and the per-partition statuses.

    ``warm`` forks the run from the warm runner; ``kept`` keeps that runner after this process ends."""
    statuses = {p["label"]: PartitionStatus(label=p["label"], worker=slot) for slot, p in job.partitions()}
    workdir.mkdir(parents=True, exist_ok=True)
    _prune(workdir)
    fd, job_path = tempfile.mkstemp(prefix=f"job-{job.run_id}-", suffix=".json", dir=workdir)
    with os.fdopen(fd, "w") as handle:
        handle.write(job.to_json())
    pipes = [os.pipe() for _ in range(3)]
    final: dict[str, Any] = {}
    try:
        try:
            wait, kill = await _launch(job, job_path, python, workdir, warm or kept, kept, [w for _, w in pipes])
        finally:
            for _, w in pipes:
                os.close(w)
        try:  # from the launch on, any way out of here (a cancel while the pipes connect too) ends the run
            out, err, events = [await _reader(r) for r, _ in pipes]
            await asyncio.gather(
                _read_events(events, bus, statuses, final, workdir),
                stream_lines(out, bus, source="run", stream="stdout", host="localhost"),
                stream_lines(err, bus, source="run", stream="stderr", host="localhost"),
            )
            code = await wait()
        except BaseException:  # cancelled, or the engine failed to follow: the run must not go on alone
            kill()
            await _collect(wait)
            raise
    finally:
        Path(job_path).unlink(missing_ok=True)
        for path in workdir.glob(f"{SPILL_PREFIX}{job.run_id}-*"):
            path.unlink(missing_ok=True)
    if code != 0 or "result" not in final:
        raise _failure(job, code, statuses, final.get("error", {}), bus)
    return final["result"], statuses


def _failure(job: Job, code: int, statuses: dict[str, PartitionStatus], error: dict[str, Any],
             bus: EventBus) -> RunError:
    """The error of a failed run, naming the partition and the worker to blame."""
    failed = [s for s in statuses.values() if s.status == "failed"]
    if failed:
        first = failed[0]
        summary = first.error.splitlines()[0] if first.error else "failed"
        return RunError(f"partition {first.label} failed on worker {first.worker}: {summary}",
                        partition=first.label, worker=first.worker, details=first.error)
    text = error.get("error", "")
    running = [s for s in statuses.values() if s.status == "started"]
    dead: dict[str, int] = error.get("dead") or {}
    if not dead and running and (not text or error.get("broken")):  # the process itself died: mode 0, threads
        dead = {s.worker: code for s in running}
    blamed = [(s, dead[s.worker]) for s in running if s.worker in dead]
    if blamed:
        status, exit_code = blamed[0]
        why = f"worker {status.worker} died ({exit_text(exit_code)}) while running partition {status.label}"
        if len(blamed) > 1:
            why += " (also running: " + ", ".join(f"{s.label} on {s.worker}" for s, _ in blamed[1:]) + ")"
        for s, c in blamed:
            s.status, s.error = "failed", f"worker {s.worker} died ({exit_text(c)})"
            bus.emit(PartitionEvent(label=s.label, worker=s.worker, state="failed", seconds=s.seconds, error=s.error))
        return RunError(why, partition=status.label, worker=status.worker, details=text)
    if dead:  # a pool process died between partitions
        worker, exit_code = next(iter(dead.items()))
        return RunError(f"worker {worker} of the {job.app} run died ({exit_text(exit_code)})", worker=worker,
                        details=text)
    summary = text.splitlines()[0] if text else f"the worker process ended ({exit_text(code)})"
    return RunError(f"run of {job.app} failed on localhost: {summary}", worker="localhost", details=text)
