"""A service worker started again gets the environment, folder and session its cluster gave it at start."""
from __future__ import annotations

import json
import os
import sys
import time

from agilab_panel.execute.cluster import dask_process_env
from agilab_panel.service.cluster import respawn_worker

_PROBE = ("import json, os; print(json.dumps({'env': dict(os.environ), 'cwd': os.getcwd(), "
          "'sid': os.getsid(0), 'pid': os.getpid()}))")


def _wait_exit(pid: int) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, 9)
    raise AssertionError(f"the respawned process {pid} did not end")


def test_respawned_worker_gets_the_cluster_process_environment(tmp_path):
    cython = str(tmp_path / "cython")
    pid = respawn_worker([sys.executable, "-c", _PROBE], str(tmp_path), "127.0.0.1-0", cython)
    assert _wait_exit(pid) == 0
    seen = json.loads((tmp_path / "127.0.0.1-0.log").read_text().strip().splitlines()[-1])
    expected = dask_process_env(cython)
    for key in ("DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES", "DASK_DISTRIBUTED__WORKER__DAEMON", "PYTHONPATH",
                "UV_PYTHON_DOWNLOADS", "PYTHONUNBUFFERED"):
        assert seen["env"].get(key) == expected[key], key
    assert expected["PYTHONPATH"] == cython
    assert "VIRTUAL_ENV" not in seen["env"] and "PYTHONHOME" not in seen["env"]
    assert seen["pid"] == pid and seen["sid"] == pid  # its own session: it outlives whoever restarted it
    assert os.path.realpath(seen["cwd"]) == os.path.realpath(tmp_path)


def test_no_cython_path_no_pythonpath():
    assert "PYTHONPATH" not in dask_process_env(None)
    assert "PYTHONPATH" not in dask_process_env("")
