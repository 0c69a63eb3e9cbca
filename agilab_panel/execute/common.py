"""Pieces every executor shares: the job built from a plan, subprocess log streaming."""
from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from ..env import AgiEnv
from ..events import EventBus, LogLine
from ..plan import WorkPlan
from ..runtime.job import Job

__all__ = ["make_job", "read_lines", "take_pieces", "stream_lines", "child_env", "MAX_LINE"]

MAX_LINE = 1 << 20  # bytes: a longer line is passed on in pieces of this size, nothing dropped


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
        extra={"summary": env.spec.summary} if env.spec.summary else {},
    )


def take_pieces(line: bytearray, max_line: int | None) -> list[bytes]:
    """Remove and return leading pieces of ``max_line`` bytes while more than that is left, cut between
    UTF-8 characters (a continuation byte never starts a piece unless the data is not UTF-8)."""
    pieces = []
    while max_line and len(line) > max_line:
        cut = max_line
        while cut > max_line - 3 and (line[cut] & 0xC0) == 0x80:
            cut -= 1
        if (line[cut] & 0xC0) == 0x80:
            cut = max_line
        pieces.append(bytes(line[:cut]))
        del line[:cut]
    return pieces


async def read_lines(reader: asyncio.StreamReader, max_line: int | None = MAX_LINE) -> AsyncIterator[bytes]:
    """Each line of ``reader`` (without its newline), whatever its length.

    ``readline`` raises past the reader's buffer limit (64 kB by default), which would end a run
    over one long print; here such a line is read whole, and one over ``max_line`` bytes comes
    out in pieces of that size, so memory stays bounded and nothing is lost.
    """
    line = bytearray()
    while True:
        try:
            line += (await reader.readuntil(b"\n"))[:-1]
            ended: bool | None = True
        except asyncio.LimitOverrunError as exc:  # no newline within the buffer limit yet: keep reading
            line += await reader.readexactly(exc.consumed)
            ended = False
        except asyncio.IncompleteReadError as exc:  # end of stream; the last line may lack its newline
            line += exc.partial
            ended = None
        for piece in take_pieces(line, max_line):
            yield piece
        if ended is None:
            if line:
                yield bytes(line)
            return
        if ended:
            yield bytes(line)
            line.clear()


async def stream_lines(reader: asyncio.StreamReader, bus: EventBus, *, source: str, stream: str, host: str | None = None) -> None:
    """Forward each line as it is written; stderr lines that look like errors are marked so."""
    async for raw in read_lines(reader):
        text = raw.decode(errors="replace").rstrip("\r")
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
