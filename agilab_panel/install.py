"""Worker environments: provision, cache and check the venv that runs an app's workers (SPEC §2, §6.2).

A local install lives in ``env.wenv_path(host)`` (one folder for all local hosts)::

    .venv/              made by uv from the engine's own interpreter (uv never downloads one)
    cython/             on sys.path in cython mode; kernels in agilab_kernels/<app package>/<name>.so
    constraints.txt     the engine's versions of the runtime packages and of their dependencies
    install_state.json  per-step fingerprints of the last install; ``ok`` once every step passed

What each step needs and its fingerprint are in :mod:`.install_plan`; whether the last install still
serves a run is in :mod:`.install_check`. This module runs the steps, each in a subprocess whose output
streams to the page, under a lock per worker environment.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
import tomllib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .env import AgiEnv
from .events import EventBus, LogLine, StepEvent
from .execute.common import child_env, read_lines
from .fsutil import atomic_write_text
from .hosts import is_local_host, is_wildcard, parse_host_port, validate_workers
from .install_check import (STATE_FILE, STATE_SCHEMA, NotInstalledError, _load_state, _lost, _write_state, check_install,
                            cython_path, install_state, worker_python)
from .install_plan import (_compiled_files, _digest, _extra, _Plan, _plan, _pxd_files, _read, install_fingerprint,
                           install_steps, project_root, runtime_requirements)
from .modes import parse_mode
from .results import HostInstall, InstallResult, StepResult
from .runtime.lifecycle import die_with_parent, kill_group

__all__ = [
    "NotInstalledError",
    "StepResult",
    "HostInstall",
    "InstallResult",
    "install_app",
    "worker_python",
    "cython_path",
    "install_state",
    "check_install",
    "install_fingerprint",
    "install_steps",
    "runtime_requirements",
    "pin_conflicts",
]

_LOCATED = re.compile(r"\S:\d+:\d+: ")  # "kernel.pyx:2:48: Expected ':'", "kernel.c:9:5: error: ..."
_CHECK_SCRIPT = """\
import importlib, sys
sys.path.insert(0, sys.argv[1])
for name in ["agilab_panel.runtime", *sys.argv[2:]]:
    module = importlib.import_module(name)
    print("imported", name, "from", getattr(module, "__file__", "?"))
