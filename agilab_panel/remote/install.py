"""Install an app's worker environment on remote hosts over SSH, step by step like the local install.

Layout on a host, under its SSH user's home::

    ~/.agilab/bin/uv                 uv sent from this machine when the host has the same system and
                                     architecture; otherwise the host's own uv (on its PATH) is used
    ~/.agilab/wenv/<app>/.venv/      made by uv from the host's own Python (>= 3.11)
    ~/.agilab/wenv/<app>/wheels/     the agilab_panel and app wheels built here, sent over SFTP
    ~/.agilab/wenv/<app>/cython/     agilab_kernels/<package>/ compiled on the host in cython mode
    ~/.agilab/wenv/<app>/install_state.json   per-step fingerprints, ``ok`` once every step passed

Third-party packages come from the host's own package index, pinned to the engine's versions. The
``ssh`` step (connect, host key, Python, share) runs every time; every other step runs only when its
inputs changed, so a re-install with nothing changed is the checks and one state read.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import platform
import sys
import time
import tomllib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import asyncssh

from ..env import AgiEnv
from ..events import EventBus, StepEvent
from ..install import _CHECK_SCRIPT, _locked, _summary, engine_uv, pin_conflicts, skipped_step, timed_step
from ..install_check import STATE_FILE, STATE_SCHEMA
from ..install_plan import _digest, _extra, _pxd_files, project_root, runtime_requirements
from ..modes import CYTHON_MODE, RAPIDS_MODE
from ..results import HostInstall, StepResult
from ..runtime.base import KERNELS_PACKAGE, kernel_module
from .checks import HostFacts, probe
from .commands import run_streamed
from .connect import connect
from .errors import RemoteHostError
from .options import SshOptions, check_remote_path
from .status import record_failed_checks, record_host_install, remote_install_record
from .wheels import WheelBuilder, tree_digest

__all__ = ["install_remote_hosts", "python_warning", "remote_share", "remote_wenv"]

_UV_ENV = ["env", "UV_PYTHON_DOWNLOADS=never", "UV_NO_PROGRESS=1"]
# Moves each built kernel (argv[3:]) from the build folder (argv[1]) into the kernel folder (argv[2]).
_PLACE_KERNELS = """
import importlib.machinery, os, sys
build, out, modules = sys.argv[1], sys.argv[2], sys.argv[3:]
os.makedirs(out, exist_ok=True)
for module in modules:
    built = [module + s for s in importlib.machinery.EXTENSION_SUFFIXES if os.path.isfile(os.path.join(build, module + s))]
    if not built:
        sys.exit(f"the build of {module} produced no extension module")
    os.replace(os.path.join(build, built[0]), os.path.join(out, built[0]))
    print("compiled", module, "into", out)
"""
_NOT_ON_WORKERS = ("ui",)  # the page: shipped in the wheel, never imported by a worker; editing it reinstalls nothing
_RMTREE = "import shutil, sys; shutil.rmtree(sys.argv[1], ignore_errors=True)"


class _StepFailed(Exception):
    """A step failed for a reason the user can act on."""


def remote_share(env: AgiEnv, cluster: Any) -> str:
    """The share as the workers see it: ``workers_data_path`` (absolute, or inside the share), else the share."""
    value = str(getattr(cluster, "workers_data_path", "") or "")
    if value and PurePosixPath(value).is_absolute():
        return value
    return str(PurePosixPath(env.share) / value) if value else str(env.share)


def remote_wenv(home: str, app: str) -> PurePosixPath:
    return PurePosixPath(home) / ".agilab" / "wenv" / app


@dataclass(frozen=True)
class _Plan:
    """Everything one remote host's install will do (paths are the host's), with each step's fingerprint."""

    host: str
    facts: HostFacts
    wenv: PurePosixPath
    uv: str
    ship_uv: bool
    requirements: tuple[str, ...]
    constraints: tuple[str, ...]
    pyx: tuple[Path, ...]
    modules: tuple[str, ...]  # kernel names: the .pyx stems
    kernel_dir: PurePosixPath  # <wenv>/cython/agilab_kernels/<app package>
    imports: tuple[str, ...]  # the kernels' full import names
    rapids: bool
    steps: dict[str, str]
    fingerprint: str


