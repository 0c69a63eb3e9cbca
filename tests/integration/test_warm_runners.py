"""Warm local runners: one per app however many ask at once, ended when the last holder lets go."""
from __future__ import annotations

import asyncio

import psutil
import pytest

from agilab_panel import AGI, AgiEnv
from agilab_panel.ui.runners import WarmRunners

pytestmark = pytest.mark.integration
MARKER = "agilab_panel.runtime.zygote"


def _runners() -> list[int]:
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if MARKER in " ".join(proc.cmdline()) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


@pytest.fixture
async def env(installed, use_home):
    use_home(installed("minimal_app"))
    try:
        yield AgiEnv("minimal_app", verbose=0)
    finally:
        await AGI.shutdown()


async def test_warm_ups_asked_at_once_start_one_runner(env):
    before = set(_runners())
    assert await asyncio.gather(*(AGI.warm(env) for _ in range(4))) == [True] * 4
    assert len(set(_runners()) - before) == 1
    await AGI.cool(env)
    assert set(_runners()) == before


async def test_the_runner_ends_with_its_last_holder_and_after_its_running_action(env):
    runners = WarmRunners()
    first, second, third = object(), object(), object()
    runners.hold(first, env)
    runners.hold(second, env)
    await runners.settle()
    held = _runners()
    assert len(held) == 1 and runners.holders(env) == 2
    runners.drop(first)
    await runners.settle()
    assert _runners() == held  # the other holder still uses it

    action = asyncio.get_running_loop().create_future()  # the second holder's RUN, still going
    runners.drop(second, after=action)
    await runners.settle()
    assert _runners() == held and runners.holders(env) == 1
    action.set_result(None)
    await asyncio.sleep(0)  # the action's done callbacks run
    await runners.settle()
    assert runners.holders(env) == 0 and _runners() == []

    runners.hold(third, env, warm=False)  # holding an app does not start its runner by itself
    await runners.settle()
    assert _runners() == []
    await AGI.warm(env)  # ... a RUN does, and the holder's release ends it too
    runners.drop(third)
    await runners.settle()
    assert _runners() == []


async def test_a_holder_that_turns_to_another_app_releases_the_first(env):
    runners = WarmRunners()
    page = object()
    runners.hold(page, env)
    await runners.settle()
    assert len(_runners()) == 1
    runners.hold(page, AgiEnv("mandelbrot", verbose=0), warm=False)  # the page now shows another app
    await runners.settle()
    assert runners.holders(env) == 0 and _runners() == []