"""
# PEP 660 with the project's own build backend (argv[2]): the editable wheel of agilab_panel, into argv[1]
_EDITABLE_WHEEL = "import importlib, sys; print(importlib.import_module(sys.argv[2]).build_editable(sys.argv[1]))"
# What every worker imports besides the app, imported by the check step with bytecode written: a fresh
# worker finds it compiled even where it cannot write bytecode itself (PYTHONDONTWRITEBYTECODE, read-only
# or shared installs). Compiling every file of the environment instead (uv --compile-bytecode) costs
# ten times as much on each cold install, for files no worker reads.
WORKER_IMPORTS = ("agilab_panel.runtime.runner", "agilab_panel.runtime.zygote", "agilab_panel.runtime.tasks",
                  "pandas", "pyarrow.parquet", "multiprocessing.synchronize", "concurrent.futures.process",
                  "distributed.cli.dask_worker")


class _StepFailed(Exception):
    """A step failed for a reason the user can act on; the message is shown as is."""


# -- running steps -----------------------------------------------------------------------------------
def engine_uv() -> str:
    """The uv binary of this machine (the ``uv`` package's, else the one on PATH)."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if not found:
            raise RuntimeError("uv is not available to the engine: install the 'uv' package") from None
        return found


# uv's own account of a command: "Resolved 25 packages in 1.20s", "Bytecode compiled 1402 files in 850ms"
# ("... in 1m 05s" past a minute)
_UV_PHASE = re.compile(r"^(?P<what>Resolved|Prepared|Installed|Uninstalled|Audited|Bytecode compiled) .* in "
                       r"(?:(?P<min>\d+)m )?(?P<n>[\d.]+)(?P<unit>ms|s)$")


def uv_phases(lines: Iterable[str]) -> dict[str, float]:
    """Seconds per phase uv reported in its output (resolve, prepare = download and build, install, bytecode)."""
    found: dict[str, float] = {}
    for line in lines:
        match = _UV_PHASE.match(line.strip())
        if match:
            seconds = float(match["n"]) / (1000 if match["unit"] == "ms" else 1) + 60 * int(match["min"] or 0)
            found[f"uv {match['what'].lower()}"] = found.get(f"uv {match['what'].lower()}", 0.0) + seconds
    return found


async def _stream(cmd: Sequence[str], bus: EventBus, host: str, step: str, cwd: Path,
                  seen: list[str] | None = None, env: Mapping[str, str] | None = None) -> tuple[int, list[str]]:
    """Run ``cmd``, emitting each stdout/stderr line as soon as it is written; (exit code, last lines).
    Lines uv reports its phases with are also added to ``seen``."""
    bus.emit(LogLine(text="$ " + shlex.join(cmd), source="install", host=host, step=step))
    # Its own process group, so a cancel also ends what it started (uv's builds, the C compiler);
    # it dies with this process too.
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=cwd, env=dict(env) if env is not None else child_env(), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, process_group=0,
        preexec_fn=partial(die_with_parent, os.getpid()))
    tail: deque[str] = deque(maxlen=40)

    async def pump(reader: asyncio.StreamReader, stream: str) -> None:
        async for line in read_lines(reader):
            text = line.decode(errors="replace").rstrip("\r")
            tail.append(text)
            if seen is not None and _UV_PHASE.match(text.strip()):
                seen.append(text)
            bus.emit(LogLine(text=text, source="install", stream=stream, host=host, step=step))  # type: ignore

    try:
        await asyncio.gather(pump(proc.stdout, "stdout"), pump(proc.stderr, "stderr"))  # type: ignore[arg-type]
        return await proc.wait(), list(tail)
    finally:
        if proc.returncode is None:  # cancelled: do not leave a half-done uv or compiler behind
            kill_group(proc.pid)
            await proc.wait()


_PINNED_WHY = "the engine's version: pickled results and Dask messages cross between the engine and its workers"
# uv's resolver: "Because app==0.1 depends on pandas<3 and pandas==3.1.1, we can conclude that ..."
_CONFLICT = re.compile(r"Because (?P<who>\S+) depends on (?P<name>[A-Za-z0-9._-]+)(?:\[[^\]]*\])?(?P<spec>[^,]*?)"
                       r" and (?:you require )?(?P<pinned>[A-Za-z0-9._-]+)==(?P<version>[^\s,]+)")


def pin_conflicts(app: str, requirements: Iterable[str], constraints: Iterable[str]) -> list[str]:
    """The app's direct requirements that the engine's pins rule out, each naming the package and both
    constraints; checked before uv runs, whose own message is one line at the end of a long log."""
    pins = {canonicalize_name(c.partition("==")[0]): c.partition("==")[2] for c in constraints if "==" in c}
    conflicts = []
    for text in requirements:
        try:
            req = Requirement(text)
        except ValueError:
            continue  # uv reports a malformed requirement itself
        version = pins.get(canonicalize_name(req.name))
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        if version and req.specifier and not req.specifier.contains(version, prereleases=True):
            conflicts.append(f"app {app!r} requires {req.name}{req.specifier}, but the worker environment pins "
                             f"{req.name}=={version} ({_PINNED_WHY})")
    return conflicts


def _resolver_conflict(tail: Sequence[str]) -> str | None:
    """uv's "no solution" explained in one line: which package, what wants it, and the engine's pin."""
    if not any("No solution found" in line for line in tail):
        return None
    for line in tail:
        match = _CONFLICT.search(line)
        if match and canonicalize_name(match["name"]) == canonicalize_name(match["pinned"]):
            name, spec = match["name"], match["spec"].strip()
            return (f"{match['who']} requires {name}{spec}, but the worker environment pins {name}=={match['version']} "
                    f"({_PINNED_WHY})")
    because = next((line.strip() for line in tail if "Because" in line), None)
    return because.removeprefix("cause:").strip() if because else None


