"""An app's ``prepare()`` (and ``partitions()``, which may prepare too), run so that a cancel stops it.

Apps generate their inputs in plain Python in the engine process. A thread that ``asyncio.to_thread``
started runs on after its caller is cancelled, and its writes then meet those of the next prepare.
Here the work runs in a thread of its own: a cancel raises :class:`PrepareCancelled` inside it (at
its next Python instruction; a C call under way ends first) and waits until the thread has ended,
so when the cancelled call returns nothing writes any more. A file lock per ``data_in`` makes two
prepares of the same inputs, in one process or several, take turns.
"""
from __future__ import annotations

import asyncio
import ctypes
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from filelock import FileLock, Timeout

from .events import EventBus

__all__ = ["PrepareCancelled", "THREAD_PREFIX", "run_interruptible", "prepare_lock_path", "locked_prepare"]

T = TypeVar("T")
THREAD_PREFIX = "agilab-prepare"
STOP_GRACE = 30.0  # seconds a cancel waits for the work to reach a Python instruction and stop


class PrepareCancelled(BaseException):
    """Raised inside a prepare thread whose caller was cancelled.

    A BaseException, so an app's ``except Exception`` lets it through.
    """


def _raise_in(thread: threading.Thread) -> None:
    if thread.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(PrepareCancelled))


async def run_interruptible(fn: Callable[[], T], *, name: str = THREAD_PREFIX) -> T:
    """``fn()`` in a thread of its own; cancelling the caller stops ``fn`` before the cancel completes."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future = loop.create_future()
    guard = threading.Lock()
    running = [True]  # interrupts are sent only while fn runs, never into the lines after it

    def settle(value: Any, error: BaseException | None) -> None:
        if done.done():  # the caller was cancelled
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(value)

    def target() -> None:
        try:
            value, error = None, None
            try:
                value = fn()
            except BaseException as exc:
                error = exc
            with guard:
                running[0] = False
            loop.call_soon_threadsafe(settle, value, error)
        except PrepareCancelled:  # the one interrupt, landing just after fn ended: the caller is gone
            pass
        except RuntimeError:  # the caller's loop is closed: nobody waits for the outcome
            pass

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    try:
        return await done
    except asyncio.CancelledError:
        with guard:
            if running[0]:
                _raise_in(thread)
        deadline = loop.time() + STOP_GRACE
        while thread.is_alive() and loop.time() < deadline:
            try:
                await asyncio.sleep(0.02)
            except asyncio.CancelledError:  # cancelled again: still wait for the stop, then go
                continue
        raise


def prepare_lock_path(data_in: Path) -> Path:
    """The lock of one input folder: beside it, so every process using that folder finds the same one."""
    data_in = Path(data_in).resolve()
    return data_in.parent / f".{data_in.name or 'root'}.prepare.lock"


def locked_prepare(manager: Any, data_in: Path, bus: EventBus | None, app: str,
                   partitions: bool) -> list[Any] | None:
    """``manager.prepare()`` (then ``partitions()`` when asked) holding the lock of ``data_in``.

    Meant to run in :func:`run_interruptible`: waiting for the lock is interruptible too.
    """
    path = prepare_lock_path(data_in)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path), thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if bus is not None:
            bus.log(f"another prepare of {app} inputs in {data_in} is running: waiting for it", source="distrib")
        lock.acquire(poll_interval=0.05)
    try:
        manager.prepare()
        return manager.partitions() if partitions else None
    finally:
        lock.release()
