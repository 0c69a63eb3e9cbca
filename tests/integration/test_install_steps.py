"""An install step's process: what it starts ends with it on cancel, and any output line is carried."""
from __future__ import annotations

import asyncio
import sys

import psutil
import pytest

from agilab_panel.events import EventBus
from agilab_panel.install import _stream

pytestmark = pytest.mark.integration

# a step that starts a helper of its own (as uv starts builds, Cythonize a compiler) and waits
_STEP = ("import subprocess, sys, time\n"
         "helper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
         "print('helper', helper.pid, flush=True)\n"
         "time.sleep(300)\n")


async def test_a_cancelled_step_ends_the_processes_it_started(tmp_path):
    bus = EventBus()
    task = asyncio.create_task(_stream([sys.executable, "-c", _STEP], bus, "localhost", "app", tmp_path))
    helper = None
    for _ in range(600):
        helper = next((int(e.text.split()[1]) for e in bus.logs() if e.text.startswith("helper ")), None)
        if helper:
            break
        await asyncio.sleep(0.05)
    assert helper and psutil.pid_exists(helper)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(200):
        if not psutil.pid_exists(helper) or psutil.Process(helper).status() == psutil.STATUS_ZOMBIE:
            break
        await asyncio.sleep(0.05)
    assert not psutil.pid_exists(helper) or psutil.Process(helper).status() == psutil.STATUS_ZOMBIE


async def test_a_step_printing_a_line_of_several_megabytes_goes_on(tmp_path):
    bus = EventBus()
    code, tail = await _stream([sys.executable, "-c", "print('x' * 3_000_000); print('done')"], bus, "localhost",
                               "app", tmp_path)
    printed = [e.text for e in bus.logs() if e.stream == "stdout"]
    assert code == 0 and tail[-1] == "done" and "".join(printed[:-1]) == "x" * 3_000_000
