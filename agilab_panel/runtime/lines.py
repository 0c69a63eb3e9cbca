"""Whole lines on a shared pipe: what a run and its threads and pool processes print is never interleaved.

They all write to the same stdout and stderr pipes. A write longer than PIPE_BUF is not atomic, so
two workers printing long lines at once would mix them. :class:`WholeLines` stands in for
``sys.stdout``/``sys.stderr``: it keeps each thread's text until a newline (or a flush), then writes
the complete lines under one lock shared by the process and the pool processes forked from it.
Text written below Python (a C library writing to the descriptor) bypasses it.
"""
from __future__ import annotations

import io
import multiprocessing
import os
import sys
import threading
from typing import Any

__all__ = ["WholeLines", "serialize_output"]

LOCK_WAIT = 2.0  # seconds; a process killed while writing must not silence the others for good


class WholeLines(io.TextIOBase):
    """A text stream on descriptor ``fd`` that writes whole lines, one writer at a time."""

    encoding = "utf-8"
    errors = "backslashreplace"

    def __init__(self, fd: int, lock: Any, buffer: Any = None) -> None:
        super().__init__()
        self._fd, self._lock, self._buffer = fd, lock, buffer
        self._local = threading.local()

    @property
    def buffer(self) -> Any:  # for code writing bytes directly: it works, unserialized
        return self._buffer

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        head, newline, tail = (getattr(self._local, "pending", "") + text).rpartition("\n")
        self._local.pending = tail
        if newline:
            self._put(head + newline)
        return len(text)

    def flush(self) -> None:
        pending = getattr(self._local, "pending", "")
        if pending:
            self._local.pending = ""
            self._put(pending)

    def _put(self, text: str) -> None:
        data = memoryview(text.encode(self.encoding, self.errors))
        locked = self._lock.acquire(timeout=LOCK_WAIT)
        try:
            while data:
                data = data[os.write(self._fd, data):]
        finally:
            if locked:
                self._lock.release()


def serialize_output() -> None:
    """Replace ``sys.stdout`` and ``sys.stderr`` with :class:`WholeLines` sharing one lock (call before forking)."""
    try:
        lock: Any = multiprocessing.get_context("fork").Lock()
    except (OSError, ImportError):  # no shared semaphores here: whole lines within this process at least
        lock = threading.Lock()
    for name, fd in (("stdout", 1), ("stderr", 2)):
        old = getattr(sys, name)
        if old is not None:
            old.flush()
        setattr(sys, name, WholeLines(fd, lock, getattr(old, "buffer", None)))