def _uv_choice(facts: HostFacts) -> tuple[str, bool, str]:
    """(uv path on the host, whether it is sent from here, its fingerprint)."""
    here = f"{platform.system()} {platform.machine()}"
    if facts.system == here:
        stat = Path(engine_uv()).stat()
        return str(PurePosixPath(facts.home) / ".agilab" / "bin" / "uv"), True, _digest("ship", str(stat.st_size),
                                                                                         str(stat.st_mtime_ns))
    if facts.uv:
        return facts.uv, False, _digest("host", facts.uv)
    raise RemoteHostError(facts.host, "platform", f"the host runs {facts.system}, this machine {here}: uv cannot be "
                          "sent there; install uv on the host (on its PATH)")


def _sources(project: Path) -> str:
    """Digest of what a project's wheel is built from (for agilab_panel: its package and pyproject.toml)."""
    if project == project_root():
        return tree_digest(project / "agilab_panel", project / "pyproject.toml", skip=_NOT_ON_WORKERS)
    return tree_digest(project)


def _plan(env: AgiEnv, modes_enabled: int, facts: HostFacts) -> _Plan:
    spec = env.spec
    uv, ship, uv_fp = _uv_choice(facts)
    requirements, constraints = runtime_requirements(modes_enabled)
    pyproject = (spec.path / "pyproject.toml").read_bytes()
    rapids = bool(modes_enabled & RAPIDS_MODE) and _extra(pyproject, "rapids") is not None
    pyx = tuple(spec.path / rel for rel in spec.cython) if modes_enabled & CYTHON_MODE else ()
    package = spec.worker_module.split(".")[0]
    steps = {"uv": uv_fp, "venv": _digest(uv_fp, facts.python, facts.python_version)}
    steps["runtime"] = _digest(steps["venv"], *requirements, "|", *constraints, _sources(project_root()))
    steps["app"] = _digest(steps["runtime"], str(rapids), _sources(spec.path))
    if pyx:
        sources = [part for p in pyx for src in (p, *_pxd_files(p)) for part in (src.name, src.read_bytes() if src.is_file() else b"")]
        steps["cython"] = _digest(steps["venv"], *[r for r in requirements if r.lower().startswith("cython")], package, *sources)
    if modes_enabled & RAPIDS_MODE:
        steps["rapids"] = _digest(steps["app"], "rapids")
    steps["check"] = _digest(*steps.values(), spec.worker_module)
    wenv = remote_wenv(facts.home, env.app)
    modules = tuple(p.stem for p in pyx)
    return _Plan(facts.host, facts, wenv, uv, ship, tuple(requirements), tuple(constraints), pyx, modules,
                 wenv / "cython" / KERNELS_PACKAGE / package, tuple(kernel_module(package, m) for m in modules),
                 rapids, steps, _digest(str(modes_enabled & (CYTHON_MODE | RAPIDS_MODE)), *steps.values()))


def _dist_name(project: Path) -> str:
    return tomllib.loads((project / "pyproject.toml").read_text())["project"]["name"]


