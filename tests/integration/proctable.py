"""Reading the process table in tests: which processes still run, which are zombies, waiting for either."""
from __future__ import annotations

import asyncio
from collections.abc import Callable

import psutil


def running(pids: set[int]) -> set[int]:
    """The pids that are still a running process (a zombie has ended; only its parent has not collected it)."""
    alive = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.add(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def zombies_below(pid: int) -> list[psutil.Process]:
    """Ended processes below ``pid`` that nobody collected."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


async def until(check: Callable[[], bool], tries: int = 2400) -> bool:
    """Poll ``check`` 50 ms apart until it holds (a guard against hanging, two minutes at most); its last answer."""
    for _ in range(tries):
        if check():
            return True
        await asyncio.sleep(0.05)
    return check()