def _summary(tail: Sequence[str]) -> str:
    """The most telling output line: a dependency conflict, a compiler's ``file:line:col:`` message, else the last line."""
    conflict = _resolver_conflict(tail)
    if conflict:
        return conflict
    located = [line.strip() for line in tail if _LOCATED.search(line) and "warning" not in line.lower()]
    errors = [line for line in located if "error" in line.lower()]
    return (errors or located or [next((line.strip() for line in reversed(tail) if line.strip()), "no output")])[0]


@dataclass
class _Host:
    """One local host's install in progress: the plan and where its output goes."""

    env: AgiEnv
    plan: _Plan
    bus: EventBus
    parts: dict[str, dict[str, float]] = field(default_factory=dict)  # step -> where its time went

    async def run(self, step: str, cmd: Sequence[str], failure: str | None, cwd: Path | None = None,
                  what: str | None = None, env: Mapping[str, str] | None = None) -> int:
        """Run one command of ``step``; its time (and uv's phases) go to ``parts[step]`` as ``what``.
        A failed command raises with ``failure`` unless it is None (the exit code is returned)."""
        seen: list[str] = []
        start = time.perf_counter()
        code, tail = await _stream(cmd, self.bus, self.plan.host, step, cwd or self.plan.wenv, seen, env)
        parts = self.parts.setdefault(step, {})
        label = what or Path(cmd[0]).name
        parts[label] = parts.get(label, 0.0) + time.perf_counter() - start
        parts.update({f"{label}: {phase}": seconds for phase, seconds in uv_phases(seen).items()})
        if code != 0 and failure is not None:
            raise _StepFailed(f"{failure} (exit code {code}): {_summary(tail)}")
        return code

    def uv(self) -> str:
        try:
            return engine_uv()
        except RuntimeError as exc:
            raise _StepFailed(str(exc)) from None

    def write_constraints(self) -> Path:
        path = self.plan.wenv / "constraints.txt"
        atomic_write_text(path, "".join(f"{line}\n" for line in self.plan.constraints))
        return path

    async def venv(self) -> str:
        venv = self.plan.wenv / ".venv"
        if venv.exists():
            shutil.rmtree(venv)
        await self.run("venv", [self.uv(), "venv", "--python", sys.executable, str(venv)],
                       "creating the worker venv failed", what="uv venv")
        return f"Python {sys.version.split()[0]}"

    async def runtime(self) -> str:
        root = project_root()
        if not (root / "pyproject.toml").is_file():
            raise _StepFailed(f"agilab_panel is not installed from its source tree ({root} has no pyproject.toml)")
        python, constraints = str(self.plan.python), str(self.write_constraints())
        await self.run("runtime", [self.uv(), "pip", "install", "--python", python, "-c", constraints,
                                   *self.plan.requirements], "installing the runtime packages failed",
                       what="runtime packages")
        wheel = await self.runtime_wheel(root)
        target = [str(wheel)] if wheel else ["-e", str(root)]
        await self.run("runtime", [self.uv(), "pip", "install", "--python", python, "--no-deps", *target],
                       "installing agilab_panel failed",
                       what="agilab_panel (cached editable wheel)" if wheel else "agilab_panel (editable build)")
        await self.compile("runtime", root / "agilab_panel")
        return ", ".join(self.plan.requirements)

    async def runtime_wheel(self, root: Path) -> Path | None:
        """agilab_panel's editable wheel, built once per source tree and build inputs and kept in the
        home's wheel cache: every worker environment installs the same one (uv builds an editable
        install afresh each time). None when it cannot be built here: the install builds it as before."""
        pyproject = _read(root / "pyproject.toml")
        try:
            build = tomllib.loads(pyproject.decode()).get("build-system", {})
        except (UnicodeDecodeError, tomllib.TOMLDecodeError):
            return None
        requires, backend = build.get("requires", []), build.get("build-backend")
        if not backend:
            return None
        cache = self.env.home / "cache" / "wheels" / _digest(str(root), pyproject, sys.version)[:20]
        found = sorted(cache.glob("*.editable-*.whl"))
        if found:
            return found[0]
        cache.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache.parent, prefix=".build-", ignore_cleanup_errors=True) as tmp:
            cmd = [self.uv(), "run", "-q", "--no-project", "--python", sys.executable,
                   *[arg for req in requires for arg in ("--with", req)], "python", "-c", _EDITABLE_WHEEL, tmp, backend]
            code = await self.run("runtime", cmd, None, cwd=root, what="agilab_panel editable wheel (built once)")
            if code != 0 or not list(Path(tmp).glob("*.editable-*.whl")):
                return None
            with contextlib.suppress(OSError):  # another install may have cached it first: either serves
                os.replace(tmp, cache)
        found = sorted(cache.glob("*.editable-*.whl"))
        return found[0] if found else None

    async def compile(self, step: str, folder: Path) -> None:
        """Bytecode for every file of an editable install's sources (small, and partly imported only
        when a run needs it): where a worker cannot write it (PYTHONDONTWRITEBYTECODE, read-only or
        shared filesystems) every fresh worker would compile its imports again. A file that does not
        compile is only a warning: if the worker imports it, the check step names the error."""
        if folder.is_dir():
            cmd = [str(self.plan.python), "-m", "compileall", "-q", "-j", "0", str(folder)]
            code = await self.run(step, cmd, None, what=f"bytecode of {folder.name}")
            if code != 0:
                self.bus.log(f"some files of {folder} do not compile to bytecode", level="WARNING", source="install",
                             host=self.plan.host, step=step)

    async def app(self) -> str:
        pyproject = _read(self.env.spec.path / "pyproject.toml")
        extras = [None, "rapids"] if self.plan.app_target.endswith("[rapids]") else [None]
        wanted = [req for extra in extras for req in _extra(pyproject, extra) or []]
        conflicts = pin_conflicts(self.env.app, wanted, self.plan.constraints)
        if conflicts:
            raise _StepFailed("; ".join(conflicts))
        constraints = str(self.write_constraints())
        await self.run("app", [self.uv(), "pip", "install", "--python", str(self.plan.python), "-c", constraints,
                               "-e", self.plan.app_target], f"installing app {self.env.app!r} failed",
                       what="app (editable build)")
        await self.compile("app", self.env.spec.src_path)
        return self.plan.app_target

    async def cython(self) -> str:
        out = self.plan.kernel_dir
        out.mkdir(parents=True, exist_ok=True)
        missing = [str(p) for p in self.plan.pyx if not p.is_file()]
        if missing:
            raise _StepFailed(f"declared Cython source(s) not found: {', '.join(missing)}")
        if len(set(self.plan.modules)) != len(self.plan.modules):
            raise _StepFailed(f"two .pyx files share a module name: {self.plan.modules}")
        for module in self.plan.modules:  # a failed build must not leave a stale kernel that looks valid
            for old in (*_compiled_files(out, module), *_compiled_files(self.plan.cython_dir, module)):
                old.unlink()  # (the second: a top-level build of an earlier layout, which could shadow a module)
        with tempfile.TemporaryDirectory(dir=self.plan.wenv, prefix=".cython-build-") as tmp:
            build = Path(tmp)
            for pyx in self.plan.pyx:
                for src in (pyx, *_pxd_files(pyx)):
                    shutil.copy2(src, build / src.name)
            names = [p.name for p in self.plan.pyx]
            await self.run("cython", [str(self.plan.python), "-m", "Cython.Build.Cythonize", "-i", "-f", *names],
                           f"compiling {', '.join(names)} failed", cwd=build, what="cythonize and C compile")
            for module in self.plan.modules:
                built = _compiled_files(build, module)
                if not built:
                    raise _StepFailed(f"the build of {module} produced no extension module")
                os.replace(built[0], out / built[0].name)
        return f"compiled {', '.join(self.plan.imports)} into {self.plan.cython_dir}"

    async def rapids(self) -> str:
        await self.run("rapids", [str(self.plan.python), "-c", "import cudf; print('cudf', cudf.__version__)"],
                       f"rapids mode needs cuDF and a GPU on host {self.plan.host}: add RAPIDS (cudf) to the "
                       "app's [project.optional-dependencies] rapids and install on a GPU host, or turn rapids off")
        return "cudf imports"

    async def check(self) -> str:
        worker = self.env.spec.worker_module
        env = {k: v for k, v in child_env().items() if k != "PYTHONDONTWRITEBYTECODE"}  # compiles what it imports
        await self.run("check", [str(self.plan.python), "-c", _CHECK_SCRIPT, str(self.plan.cython_dir), worker,
                                 *self.plan.imports, *WORKER_IMPORTS],
                       f"the worker environment on host {self.plan.host} cannot import {worker} "
                       "and agilab_panel.runtime", what="import check (writes their bytecode)", env=env)
        return f"imports {worker}"