@dataclass
class _Host:
    """One remote host's install in progress over one connection."""

    env: AgiEnv
    plan: _Plan
    conn: asyncssh.SSHClientConnection
    sftp: asyncssh.SFTPClient
    bus: EventBus
    wheels: WheelBuilder

    async def run(self, step: str, argv: list[str], failure: str) -> None:
        code, tail = await run_streamed(self.conn, argv, self.bus, self.plan.host, step)
        if code != 0:
            raise _StepFailed(f"{failure} (exit code {code}): {_summary(tail)}")

    async def put(self, local: Path, remote: PurePosixPath, mode: int | None = None) -> None:
        """Send one file; it appears under its final name only once complete."""
        await self.sftp.makedirs(str(remote.parent), exist_ok=True)
        part = str(remote) + ".part"
        await self.sftp.put(str(local), part)
        if mode is not None:
            await self.sftp.chmod(part, mode)
        await self.sftp.posix_rename(part, str(remote))

    async def write(self, remote: PurePosixPath, text: str) -> None:
        await self.sftp.makedirs(str(remote.parent), exist_ok=True)
        part = str(remote) + ".part"
        async with self.sftp.open(part, "w") as f:
            await f.write(text)
        await self.sftp.posix_rename(part, str(remote))

    @property
    def python(self) -> str:
        return str(self.plan.wenv / ".venv" / "bin" / "python")

    def uv_cmd(self, *args: str) -> list[str]:
        return [*_UV_ENV, self.plan.uv, *args]

    async def uv(self) -> str:
        if self.plan.ship_uv:
            await self.put(Path(engine_uv()), PurePosixPath(self.plan.uv), 0o755)
        await self.run("uv", [self.plan.uv, "--version"], "uv does not run on the host")
        return f"{'sent' if self.plan.ship_uv else 'the host'}'s uv at {self.plan.uv}"

    async def venv(self) -> str:
        venv = str(self.plan.wenv / ".venv")
        await self.run("venv", [self.plan.facts.python, "-c", _RMTREE, venv], "removing the old worker venv failed")
        await self.run("venv", self.uv_cmd("venv", "--python", self.plan.facts.python, venv),
                       "creating the worker venv failed")
        return f"Python {self.plan.facts.python_version} ({self.plan.facts.python})"

    async def wheel(self, project: Path) -> PurePosixPath:
        local = await self.wheels.wheel(project, _sources(project))
        remote = self.plan.wenv / "wheels" / local.name
        await self.put(local, remote)
        return remote

    async def runtime(self) -> str:
        constraints = self.plan.wenv / "constraints.txt"
        await self.write(constraints, "".join(f"{line}\n" for line in self.plan.constraints))
        await self.run("runtime", self.uv_cmd("pip", "install", "--python", self.python, "-c", str(constraints),
                                              *self.plan.requirements), "installing the runtime packages failed")
        wheel = await self.wheel(project_root())
        await self.run("runtime", self.uv_cmd("pip", "install", "--python", self.python, "--no-deps",
                                              "--reinstall-package", "agilab-panel", str(wheel)),
                       "installing agilab_panel failed")
        return ", ".join(self.plan.requirements)

    async def app(self) -> str:
        spec = self.env.spec
        pyproject = (spec.path / "pyproject.toml").read_bytes()
        wanted = [r for extra in ([None, "rapids"] if self.plan.rapids else [None]) for r in _extra(pyproject, extra) or []]
        conflicts = pin_conflicts(self.env.app, wanted, self.plan.constraints)
        if conflicts:
            raise _StepFailed("; ".join(conflicts))
        wheel = await self.wheel(spec.path)
        name = _dist_name(spec.path)
        target = f"{name}[rapids] @ file://{wheel}" if self.plan.rapids else str(wheel)
        await self.run("app", self.uv_cmd("pip", "install", "--python", self.python, "-c",
                                          str(self.plan.wenv / "constraints.txt"), "--reinstall-package", name, target),
                       f"installing app {self.env.app!r} failed")
        return wheel.name

    async def cython(self) -> str:
        missing = [str(p) for p in self.plan.pyx if not p.is_file()]
        if missing:
            raise _StepFailed(f"declared Cython source(s) not found: {', '.join(missing)}")
        build = self.plan.wenv / ".cython-build"
        python = self.python
        await self.run("cython", [python, "-c", _RMTREE, str(build)], "cleaning the Cython build folder failed")
        for pyx in self.plan.pyx:
            for src in (pyx, *_pxd_files(pyx)):
                await self.put(src, build / src.name)
        names = [str(build / p.name) for p in self.plan.pyx]
        await self.run("cython", [python, "-m", "Cython.Build.Cythonize", "-i", "-f", *names],
                       f"compiling {', '.join(p.name for p in self.plan.pyx)} on the host failed (is a C compiler there?)")
        await self.run("cython", [python, "-c", _PLACE_KERNELS, str(build), str(self.plan.kernel_dir), *self.plan.modules],
                       "placing the compiled kernels failed")
        return f"compiled {', '.join(self.plan.imports)}"

    async def rapids(self) -> str:
        await self.run("rapids", [self.python, "-c", "import cudf; print('cudf', cudf.__version__)"],
                       f"rapids mode needs cuDF and a GPU on host {self.plan.host}: install on a GPU host or turn rapids off")
        return "cudf imports"

    async def check(self) -> str:
        worker = self.env.spec.worker_module
        await self.run("check", [self.python, "-c", _CHECK_SCRIPT, str(self.plan.wenv / "cython"), worker,
                                 *self.plan.imports],
                       f"the worker environment on host {self.plan.host} cannot import {worker} and agilab_panel.runtime")
        return f"imports {worker}"

    # -- state -------------------------------------------------------------------------------------
    async def save_state(self, state: dict[str, Any]) -> None:
        """Write the host's install state there, and its mirror here (what a page reads, not the host)."""
        await self.write(self.plan.wenv / STATE_FILE, json.dumps(state, indent=2))
        record_host_install(self.env, self.plan.host, state, self.plan.facts)

    async def read_state(self) -> dict[str, Any]:
        try:
            async with self.sftp.open(str(self.plan.wenv / STATE_FILE)) as f:
                state = json.loads(await f.read())
        except (asyncssh.SFTPError, ValueError):
            return {}
        return state if isinstance(state, dict) and state.get("schema") == STATE_SCHEMA else {}

    async def lost(self) -> dict[str, str]:
        """Step outputs gone since they ran (a cheap look at the files)."""
        lost = {}
        if not await self.sftp.exists(self.python):
            lost["venv"] = f"the worker Python {self.python} is missing"
        if self.plan.modules:
            names = await self.sftp.listdir(str(self.plan.kernel_dir)) if await self.sftp.isdir(str(self.plan.kernel_dir)) else []
            gone = [m for m in self.plan.modules if not any(n.startswith(m + ".") and n.endswith(".so") for n in names)]
            if gone:
                lost["cython"] = f"compiled kernel(s) {', '.join(gone)} missing from {self.plan.kernel_dir}"
        return lost


