"""A local runner that ends is reaped by the engine, even when its socket closes well before it exits."""
from __future__ import annotations

import stat
import sys
from pathlib import Path

import psutil
import pytest

from agilab_panel.execute.zygote import Zygote
from proctable import until

pytestmark = pytest.mark.integration

# A stand-in runner: says ready, closes its control socket, then lingers before it exits. The engine's
# end-of-file comes while the process is still running, the window a killed runner also has.
_RUNNER = """#!{python}
import json, os, socket, sys, time
fd = int(sys.argv[sys.argv.index("--control-fd") + 1])
sock = socket.socket(fileno=fd)
sock.send(json.dumps({{"ready": os.getpid()}}).encode())
sock.close()
time.sleep(0.5)
"""


async def test_a_runner_whose_socket_closes_before_it_exits_is_not_left_a_zombie(tmp_path: Path):
    script = tmp_path / "runner"
    script.write_text(_RUNNER.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    zygote = Zygote(script, [], [], tmp_path / "runner.log")
    await zygote.start()
    assert zygote.proc is not None and zygote.pid == zygote.proc.pid
    pid = zygote.proc.pid
    assert await until(lambda: not zygote.connected)
    assert psutil.Process(pid).status() != psutil.STATUS_ZOMBIE  # still lingering after its end-of-file
    assert await until(lambda: not psutil.pid_exists(pid), tries=200), psutil.Process(pid).status()  # not a zombie
    assert zygote.proc.returncode == 0
    await zygote.close()
