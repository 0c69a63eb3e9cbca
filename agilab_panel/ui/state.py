"""The state one dashboard session shares between its sections.

Sections read and write these params; the actions here are thin: each awaits one engine call and
records its outcome, so sections stay views. Long actions run as tasks on the server's event loop
(other sessions and the rest of the page stay responsive) and can be cancelled.
"""
from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import param

from ..agi import AGI
from ..apps import AppError, discover_apps
from ..env import AgiEnv
from ..events import EventBus
from ..modes import DASK_MODE, benchmark_modes
from ..request import RunRequest
from ..settings import AppSettings
from .file_versions import FileVersions
from .runners import WarmRunners

__all__ = ["OrchestrateState"]


class OrchestrateState(param.Parameterized):
    """One app selected, its settings models, the event bus and the outcome of each action."""

    app = param.Selector(default=None, objects=[], doc="The app this page orchestrates.")
    apps_path = param.List(default=[], item_type=str, doc="Extra folders holding apps.")

    env = param.Parameter(default=None, doc="AgiEnv of the selected app.")
    settings = param.Parameter(default=None, doc="AppSettings (cluster, service health, args models).")
    bus = param.Parameter(default=None, doc="EventBus of this session and app (a new one with each app: the "
                                            "logs, steps and partitions of another app are not this one's).")

    install_result = param.Parameter(default=None)
    installed = param.Boolean(default=False, doc="A valid install exists: Run is enabled.")
    install_note = param.String(default="")
    plan = param.Parameter(default=None, doc="The current WorkPlan (from CHECK DISTRIBUTE or saved).")
    plan_unsaved = param.Boolean(default=False, doc="The plan was edited here and not saved: a plan saved "
                                                    "elsewhere does not replace it.")
    run_result = param.Parameter(default=None, doc="The app's last RunResult: this session's, or read from disk.")
    benchmark_result = param.Parameter(default=None)
    benchmark_all = param.Boolean(default=False, doc="Benchmark all enabled modes instead of one run.")

    busy = param.String(default="", doc="Name of the action running now ('' when idle).")
    error = param.String(default="", doc="Readable error of the last failed action.")
    error_details = param.String(default="", doc="Traceback of the last failed action (shown on demand).")
    settings_error = param.String(default="", doc="Why the settings file could not be loaded.")
    broken_app = param.String(default="", doc="An app chosen but refused (its pyproject.toml breaks the "
                                              "contract): the page stays on the app it showed.")

    # Watchers of ``app`` with a lower precedence see the previous app's state (a page closing its
    # sections), those with a higher one the new app's (the page building them again).
    SWITCH_PRECEDENCE = 10

    def __init__(self, app: str | None = None, apps_path: list[str] | None = None, *,
                 runners: WarmRunners | None = None, **params: Any) -> None:
        super().__init__(apps_path=list(apps_path or []), bus=EventBus(), **params)
        names = sorted(discover_apps([Path(p) for p in self.apps_path]))
        self.param.app.objects = names
        self._task: asyncio.Task | None = None
        self._versions: FileVersions | None = None
        self.reloading = False  # True while the settings file is read into the models: nothing saves them then
        self.param.watch(self._load_app, ["app"], precedence=self.SWITCH_PRECEDENCE)
        self.param.watch(lambda *_: self.refresh_install(), ["benchmark_all"])
        # A served session shares one runner per app with the other sessions, held only while its
        # page is open in a browser (see open_page); without ``runners`` this process warms directly.
        self._runners = runners
        self._open = False
        self.app = app if app in names else ("flight_telemetry" if "flight_telemetry" in names else names[0])
        if self.env is None:
            self._load_app()

    # -- app selection -----------------------------------------------------------------------------
    def _load_app(self, *_events: Any) -> None:
        """Everything shown about the app, read from its files: settings, plan, last run, install."""
        try:
            env = AgiEnv(self.app, apps_path=self.apps_path or None, verbose=1)
        except AppError:
            if self.env is None or self.env.app == self.app:
                raise  # no other app to stay on
            broken, self.app = self.app, self.env.app  # back to the app shown (loaded again) ...
            self.broken_app = broken  # ... and say why the other one was refused
            return
        _seed_settings(env)  # a file seeded now is not a change made elsewhere
        self._versions = _app_files(env)  # before reading: a change made meanwhile shows at the next refresh
        settings, settings_error = _read_settings(env)
        # another app's events are not this app's (a reseed keeps the bus the open views follow)
        bus = self.bus if self.env is not None and self.env.app == env.app else EventBus()
        # One batch: whatever follows the state sees the new app whole, never part of the previous one.
        self.param.update(env=env, bus=bus, settings=settings, settings_error=settings_error,
                          plan=AGI.load_plan(env), plan_unsaved=False, run_result=AGI.last_run(env),
                          benchmark_result=None, install_result=None, error="", error_details="", broken_app="")
        self.refresh_install()
        self._follow_modes()

    def _follow_modes(self) -> None:
        if self.settings is not None:
            self.settings.cluster.param.watch(lambda *_: self.refresh_install(),
                                              ["pool", "cython", "rapids", "cluster_enabled", "workers"])

    def refresh_from_disk(self) -> list[str]:
        """Take in what another session or the command line saved for this app since this session read it
        (a page calls it when a section opens, and every action before it starts); returns what changed.

        Settings are re-read into the same models (only the values that differ change); a work plan edited
        here and not saved is kept.
        """
        changed = self._versions.changed() if self._versions is not None else []
        env = self.env
        if "settings" in changed:
            self._versions.seen("settings")
            self._reload_settings()
        if "plan" in changed and not self.plan_unsaved:
            self._versions.seen("plan")
            self.plan = AGI.load_plan(env)
        if "last_run" in changed:
            self._versions.seen("last_run")
            self.run_result = AGI.last_run(env)
        if "benchmark" in changed:
            self._versions.seen("benchmark")
            self.benchmark_result = None
            self.param.trigger("benchmark_result")  # views read benchmark.json again
        if not self.busy:
            reason = self._install_reason()
            if (reason is None) != self.installed or (reason or "") != self.install_note:
                changed.append("install")
                self.refresh_install()
        return changed

    def _reload_settings(self) -> None:
        if self.settings is None:  # it could not be read before: maybe it can now
            settings, settings_error = _read_settings(self.env)
            self.param.update(settings=settings, settings_error=settings_error)
            self._follow_modes()
            return
        self.reloading = True
        try:
            self.settings.reload(keep_unsaved=True)
        except Exception as exc:  # broken meanwhile: show why, as at load
            self.param.update(settings=None, settings_error=str(exc))
        finally:
            self.reloading = False

    def _install_reason(self) -> str | None:
        """Why the worker map in use is not installed for the modes the toggles select (None: it is)."""
        from ..installed import check_workers_install

        cluster = self.settings.cluster if self.settings else None
        workers = dict(cluster.workers) if cluster is not None else {"127.0.0.1": 1}
        mode = cluster.mode if cluster is not None else 0
        reasons = [check_workers_install(self.env, workers, mode)]
        if self.benchmark_all and mode & DASK_MODE:  # the benchmark times the modes without Dask too: run here
            reasons.append(check_workers_install(self.env, workers, mode & ~DASK_MODE))
        return "; ".join(dict.fromkeys(r for r in reasons if r)) or None

    def refresh_install(self) -> None:
        """Run is enabled while a previous INSTALL still covers the worker map and the modes the toggles
        select (this machine's environment and each remote host's, as recorded here)."""
        reason = self._install_reason()
        self.installed = reason is None
        self.install_note = "" if reason is None else reason
        self._warm()

    def open_page(self) -> None:
        """The page is open in a browser: hold the app's runner (warm) until :meth:`close`."""
        self._open = True
        self._warm()

    def close(self) -> None:
        """The session is gone: release the app's runner once the running action (if any) has ended."""
        self._open = False
        if self._runners is not None:
            self._runners.drop(self, after=self._task)

    def _warm(self) -> None:
        """Start the app's local runner in the background, so the first RUN does not pay for it."""
        if self._runners is not None:
            if self._open:  # held even when not installed: a runner a later RUN starts is released too
                self._runners.hold(self, self.env, warm=self.installed)
            return
        if not self.installed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop (a script or a test building the page): the first RUN starts it
        task = loop.create_task(AGI.warm(self.env))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # a failed warm-up is not an error

    def reseed_settings(self) -> Path | None:
        from ..settings import SettingsStore

        backup = SettingsStore(self.env.settings_path, self.env.settings_seed_path).reseed()
        self._load_app()
        return backup

    def _seen(self, *names: str) -> None:
        """This session wrote ``names`` itself (and holds what it wrote)."""
        if self._versions is not None:
            self._versions.seen(*names)

    # -- actions -----------------------------------------------------------------------------------
    async def _act(self, name: str, call: Callable[[], Awaitable[Any]]) -> Any:
        if self.busy:
            raise RuntimeError(f"{self.busy} is running; wait for it or cancel it")
        self.busy, self.error, self.error_details = name, "", ""
        self._task = asyncio.current_task()
        try:
            return await call()
        except asyncio.CancelledError:
            self.error = f"{name} cancelled"
            return None
        except Exception as exc:
            self.error = f"{name} failed: {exc}"
            self.error_details = "".join(traceback.format_exception(exc))
            return None
        finally:
            self.busy = ""
            self._task = None

    def cancel(self) -> bool:
        """Cancel the running action; its subprocesses are stopped by the engine."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            return True
        return False

    async def install(self) -> Any:
        self.refresh_from_disk()
        cluster, env = self.settings.cluster, self.env

        async def call() -> Any:
            result = await AGI.install(env, scheduler=cluster.scheduler or None, workers=dict(cluster.workers),
                                       modes_enabled=cluster.mode, events=self.bus)
            if self.env is not env:  # another app was chosen meanwhile: this outcome is not its own
                return result
            self.install_result = result
            self.installed = bool(result.ok)
            self.install_note = "" if result.ok else "; ".join(h.error for h in result.hosts.values() if not h.ok)
            if not result.ok:
                raise RuntimeError(self.install_note)
            return result

        return await self._act("INSTALL", call)

    async def check_distribute(self) -> Any:
        self.refresh_from_disk()
        settings, env = self.settings, self.env

        async def call() -> Any:
            plan = await AGI.get_distrib(env, scheduler=settings.cluster.scheduler or None,
                                         workers=dict(settings.cluster.workers), events=self.bus, **settings.args_dict)
            if self.env is env:
                self._seen("plan")
                self.param.update(plan=plan, plan_unsaved=False)
            return plan

        return await self._act("CHECK DISTRIBUTE", call)

    def save_plan(self) -> Path:
        path = AGI.save_plan(self.env, self.plan)
        self._seen("plan")
        self.plan_unsaved = False
        self.param.trigger("plan")
        return path

    def run_request(self) -> RunRequest:
        cluster = self.settings.cluster
        return RunRequest(
            params=self.settings.args_dict,
            scheduler=cluster.scheduler or None,
            workers=dict(cluster.workers),
            mode=benchmark_modes(cluster.mode) if self.benchmark_all else cluster.mode,
            rapids_enabled=cluster.rapids,
            workers_data_path=cluster.workers_data_path or None,
            verbose=cluster.verbose,
        )

    async def run(self) -> Any:
        self.refresh_from_disk()
        env = self.env

        async def call() -> Any:
            result = await AGI.run(env, request=self.run_request(), events=self.bus, keep_cluster=True)
            if self.env is not env:
                return result
            self._seen("plan", "last_run", "benchmark")
            if hasattr(result, "runs"):
                self.benchmark_result = result
                self.run_result = result.runs[-1] if result.runs else None
            else:
                self.run_result = result
            self.param.update(plan=AGI.load_plan(env), plan_unsaved=False)
            return result

        return await self._act("RUN", call)


def _app_files(env: AgiEnv) -> FileVersions:
    return FileVersions({"settings": env.settings_path, "plan": env.plan_path, "last_run": env.last_run_path,
                         "benchmark": env.benchmark_path})


def _seed_settings(env: AgiEnv) -> None:
    from ..settings import SettingsStore

    try:
        SettingsStore(env.settings_path, env.settings_seed_path).ensure_seeded()
    except Exception:  # noqa: BLE001 - reading the settings next says what is wrong with the file
        pass


def _read_settings(env: AgiEnv) -> tuple[AppSettings | None, str]:
    """The app's settings, or None and why the file could not be read (it is kept: a page offers to reseed)."""
    try:
        return AppSettings(env), ""
    except Exception as exc:
        return None, str(exc)