async def _steps(runner: _Host, modes_enabled: int, force: bool, steps: list[StepResult]) -> HostInstall:
    plan, bus, host = runner.plan, runner.bus, runner.plan.host
    where = f"{plan.facts.user}@{host}:{plan.wenv}"
    previous = await runner.read_state()
    saved: dict[str, str] = {} if force else dict(previous.get("steps", {}))
    lost = await runner.lost() if saved else {}
    if "venv" in lost:
        saved = {k: v for k, v in saved.items() if k == "uv"}
    elif "cython" in lost:
        saved.pop("cython", None)
    for reason in lost.values():
        bus.log(f"rebuilding on {host}: {reason}", level="WARNING", source="install", host=host)
    actions: dict[str, Callable[[], Awaitable[str]]] = {
        "uv": runner.uv, "venv": runner.venv, "runtime": runner.runtime, "app": runner.app,
        "cython": runner.cython, "rapids": runner.rapids, "check": runner.check}
    state = {"schema": STATE_SCHEMA, "ok": False, "app": runner.env.app, "host": host, "modes_enabled": modes_enabled,
             "fingerprint": plan.fingerprint, "steps": saved, "python": runner.python, "cython_modules": list(plan.modules),
             "requirements": list(plan.requirements), "engine_python": sys.version.split()[0]}
    changed = False
    for name, fp in plan.steps.items():
        if saved.get(name) == fp:
            skipped_step(bus, host, name, steps)
            continue
        if name == "venv":  # a new venv holds nothing the later steps installed
            saved = {k: v for k, v in saved.items() if k == "uv"}
        saved.pop(name, None)
        changed = True
        await runner.save_state({**state, "steps": saved})
        ok, detail = await timed_step(bus, host, name, actions[name], steps, (_StepFailed, RemoteHostError))
        if not ok:
            error = f"host {host}: step '{name}' failed: {detail.removeprefix(f'host {host}: ')}"
            bus.log(error, level="ERROR", source="install", host=host, step=name)
            await runner.save_state({**state, "steps": saved, "failed_step": name, "error": error})
            return HostInstall(host, False, where, steps, error)
        saved[name] = fp
    if changed or not previous.get("ok") or previous.get("fingerprint") != plan.fingerprint:
        await runner.save_state({**state, "steps": saved, "ok": True, "installed_at": time.time()})
    elif remote_install_record(runner.env, host) != {**previous, "facts": dataclasses.asdict(plan.facts)}:
        record_host_install(runner.env, host, previous, plan.facts)  # nothing to do there: record it here
    return HostInstall(host, True, where, steps)


