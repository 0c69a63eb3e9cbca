"""Events: the one stream that feeds the CLI, the dashboard and the tests.

Install steps, log lines, partition progress and worker heartbeats are typed records; nothing
downstream parses log text to learn what happened. An :class:`EventBus` fans them out to
listeners (called synchronously, in the emitting thread) and to async subscribers (each with its own
queue), so a caller can ``async for event in bus.subscribe()`` while a run goes on.
"""
from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TextIO

__all__ = [
    "Event",
    "LogLine",
    "StepEvent",
    "PartitionEvent",
    "WorkerEvent",
    "RunEvent",
    "EventBus",
    "Subscription",
    "event_from_dict",
    "stderr_printer",
]

Level = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


@dataclass(frozen=True)
class Event:
    time: float = field(default_factory=time.time, kw_only=True)

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class LogLine(Event):
    """One line written by a step, a worker or the engine."""

    text: str
    source: str = "engine"  # "install", "run", "worker", "scheduler", "engine"
    stream: Literal["stdout", "stderr", "log"] = "log"
    level: Level = "INFO"
    host: str | None = None
    step: str | None = None


@dataclass(frozen=True)
class StepEvent(Event):
    """An install step on one host: started, done (ok or not) or skipped."""

    host: str
    step: str
    state: Literal["started", "done", "failed", "skipped"]
    seconds: float = 0.0
    detail: str = ""
    parts: dict[str, float] = field(default_factory=dict)  # where the time went (StepResult.parts)


@dataclass(frozen=True)
class PartitionEvent(Event):
    """A partition of the plan started, finished or failed on a worker."""

    label: str
    worker: str
    state: Literal["started", "done", "failed"]
    seconds: float = 0.0
    error: str = ""


@dataclass(frozen=True)
class WorkerEvent(Event):
    """A worker joined, sent a heartbeat, or left."""

    worker: str
    state: Literal["joined", "heartbeat", "left"]
    address: str = ""
    detail: str = ""
    age: float | None = None  # heartbeats: seconds since the scheduler last heard from the worker


@dataclass(frozen=True)
class RunEvent(Event):
    """A run (one mode) began or ended."""

    app: str
    mode: int
    state: Literal["started", "done", "failed"]
    seconds: float = 0.0
    detail: str = ""


_KINDS = {cls.__name__: cls for cls in (LogLine, StepEvent, PartitionEvent, WorkerEvent, RunEvent)}


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event sent across a process boundary as JSON."""
    data = dict(data)
    cls = _KINDS[data.pop("kind")]
    return cls(**data)


class EventBus:
    """Fan-out of events to listeners and async subscribers; safe to emit from any thread."""

    def __init__(self, history: int = 10_000) -> None:
        self._listeners: list[Callable[[Event], None]] = []
        self._queues: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = []
        self._lock = threading.Lock()
        self._history_limit = history
        self.history: list[Event] = []

    def add_listener(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for each event; returns a function that removes it."""
        with self._lock:
            self._listeners.append(callback)

        def remove() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return remove

    def emit(self, event: Event) -> None:
        with self._lock:
            self.history.append(event)
            if len(self.history) > self._history_limit:
                del self.history[: len(self.history) - self._history_limit]
            listeners = list(self._listeners)
            queues = list(self._queues)
        for callback in listeners:
            try:
                callback(event)
            except Exception as exc:  # a broken listener must not break the run it watches
                print(f"event listener failed: {exc!r}", file=sys.stderr)
        for loop, queue in queues:
            if loop.is_closed():
                continue
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                queue.put_nowait(event)
            else:
                loop.call_soon_threadsafe(queue.put_nowait, event)

    def log(self, text: str, *, level: Level = "INFO", source: str = "engine", **kw: Any) -> None:
        self.emit(LogLine(text=text, level=level, source=source, **kw))

    def subscribe(self) -> Subscription:
        """Follow events from now on: ``async for event in bus.subscribe()`` (or ``async with``).

        The subscription is registered when this returns, so no event emitted after the call is
        missed, however late the first iteration comes. Call from a running event loop.
        """
        return Subscription(self)

    def _register(self, entry: tuple[asyncio.AbstractEventLoop, asyncio.Queue]) -> None:
        with self._lock:
            self._queues.append(entry)

    def _unregister(self, entry: tuple[asyncio.AbstractEventLoop, asyncio.Queue]) -> None:
        with self._lock:
            if entry in self._queues:
                self._queues.remove(entry)

    def logs(self) -> list[LogLine]:
        return [e for e in self.history if isinstance(e, LogLine)]


class Subscription:
    """One async subscriber's queue of events; ``aclose()`` (or leaving ``async with``) ends it."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._entry = (asyncio.get_running_loop(), asyncio.Queue())
        bus._register(self._entry)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        if self._bus is None:
            raise StopAsyncIteration
        return await self._entry[1].get()

    async def aclose(self) -> None:
        if self._bus is not None:
            self._bus._unregister(self._entry)
            self._bus = None

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        if self._bus is not None:
            self._bus._unregister(self._entry)


def stderr_printer(min_level: int = 1, out: TextIO | None = None) -> Callable[[Event], None]:
    """A listener that prints log lines (and step/partition changes at verbose >= 2) as they come."""

    def _print(event: Event) -> None:
        stream = out or sys.stderr
        if isinstance(event, LogLine):
            if event.level == "DEBUG" and min_level < 3:
                return
            where = f"[{event.host}] " if event.host else ""
            stream.write(f"{where}{event.text}\n")
        elif isinstance(event, StepEvent) and min_level >= 1 and event.state != "started":
            stream.write(f"[{event.host}] {event.step}: {event.state} ({event.seconds:.2f}s) {event.detail}\n")
        elif isinstance(event, PartitionEvent) and min_level >= 2:
            stream.write(f"partition {event.label} on {event.worker}: {event.state} {event.error}\n")
        else:
            return
        stream.flush()

    return _print