@contextlib.asynccontextmanager
async def _locked(path: Path, bus: EventBus, host: str, app: str) -> AsyncIterator[None]:
    """Hold the host's install lock without blocking the event loop (two INSTALLs must not share a venv)."""
    lock = FileLock(str(path), thread_local=False)
    waiting = False
    while True:
        try:
            lock.acquire(timeout=0)
            break
        except Timeout:
            if not waiting:
                bus.log(f"another install of {app} on {host} is running: waiting for it", source="install", host=host)
                waiting = True
            await asyncio.sleep(0.2)
    try:
        yield
    finally:
        lock.release()


async def _install_local(env: AgiEnv, host: str, modes_enabled: int, bus: EventBus, force: bool) -> HostInstall:
    wenv = env.wenv_path(host)
    steps: list[StepResult] = []
    try:
        wenv.mkdir(parents=True, exist_ok=True)
        async with _locked(wenv / "install.lock", bus, host, env.app):
            return await _run_steps(env, host, modes_enabled, bus, force, steps)
    except Exception as exc:  # anything outside a step (a full disk, a bad folder) still names the host
        return HostInstall(host, False, str(wenv), steps, f"host {host}: install failed: {type(exc).__name__}: {exc}")


def skipped_step(bus: EventBus, host: str, name: str, steps: list[StepResult]) -> None:
    """Record a step whose inputs did not change since the last install."""
    bus.emit(StepEvent(host=host, step=name, state="skipped", detail="unchanged since the last install"))
    steps.append(StepResult(name, True, 0.0, skipped=True, detail="unchanged since the last install"))


