"""Shared fixtures: every test runs against per-test folders, never the real ~/.agilab or ~/log.

Real worker environments are slow to build, so each (app, modes) pair is installed once per session:
``installed`` returns the folders of a home where the app is installed; ``use_home`` points the
environment variables of the running test at them.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agilab_panel import AGI, AgiEnv, EventBus

FAULTY_APPS = Path(__file__).parent / "integration" / "apps"  # a test app whose partitions fail on demand


@pytest.fixture(autouse=True)
def agilab_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Point every per-user path of SPEC §3 at a temporary folder and drop extra app folders."""
    dirs = {
        "AGILAB_HOME": tmp_path / "agilab_home",
        "AGI_CLUSTER_SHARE": tmp_path / "share",
        "AGILAB_EXPORT_ABS": tmp_path / "export",
        "AGILAB_LOG_ABS": tmp_path / "log" / "execute",
    }
    for name, path in dirs.items():
        monkeypatch.setenv(name, str(path))
    monkeypatch.delenv("AGILAB_APPS_PATH", raising=False)
    return dirs


@pytest.fixture(autouse=True)
def no_warm_runner_left() -> Iterator[None]:
    """A test's warm runners end with it, whether or not it shut the engine down: later tests count runners."""
    yield
    from agilab_panel.execute.zygote import kill_zygotes

    kill_zygotes()


_VARS = ("AGILAB_HOME", "AGI_CLUSTER_SHARE", "AGILAB_EXPORT_ABS", "AGILAB_LOG_ABS")


def home_dirs(root: Path) -> dict[str, Path]:
    return {
        "AGILAB_HOME": root / "agilab_home",
        "AGI_CLUSTER_SHARE": root / "share",
        "AGILAB_EXPORT_ABS": root / "export",
        "AGILAB_LOG_ABS": root / "log" / "execute",
    }


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., dict[str, Path]]:
    cache: dict[tuple, dict[str, Path]] = {}

    def install(app: str, modes_enabled: int = AGI.POOL_MODE | AGI.CYTHON_MODE | AGI.DASK_MODE,
                apps_path: Path | None = None) -> dict[str, Path]:
        key = (app, modes_enabled, str(apps_path))
        if key in cache:
            return cache[key]
        dirs = home_dirs(tmp_path_factory.mktemp(f"home-{app}"))
        with pytest.MonkeyPatch.context() as mp:
            for name, path in dirs.items():
                mp.setenv(name, str(path))
            env = AgiEnv(app, apps_path=apps_path, verbose=0)
            coro = AGI.install(env, workers={"127.0.0.1": 2}, modes_enabled=modes_enabled, events=EventBus())
            with ThreadPoolExecutor(1) as pool:  # tests calling this may already run an event loop
                result = pool.submit(asyncio.run, coro).result()
        assert result.ok, result.to_dict()
        cache[key] = dirs
        return dirs

    return install


@pytest.fixture
def use_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, Path]], None]]:
    """Point the test at a shared installed home; the settings a test saves there are put back after it.

    Saving args changes only the keys given, so without this a value one test saved (``fail_on=1``)
    would carry over into every later test of the same home.
    """
    saved: dict[Path, bytes] = {}

    def use(dirs: dict[str, Path]) -> None:
        for name, path in dirs.items():
            monkeypatch.setenv(name, str(path))
        for settings in (dirs["AGILAB_HOME"] / "apps").glob("*/app_settings.toml"):
            saved.setdefault(settings, settings.read_bytes())

    yield use
    for settings, content in saved.items():
        if not settings.exists() or settings.read_bytes() != content:
            settings.write_bytes(content)


@pytest.fixture
def live_children() -> Callable[[], set[int]]:
    """Pids of this process's live children (Dask schedulers and workers included)."""
    import psutil

    def children() -> set[int]:
        return {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE}

    return children


# A writer that stops inside the atomic block until told to go on (or is killed there).
_STALLED_WRITER = textwrap.dedent("""
    import sys
    from agilab_panel.fsutil import atomic_path
    with atomic_path(sys.argv[1]) as tmp:
        tmp.write_text("half of it")
        print(tmp, flush=True)
        sys.stdin.readline()
        tmp.write_text("from the writer\\n")
""")


@pytest.fixture
def stalled_writer() -> Iterator[Callable[[Path], tuple[subprocess.Popen, Path]]]:
    """Start a process that writes ``target`` atomically and stops mid-write; returns it and its temp file."""
    started: list[subprocess.Popen] = []

    def start(target: Path) -> tuple[subprocess.Popen, Path]:
        proc = subprocess.Popen([sys.executable, "-c", _STALLED_WRITER, str(target)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        started.append(proc)
        tmp = Path(proc.stdout.readline().strip())
        assert tmp.is_file() and tmp.parent == Path(os.path.realpath(target)).parent
        return proc, tmp

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def sim_hosts() -> Iterator[object]:
    """Two simulated remote hosts with real OpenSSH servers (``tests/remote/simhosts.py``), made once per
    session for every folder that uses them (remote/, ui/). Where they cannot be made (not root, no
    ``ip`` or sshd), the tests using them are skipped with the reason."""
    from remote.simhosts import SimHosts, unavailable

    reason = unavailable()
    if reason:
        pytest.skip(reason)
    hosts = SimHosts(2)
    try:
        hosts.start()
        for host in hosts.hosts:  # the machine's Python must be usable by the host's own user
            version = host.run_as_user("/usr/bin/python3", "-c", "import sys; print(sys.version_info >= (3, 11))")
            if version.strip() != "True":
                pytest.skip(f"the Python of host {host.address} is older than 3.11")
        yield hosts
    finally:
        hosts.close()
