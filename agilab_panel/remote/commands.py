"""Remote commands: always one ``shlex.join`` of an argument list, never a joined user string.

Output is streamed line by line as the host writes it, tagged with the host and step, into the same
:class:`EventBus` the local install writes to.
"""
from __future__ import annotations

import asyncio
import shlex
from collections import deque
from collections.abc import Sequence

import asyncssh

from ..events import EventBus, LogLine
from .errors import RemoteHostError

__all__ = ["command_line", "run_captured", "run_streamed"]


def command_line(argv: Sequence[str]) -> str:
    """The one string sent to the remote shell: every argument quoted."""
    if isinstance(argv, (str, bytes)) or not argv or not all(isinstance(a, str) for a in argv):
        raise TypeError(f"a remote command is a non-empty list of strings, got {argv!r}")
    return shlex.join(argv)


async def run_captured(conn: asyncssh.SSHClientConnection, argv: Sequence[str], host: str,
                       timeout: float = 120.0) -> asyncssh.SSHCompletedProcess:
    """Run a short command and return its completed process (exit code, stdout, stderr)."""
    try:
        return await asyncio.wait_for(conn.run(command_line(argv), check=False, stdin=asyncssh.DEVNULL), timeout)
    except (asyncssh.Error, OSError, asyncio.TimeoutError) as exc:
        raise RemoteHostError(host, "unreachable", f"lost while running {argv[0]}: {exc or type(exc).__name__}") from None


async def run_streamed(conn: asyncssh.SSHClientConnection, argv: Sequence[str], bus: EventBus, host: str,
                       step: str, source: str = "install") -> tuple[int, list[str]]:
    """Run ``argv`` on the host, emitting each output line when written; (exit code, last 40 lines)."""
    line = command_line(argv)
    bus.emit(LogLine(text=f"[{host}] $ {line}", source=source, host=host, step=step))
    tail: deque[str] = deque(maxlen=40)
    try:
        proc = await conn.create_process(line, stdin=asyncssh.DEVNULL, encoding="utf-8", errors="replace")
    except (asyncssh.Error, OSError) as exc:
        raise RemoteHostError(host, "unreachable", f"lost while starting {argv[0]}: {exc}") from None

    async def pump(reader: asyncssh.SSHReader, stream: str) -> None:
        async for text in reader:
            text = text.rstrip("\r\n")
            tail.append(text)
            bus.emit(LogLine(text=text, source=source, stream=stream, host=host, step=step))  # type: ignore[arg-type]

    try:
        await asyncio.gather(pump(proc.stdout, "stdout"), pump(proc.stderr, "stderr"))
        done = await proc.wait(check=False)
    except (asyncssh.Error, OSError) as exc:
        raise RemoteHostError(host, "unreachable", f"lost while running {argv[0]}: {exc}") from None
    finally:
        proc.close()
    code = done.exit_status if done.exit_status is not None else 255  # killed by a signal
    return code, list(tail)
