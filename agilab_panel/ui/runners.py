"""Warm local runners shared by the sessions of one server: one per app, ended when unused.

A page open in a browser holds its app's runner (``AGI.warm``, so the first RUN is warm); a plain GET,
which never loads the page, holds nothing and starts nothing. When the last session holding an app
is gone, and its running action has ended, the runner stops (``AGI.cool``): a visitor who only looked
leaves no process behind, and many visitors share one runner instead of one each.
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any

from ..agi import AGI
from ..env import AgiEnv

__all__ = ["WarmRunners", "RUNNERS"]


def _key(env: AgiEnv) -> tuple[str, str]:
    return env.app, str(env.wenv_path())


class WarmRunners:
    """Which session holds which app's runner; starts the first and stops after the last."""

    def __init__(self) -> None:
        self._held: dict[int, tuple[tuple[str, str], AgiEnv]] = {}  # id(holder) -> app key, env
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task] = set()

    def holders(self, env: AgiEnv) -> int:
        """How many sessions hold this app's runner now."""
        with self._lock:
            return sum(1 for key, _ in self._held.values() if key == _key(env))

    def hold(self, holder: object, env: AgiEnv, *, warm: bool = True) -> None:
        """``holder`` shows ``env``'s app now (another app it held is released); start its runner if ``warm``."""
        with self._lock:
            previous = self._held.get(id(holder))
            self._held[id(holder)] = (_key(env), env)
        if previous is not None and previous[0] != _key(env):
            self._cool_if_unused(previous)
        if warm:
            self._spawn(AGI.warm(env))

    def drop(self, holder: object, after: asyncio.Future | None = None) -> None:
        """``holder`` is gone: release its app once ``after`` (its running action) has ended."""
        if after is not None and not after.done():
            after.add_done_callback(lambda _: self.drop(holder))
            return
        with self._lock:
            previous = self._held.pop(id(holder), None)
        if previous is not None:
            self._cool_if_unused(previous)

    def _cool_if_unused(self, entry: tuple[tuple[str, str], AgiEnv]) -> None:
        key, env = entry

        async def cool() -> None:
            with self._lock:
                if any(k == key for k, _ in self._held.values()):
                    return  # held again meanwhile
            await AGI.cool(env)

        self._spawn(cool())

    def _spawn(self, coro: Any) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            coro.close()  # no event loop: nothing was started that needs stopping
            return
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # a failed warm-up is not an error: the first RUN reports the real one

    async def settle(self) -> None:
        """Wait for the starts and stops under way (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


RUNNERS = WarmRunners()