async def timed_step(bus: EventBus, host: str, name: str, action: Callable[[], Awaitable[str]],
                     steps: list[StepResult], expected: tuple[type[Exception], ...] = (_StepFailed,),
                     parts: Mapping[str, float] | None = None) -> tuple[bool, str]:
    """Run one step with its events and timing; (ok, detail): ``expected`` failures say their message,
    anything else its type too. Never raises (a cancel aside). ``parts``, filled by the action, says
    where the step's time went: it goes into the result and the step's last event, and a log line."""
    bus.emit(StepEvent(host=host, step=name, state="started"))
    start = time.perf_counter()
    try:
        detail, ok = await action(), True
    except expected as exc:
        detail, ok = str(exc), False
    except Exception as exc:
        detail, ok = f"{type(exc).__name__}: {exc}", False
    seconds = time.perf_counter() - start
    spent = {what: round(s, 3) for what, s in (parts or {}).items()}
    steps.append(StepResult(name, ok, seconds, detail=detail, parts=spent))
    if spent:
        bus.log(f"{name} took {seconds:.1f} s: " + ", ".join(f"{what} {s:.2f} s" for what, s in spent.items()),
                source="install", host=host, step=name)
    bus.emit(StepEvent(host=host, step=name, state="done" if ok else "failed", seconds=seconds, detail=detail,
                       parts=spent))
    return ok, detail