async def _install_host(env: AgiEnv, host: str, modes_enabled: int, bus: EventBus, force: bool,
                        options: SshOptions, share: str, wheels: WheelBuilder) -> HostInstall:
    steps: list[StepResult] = []
    bus.emit(StepEvent(host=host, step="ssh", state="started"))
    start = time.perf_counter()
    try:
        check_remote_path(share, host, "share")
        conn = await connect(host, options, bus)
    except RemoteHostError as exc:
        return _failed_ssh(host, str(exc), time.perf_counter() - start, bus, env)
    try:
        facts = await probe(conn, host, share)
        plan = _plan(env, modes_enabled, facts)
        seconds = time.perf_counter() - start
        detail = f"{facts.user}@{host}: Python {facts.python_version}, share {share} writable"
        steps.append(StepResult("ssh", True, seconds, detail=detail))
        bus.emit(StepEvent(host=host, step="ssh", state="done", seconds=seconds, detail=detail))
        warning = python_warning(host, facts.python_version)
        if warning:
            bus.log(warning, level="WARNING", source="install", host=host)
        local_lock = env.wenv_path(host)
        local_lock.mkdir(parents=True, exist_ok=True)
        async with _locked(local_lock / "install.lock", bus, host, env.app), conn.start_sftp_client() as sftp:
            return await _steps(_Host(env, plan, conn, sftp, bus, wheels), modes_enabled, force, steps)
    except RemoteHostError as exc:
        if not steps:
            return _failed_ssh(host, str(exc), time.perf_counter() - start, bus, env)
        return HostInstall(host, False, str(env.wenv_path(host)), steps, str(exc))
    except (asyncssh.Error, OSError) as exc:
        error = f"host {host}: install failed: {type(exc).__name__}: {exc}"
        bus.log(error, level="ERROR", source="install", host=host)
        return HostInstall(host, False, str(env.wenv_path(host)), steps, error)
    finally:
        conn.close()


def python_warning(host: str, version: str) -> str | None:
    """What a host's Python other than the engine's means for a run (None when they are the same).

    The worker environment pins every package to the engine's versions, but it is made from the host's
    own Python: Dask compares the Python versions too, so its workers there log "Mismatched versions
    found" with a ``python`` row. Between patch releases of one minor version that is harmless.
    """
    engine = "{}.{}.{}".format(*sys.version_info[:3])
    if version == engine:
        return None
    logged = (f"host {host} runs Python {version}, the engine {engine}: Dask's workers there log \"Mismatched "
              "versions found\" for python (the packages are the engine's versions)")
    if version.rsplit(".", 1)[0] == engine.rsplit(".", 1)[0]:
        return f"{logged}; patch releases of one Python minor version run together"
    return f"{logged}; pickled results may not cross between them: give the host Python {engine.rsplit('.', 1)[0]}"


def _failed_ssh(host: str, error: str, seconds: float, bus: EventBus, env: AgiEnv) -> HostInstall:
    record_failed_checks(env, host, error)
    wenv = str(env.wenv_path(host))
    bus.emit(StepEvent(host=host, step="ssh", state="failed", seconds=seconds, detail=error))
    bus.log(error, level="ERROR", source="install", host=host, step="ssh")
    return HostInstall(host, False, wenv, [StepResult("ssh", False, seconds, detail=error)], error)


async def install_remote_hosts(env: AgiEnv, hosts: Iterable[str], modes_enabled: int, bus: EventBus, *,
                               force: bool = False, options: SshOptions | None = None) -> dict[str, HostInstall]:
    """Install the worker environment on each remote host at once; every host gets its own result."""
    from ..settings import AppSettings

    cluster = AppSettings(env).cluster
    options = options or SshOptions.from_settings(cluster)
    share = remote_share(env, cluster)
    wheels = WheelBuilder(env.home / "wheelhouse", bus)
    hosts = list(dict.fromkeys(hosts))
    results = await asyncio.gather(*(_install_host(env, h, modes_enabled, bus, force, options, share, wheels)
                                     for h in hosts))
    return dict(zip(hosts, results))
