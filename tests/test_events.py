"""EventBus: one ordered stream of typed events for listeners and async subscribers."""
from __future__ import annotations

import asyncio
import io
import threading
import time

from agilab_panel.events import (
    EventBus,
    LogLine,
    PartitionEvent,
    RunEvent,
    StepEvent,
    WorkerEvent,
    event_from_dict,
    stderr_printer,
)


async def take(subscription, count: int, timeout: float = 5.0) -> list:
    """The next ``count`` events of ``subscription``."""

    async def collect():
        return [await subscription.__anext__() for _ in range(count)]

    return await asyncio.wait_for(collect(), timeout)


async def subscribed(bus: EventBus):
    """A subscription, and its first event still to come."""
    subscription = bus.subscribe()
    first = asyncio.ensure_future(subscription.__anext__())
    return subscription, first


def sample_events():
    return [
        StepEvent(host="127.0.0.1", step="venv", state="started"),
        LogLine(text="hello", source="install", host="127.0.0.1"),
        StepEvent(host="127.0.0.1", step="venv", state="done", seconds=1.5),
        RunEvent(app="minimal_app", mode=5, state="started"),
        PartitionEvent(label="p0", worker="127.0.0.1-0", state="done", seconds=0.1),
        WorkerEvent(worker="127.0.0.1-0", state="heartbeat"),
    ]


def test_listeners_get_every_event_in_order():
    bus = EventBus()
    seen_a, seen_b = [], []
    bus.add_listener(seen_a.append)
    bus.add_listener(seen_b.append)
    events = sample_events()
    for event in events:
        bus.emit(event)
    assert seen_a == events
    assert seen_b == events
    assert bus.history == events


def test_removed_listener_stops_receiving():
    bus = EventBus()
    seen = []
    remove = bus.add_listener(seen.append)
    bus.log("one")
    remove()
    remove()  # removing twice is harmless
    bus.log("two")
    assert [e.text for e in seen] == ["one"]


def test_a_failing_listener_does_not_break_emit(capsys):
    bus = EventBus()
    seen = []

    def broken(event):
        raise RuntimeError("listener bug")

    bus.add_listener(broken)
    bus.add_listener(seen.append)
    bus.log("still delivered")
    bus.log("and again")
    assert [e.text for e in seen] == ["still delivered", "and again"]
    assert "listener bug" in capsys.readouterr().err


def test_history_is_bounded():
    bus = EventBus(history=3)
    for i in range(5):
        bus.log(str(i))
    assert [e.text for e in bus.history] == ["2", "3", "4"]
    assert [e.text for e in bus.logs()] == ["2", "3", "4"]


async def test_async_subscriber_and_listener_see_the_same_order():
    bus = EventBus()
    heard = []
    bus.add_listener(heard.append)
    subscription, first = await subscribed(bus)
    events = sample_events()
    for event in events:
        bus.emit(event)
    received = [await asyncio.wait_for(first, 5)] + await take(subscription, len(events) - 1)
    assert received == events
    assert heard == events
    await subscription.aclose()


async def test_two_subscribers_each_get_everything():
    bus = EventBus()
    (sub_a, first_a), (sub_b, first_b) = await subscribed(bus), await subscribed(bus)
    for i in range(10):
        bus.log(f"line {i}")
    for sub, first in ((sub_a, first_a), (sub_b, first_b)):
        received = [await asyncio.wait_for(first, 5)] + await take(sub, 9)
        assert [e.text for e in received] == [f"line {i}" for i in range(10)]
        await sub.aclose()


async def test_emit_from_another_thread_reaches_an_async_subscriber():
    bus = EventBus()
    subscription, first = await subscribed(bus)
    emitter_threads = []

    def produce():
        emitter_threads.append(threading.get_ident())
        for i in range(50):
            time.sleep(0.002)  # the subscriber's loop is idle, waiting: the event must wake it
            bus.log(f"from thread {i}", source="worker")

    thread = threading.Thread(target=produce)
    started = time.monotonic()
    thread.start()
    received = [await asyncio.wait_for(first, 10)] + await take(subscription, 49, timeout=10)
    elapsed = time.monotonic() - started
    thread.join(5)
    # Without a thread-safe wake-up the idle loop only notices the events when a timer fires.
    assert elapsed < 5, f"events from another thread took {elapsed:.1f}s to arrive"
    assert emitter_threads and emitter_threads[0] != threading.get_ident()
    assert [e.text for e in received] == [f"from thread {i}" for i in range(50)]
    await subscription.aclose()


async def test_closed_subscription_is_unregistered():
    bus = EventBus()
    subscription, first = await subscribed(bus)
    assert len(bus._queues) == 1
    bus.log("last")
    assert (await asyncio.wait_for(first, 5)).text == "last"
    await subscription.aclose()
    assert bus._queues == []
    bus.log("nobody listens")  # must not fail


def test_events_round_trip_through_dicts():
    for event in sample_events():
        data = event.to_dict()
        assert data["kind"] == type(event).__name__
        assert event_from_dict(data) == event


def test_stderr_printer_filters_by_verbosity():
    out = io.StringIO()
    printer = stderr_printer(min_level=1, out=out)
    printer(LogLine(text="visible", host="h1"))
    printer(LogLine(text="debug only", level="DEBUG"))
    printer(StepEvent(host="h1", step="venv", state="started"))
    printer(StepEvent(host="h1", step="venv", state="done", seconds=2.0))
    printer(PartitionEvent(label="p0", worker="w", state="done"))
    assert out.getvalue().splitlines() == ["[h1] visible", "[h1] venv: done (2.00s) "]

    verbose = io.StringIO()
    printer = stderr_printer(min_level=3, out=verbose)
    printer(LogLine(text="debug only", level="DEBUG"))
    printer(PartitionEvent(label="p0", worker="w", state="done"))
    assert verbose.getvalue().splitlines() == ["debug only", "partition p0 on w: done "]


async def test_a_subscription_misses_nothing_emitted_before_its_first_iteration():
    bus = EventBus()
    subscription = bus.subscribe()
    bus.log("early")  # nobody is awaiting the subscription yet
    async with subscription:
        event = await asyncio.wait_for(subscription.__anext__(), 1)
    assert event.text == "early"
    bus.log("after close")
    assert [e async for e in subscription] == []