async def _run_steps(env: AgiEnv, host: str, modes_enabled: int, bus: EventBus, force: bool,
                     steps: list[StepResult]) -> HostInstall:
    plan = _plan(env, modes_enabled, host)
    state_path = plan.wenv / STATE_FILE
    previous = _load_state(state_path) or {}
    saved: dict[str, str] = {} if force else dict(previous.get("steps", {}))
    lost = _lost(plan) if saved else {}
    if "venv" in lost:
        saved = {}
    elif "cython" in saved and "cython" in lost:
        del saved["cython"]
    for reason in lost.values():
        bus.log(f"rebuilding on {host}: {reason}", level="WARNING", source="install", host=host)
    runner = _Host(env, plan, bus)
    actions: dict[str, Callable[[], Awaitable[str]]] = {
        "venv": runner.venv, "runtime": runner.runtime, "app": runner.app,
        "cython": runner.cython, "rapids": runner.rapids, "check": runner.check,
    }
    state = {"schema": STATE_SCHEMA, "ok": False, "app": env.app, "host": host, "modes_enabled": modes_enabled,
             "fingerprint": plan.fingerprint, "steps": saved, "python": str(plan.python),
             "cython_modules": plan.modules, "requirements": list(plan.requirements),
             "engine_python": sys.version.split()[0]}
    changed = False
    for name, fp in plan.steps.items():
        if saved.get(name) == fp:
            skipped_step(bus, host, name, steps)
            continue
        if name == "venv":
            saved.clear()  # a new venv holds nothing that earlier steps installed
        saved.pop(name, None)
        changed = True
        _write_state(state_path, state)  # the environment is about to change: no longer a valid install
        ok, detail = await timed_step(bus, host, name, actions[name], steps, parts=runner.parts.setdefault(name, {}))
        if not ok:
            error = f"host {host}: step '{name}' failed: {detail}"
            bus.log(error, level="ERROR", source="install", host=host, step=name)
            _write_state(state_path, {**state, "failed_step": name, "error": error})
            return HostInstall(host, False, str(plan.wenv), steps, error)
        saved[name] = fp
    if changed or not previous.get("ok") or previous.get("fingerprint") != plan.fingerprint:
        _write_state(state_path, {**state, "ok": True, "installed_at": time.time()})
    return HostInstall(host, True, str(plan.wenv), steps)


def _answers(scheduler: str) -> bool:
    from .execute.cluster import scheduler_reachable

    return scheduler_reachable(scheduler)


async def install_app(env: AgiEnv, workers: Mapping[str, int], modes_enabled: int, bus: EventBus, *,
                      force: bool = False, ssh: Any = None, scheduler: str | None = None) -> InstallResult:
    """Provision the worker environment of every host in ``workers`` for the capabilities in ``modes_enabled``.

    Step failures are reported in the result (per host, naming the step), never raised; a bad worker
    map or mode is a ``ValueError``. ``force`` reinstalls even when nothing changed. Hosts that are not
    this machine are installed over SSH with ``ssh`` (:class:`~agilab_panel.remote.SshOptions`; default:
    from the app's ``[cluster]`` settings). A ``scheduler`` on another host (``host[:port]``) where none
    answers yet is installed like a worker host: a run starts the scheduler there from that environment.
    """
    workers = validate_workers(workers)
    modes_enabled = parse_mode(modes_enabled)
    start = time.perf_counter()
    local = [h for h in workers if is_local_host(h)]
    hosts: dict[str, HostInstall] = {}
    if local:  # every local host shares one environment: install it once
        shared = await _install_local(env, local[0], modes_enabled, bus, force)
        hosts.update({h: shared for h in local})
    remote = [h for h in workers if h not in hosts]
    if scheduler and not _answers(scheduler):  # someone's scheduler that answers is theirs: nothing to install
        sched_host = parse_host_port(scheduler, 8786)[0]
        if not is_local_host(sched_host) and not is_wildcard(sched_host.strip("[]")) and sched_host not in remote:
            remote.append(sched_host)
    if remote:  # over SSH, each host its own environment (agilab_panel.remote)
        from .remote.install import install_remote_hosts

        hosts.update(await install_remote_hosts(env, remote, modes_enabled, bus, force=force, options=ssh))
    order = [*workers, *(h for h in remote if h not in workers)]  # the scheduler's host last
    return InstallResult(env.app, modes_enabled, {h: hosts[h] for h in order}, time.perf_counter() - start)
