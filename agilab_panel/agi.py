"""AGI: the verbs behind every button, as plain awaitable calls (``await AGI.run(...)``)."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import modes
from .distrib import build_distribution, load_plan, plan_for_run, resolve_inputs, save_plan
from .env import AgiEnv
from .events import EventBus, RunEvent, stderr_printer
from .execute.cluster import cluster_pool
from .execute.common import make_job
from .execute.result import BenchmarkResult, RunError, RunResult
from .fsutil import atomic_write_text
from .paths import PathEscapeError, claim_output, inside, reset_output
from .plan import WorkPlan
from .request import RunRequest
from .settings import AppSettings

__all__ = ["AGI"]


def _bus(events: EventBus | None, env: AgiEnv) -> EventBus:
    if events is not None:
        return events
    bus = EventBus()
    if env.verbose >= 1:
        bus.add_listener(stderr_printer(env.verbose))
    return bus


class AGI:
    """Install, distribute and run an app; every method is a coroutine."""

    POOL_MODE = modes.POOL_MODE
    PYTHON_MODE = modes.PYTHON_MODE
    CYTHON_MODE = modes.CYTHON_MODE
    DASK_MODE = modes.DASK_MODE
    RAPIDS_MODE = modes.RAPIDS_MODE

    mode_to_str = staticmethod(modes.mode_to_str)
    str_to_mode = staticmethod(modes.str_to_mode)
    mode_label = staticmethod(modes.mode_label)

    # -- install -------------------------------------------------------------------------------------
    @staticmethod
    async def install(
        app_env: AgiEnv,
        scheduler: str | None = None,
        workers: Mapping[str, int] | None = None,
        modes_enabled: int | str | None = None,
        verbose: int | None = None,
        *,
        events: EventBus | None = None,
        force: bool = False,
        **args: Any,
    ) -> Any:
        """Provision the worker environment on every host of ``workers``; returns per-host, per-step results."""
        from .install import install_app

        if verbose is not None:
            app_env.verbose = verbose
        bus = _bus(events, app_env)
        settings = AppSettings(app_env)
        inputs = resolve_inputs(app_env, args, workers, scheduler, settings=settings)
        enabled = settings.cluster.mode if modes_enabled is None else modes.parse_mode(modes_enabled)
        return await install_app(app_env, inputs.workers, enabled, bus, force=force, scheduler=inputs.scheduler)

    # -- distribute ----------------------------------------------------------------------------------
    @staticmethod
    async def get_distrib(
        app_env: AgiEnv,
        scheduler: str | None = None,
        workers: Mapping[str, int] | None = None,
        *,
        events: EventBus | None = None,
        data_in: str | None = None,
        data_out: str | None = None,
        save: bool = True,
        **args: Any,
    ) -> WorkPlan:
        """Build the balanced work plan for these args and workers and save it as distribution_tree.json."""
        bus = _bus(events, app_env)
        inputs = resolve_inputs(app_env, args, workers, scheduler, data_in, data_out)
        plan = await build_distribution(app_env, inputs, bus)
        if save:
            save_plan(app_env, plan)
        return plan

    @staticmethod
    def load_plan(app_env: AgiEnv) -> WorkPlan | None:
        return load_plan(app_env)

    @staticmethod
    def save_plan(app_env: AgiEnv, plan: WorkPlan) -> Path:
        """Save an edited plan; RUN uses it while the args and workers still match."""
        return save_plan(app_env, plan)

    # -- run -----------------------------------------------------------------------------------------
    @staticmethod
    async def run(
        app_env: AgiEnv,
        request: RunRequest | None = None,
        *,
        events: EventBus | None = None,
        keep_cluster: bool = True,
        detach_cluster: bool = False,
        **params: Any,
    ) -> RunResult | BenchmarkResult:
        """Run one mode, or benchmark several (``mode=None`` or a list); returns structured results.

        ``keep_cluster`` keeps what a run starts warm for the next run of the same app and worker map
        (a Dask cluster, or the local runner that forks mode-0 and pool runs); it still ends with this
        process. ``False`` starts fresh processes and stops them when the run ends.
        ``detach_cluster`` starts a cluster, or the local runner, that outlives this process (found again
        by later processes; stopped with :meth:`stop_cluster`, a kept runner also by its idle timeout).
        """
        request = request or RunRequest(params=params)
        bus = _bus(events, app_env)
        settings = AppSettings(app_env)
        inputs = resolve_inputs(app_env, request.params, request.workers, request.scheduler,
                                request.data_in, request.data_out, settings=settings)
        if not request.is_benchmark:
            return await _run_mode(app_env, inputs, request.mode, request, bus, keep_cluster, persistent=detach_cluster)
        enabled = settings.cluster.mode | (modes.RAPIDS_MODE if request.rapids_enabled else 0)
        chosen = list(request.mode) if request.mode is not None else modes.benchmark_modes(enabled)
        return await _benchmark(app_env, inputs, chosen, request, bus, keep_cluster, detach_cluster)

    @staticmethod
    def stop_cluster(app_env: AgiEnv) -> list[int]:
        """Stop the cluster and the local runner an earlier process left running for this app; returns
        the pids stopped."""
        from .execute.cluster import stop_kept_cluster
        from .execute.local import KEPT_STATE
        from .execute.zygote import stop_kept_runner

        return stop_kept_cluster(app_env) + stop_kept_runner(app_env.user_app_dir / "jobs" / KEPT_STATE)

    @staticmethod
    async def warm(app_env: AgiEnv) -> bool:
        """Start the local runner of an installed app ahead of its first run; False when not installed."""
        from .execute.local import warm_runner
        from .install import NotInstalledError, cython_path, worker_python

        try:
            python = worker_python(app_env)
        except NotInstalledError:
            return False
        await warm_runner(python, app_env.spec.worker_ref, str(cython_path(app_env)), str(app_env.spec.src_path),
                          app_env.user_app_dir / "jobs")
        return True

    @staticmethod
    async def cool(app_env: AgiEnv) -> None:
        """Stop the local runner this process keeps warm for the app (started by :meth:`warm` or a run)."""
        from .execute.zygote import close_zygotes

        await close_zygotes(within=app_env.wenv_path())

    @staticmethod
    async def shutdown(keep_persistent: bool = False) -> None:
        """Stop the clusters and local runners this process keeps warm."""
        from .execute.zygote import close_zygotes

        await close_zygotes()
        await cluster_pool.close_all(keep_persistent=keep_persistent)

    # -- service mode ----------------------------------------------------------------------------------
    @staticmethod
    async def serve(
        app_env: AgiEnv,
        action: str = "start",
        scheduler: str | None = None,
        workers: Mapping[str, int] | None = None,
        *,
        events: EventBus | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Service mode (SPEC §8): ``action`` is start, status, health or stop.

        ``options`` override ``[service]`` of app_settings.toml for this call (``poll_interval``,
        ``heartbeat_timeout``, ``stop_timeout``, ``health_output_path``, the ``cleanup_*`` TTLs and
        max files, ``max_retries``, ``restart_window_sec``). ``health`` returns the health payload;
        the other actions a result holding it. Every action writes health.json.
        """
        from .service.controller import serve

        return await serve(app_env, action, scheduler=scheduler, workers=workers, events=_bus(events, app_env),
                           **options)

    @staticmethod
    async def submit(app_env: AgiEnv, *, events: EventBus | None = None, **args: Any) -> str:
        """Queue the app's work plan for ``args`` on the running service (one task per slot); returns its id."""
        from .service.controller import submit

        return await submit(app_env, args, events=_bus(events, app_env))

    @staticmethod
    async def wait_submission(app_env: AgiEnv, submission: str, timeout: float | None = None) -> dict[str, Any]:
        """Wait until every task of a submission is done or failed; returns its record (status, output, errors)."""
        from .service.controller import wait_submission

        return await wait_submission(app_env, submission, timeout)

    @staticmethod
    def last_output(app_env: AgiEnv) -> Path | None:
        """The output dataframe of the latest successful run or service submission (what LOAD DATA previews)."""
        from .service.queue import ServicePaths

        newest: tuple[float, Path] | None = None
        for record in (app_env.user_app_dir / "last_run.json", ServicePaths.of(app_env.share, app_env.app).last_output):
            try:
                data = json.loads(record.read_text())
                output, stamp = data["output"], float(data.get("time", 0.0))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            try:  # a record names a file the engine wrote under the share: anything else is not previewed
                path = inside(app_env.share, output, "output", root_name="share") if output else None
            except (PathEscapeError, TypeError):
                continue
            if path is not None and path.is_file() and (newest is None or stamp > newest[0]):
                newest = (stamp, path)
        return newest[1] if newest else None

    @staticmethod
    def last_run(app_env: AgiEnv) -> RunResult | None:
        """The app's latest run from any session or command, as it ended; None before the first one."""
        try:
            return RunResult.from_dict(json.loads(app_env.last_run_path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):  # no run yet, or a record without the result
            return None


async def _run_mode(env: AgiEnv, inputs: Any, mode: int, request: RunRequest, bus: EventBus,
                    keep_cluster: bool, *, persistent: bool = False) -> RunResult:
    from .execute.dask import run_dask
    from .execute.local import run_local
    from .install import cython_path

    started = time.perf_counter()
    bus.emit(RunEvent(app=env.app, mode=mode, state="started"))
    try:
        if mode & modes.CYTHON_MODE and not env.spec.cython:
            raise RunError(f"app {env.app} has no Cython build ([tool.agilab] cython is empty): turn the cython toggle off")
        if mode & modes.RAPIDS_MODE and not env.spec.rapids:
            raise RunError(f"app {env.app} has no RAPIDS path ([tool.agilab] rapids = false): turn the rapids toggle off")
        python = _engine_side_python(env, inputs.workers, mode)
        if request.reset_target:
            removed = await asyncio.to_thread(reset_output, inputs.data_out, env.app, env.spec.output, [inputs.data_in])
            bus.log(f"reset_target: removed {len(removed)} item(s) the app wrote in {inputs.data_out}", source="run")
        claim_output(inputs.data_out, env.app)
        plan, source, note = await plan_for_run(env, inputs, bus)
        bus.log(f"{modes.mode_label(mode)}: {note}", source="run")
        job = make_job(env, plan, mode, inputs.data_in, inputs.data_out, cython_path(env))
        how = ""
        if mode & modes.DASK_MODE:
            cluster, how = await cluster_pool.acquire(env, python, inputs.workers, scheduler=inputs.scheduler,
                                                      cython_path=cython_path(env), bus=bus, persistent=persistent)
            bus.log(f"Dask cluster {how} at {cluster.address}", source="run")
            try:
                info, statuses = await run_dask(job, cluster, bus)
            except BaseException as exc:
                # Dask cannot interrupt a running task: a cancelled run's partitions would go on in the
                # workers (and hold them) unless the workers stop too.
                if not cluster.alive() or not keep_cluster or isinstance(exc, asyncio.CancelledError):
                    cluster_pool.discard(cluster)
                    await cluster.close()
                raise
            seconds = time.perf_counter() - started  # stopping the cluster is not part of the run
            if not keep_cluster and not persistent:
                cluster_pool.discard(cluster)
                await cluster.close()
        else:
            info, statuses = await run_local(job, python, bus, env.user_app_dir / "jobs", warm=keep_cluster,
                                             kept=persistent)
            seconds = time.perf_counter() - started
    except BaseException as exc:
        bus.emit(RunEvent(app=env.app, mode=mode, state="failed", seconds=time.perf_counter() - started, detail=str(exc)))
        raise
    result = RunResult(
        app=env.app, mode=mode, seconds=seconds, plan_source=source, plan_note=note, plan=plan.to_dict(),
        output=info.get("output"), rows=info.get("rows", 0), columns=info.get("columns", []),
        partitions=list(statuses.values()), workers=dict(inputs.workers),
        nodes=len(inputs.workers) if mode & modes.DASK_MODE else 1, cluster=how, finished=time.time(),
    )
    # what every session and command reads back as the app's last run (the plan is distribution_tree.json,
    # so it is not copied into the record first)
    record = dataclasses.replace(result, plan={}).to_dict()
    atomic_write_text(env.last_run_path, json.dumps({**record, "plan": None, "time": result.finished}))
    bus.emit(RunEvent(app=env.app, mode=mode, state="done", seconds=seconds))
    return result


def _engine_side_python(env: AgiEnv, workers: Mapping[str, int], mode: int) -> Path:
    """The local worker environment's Python; a cluster run whose hosts are all remote needs none here
    (its workers start on the hosts), so the engine's own interpreter stands in."""
    import sys

    from .hosts import is_local_host
    from .install import NotInstalledError, worker_python

    try:
        return worker_python(env)
    except NotInstalledError as exc:
        if mode & modes.DASK_MODE and not any(is_local_host(h) for h in workers):
            return Path(sys.executable)
        raise RunError(str(exc)) from exc


async def _benchmark(env: AgiEnv, inputs: Any, chosen: Sequence[int], request: RunRequest, bus: EventBus,
                     keep_cluster: bool, persistent: bool = False) -> BenchmarkResult:
    """Time every mode the same way: one cluster for all, an untimed warm-up run of each mode (runner,
    workers, app imports, prepared inputs and plan), then ``request.repeats`` rounds over the modes in turn."""
    from .benchmark import write_benchmark
    from .install import cython_path

    started = time.perf_counter()
    only_dask = all(m & modes.DASK_MODE for m in chosen)  # then a map of remote hosts only needs nothing here
    python = _engine_side_python(env, inputs.workers, modes.DASK_MODE if only_dask else 0)
    errors: dict[int, str] = {}
    live = list(chosen)

    async def attempt(mode: int) -> RunResult | None:
        try:
            return await _run_mode(env, inputs, mode, request, bus, keep_cluster=True, persistent=persistent)
        except RunError as exc:
            errors[mode] = str(exc)
            live.remove(mode)
            bus.log(f"benchmark: {modes.mode_label(mode)} failed: {exc}", level="ERROR", source="run")
            return None

    best: dict[int, RunResult] = {}
    timings: dict[int, list[float]] = {}
    try:
        if any(m & modes.DASK_MODE for m in chosen):  # start-up is paid once, outside the timings
            cluster, how = await cluster_pool.acquire(env, python, inputs.workers, scheduler=inputs.scheduler,
                                                      cython_path=cython_path(env), bus=bus, persistent=persistent)
            bus.log(f"benchmark: Dask cluster {how} at {cluster.address}", source="run")
        for mode in list(live):
            bus.log(f"benchmark: warm-up run of {modes.mode_label(mode)} (not timed)", source="run")
            await attempt(mode)
        for _ in range(request.repeats):
            for mode in list(live):
                run = await attempt(mode)
                if run is None:
                    best.pop(mode, None)
                    timings.pop(mode, None)
                    continue
                timings.setdefault(mode, []).append(run.seconds)
                if mode not in best or run.seconds < best[mode].seconds:
                    best[mode] = run
    finally:
        if not keep_cluster:  # what the benchmark started for itself ends with it
            await AGI.shutdown(keep_persistent=True)
    if not best:
        raise RunError("every benchmarked mode failed: " + "; ".join(f"{m}: {e}" for m, e in errors.items()))
    runs = [best[m] for m in chosen if m in best]
    result = await asyncio.to_thread(write_benchmark, env.benchmark_path, env.app, runs, errors, timings,
                                     time.perf_counter() - started, request.repeats)
    bus.log(result.summary, source="run")
    return result
