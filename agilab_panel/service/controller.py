"""``AGI.serve`` and ``AGI.submit``: start, check, stop and feed an app's service.

Nothing lives in the calling process: the service is its Dask processes, the queue under the share
and its state file, so a new process (the command line, a restarted dashboard) finds it, reports on
it, submits to it and stops it. Actions on one service take its lock, so a probe and the dashboard
never restart the same loop twice. Every action writes the health snapshot.

- ``start`` starts a scheduler and one single-threaded worker per slot (in their own session), one
  loop per worker, pinned to it and kept by the scheduler as a published dataset, and returns once
  every loop has written its first heartbeat. On a running service it changes nothing and says so.
- ``status``/``health`` judge every loop (its Dask future, its heartbeat), restart the unhealthy ones
  (a dead or hung worker is started again; its tasks go back to pending, or to failed once their
  retries are spent), apply retention and measure the restart rate over its window.
- ``stop`` asks the loops to stop, waits for the running tasks up to ``stop_timeout``, then ends
  every process of the service and says which it could not end; interrupted tasks go back to pending.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from .. import modes
from ..distrib import build_distribution, load_plan, prepare_inputs, resolve_inputs
from ..env import AgiEnv
from ..events import EventBus
from ..execute.cluster import START_TIMEOUT, scheduler_reachable
from ..execute.common import make_job
from ..hosts import slot_ids
from ..fsutil import atomic_write_text
from ..runtime.job import Job
from ..settings import AppSettings
from . import queue as q
from .cluster import ServiceCluster, end_processes, owned_processes, respawn_worker
from .config import SERVICE_KEYS, ServiceSettings, load_service_settings, retention_policy, with_overrides
from .health import build_payload, health_path, write_health
from .heartbeat import LoopInfo, evaluate, read_heartbeats
from .state import ServiceState, SlotState, read_state, write_state

__all__ = ["ACTIONS", "ServiceError", "serve", "submit", "wait_submission", "plan_tasks"]

ACTIONS = ("start", "status", "health", "stop")
CONNECT_TIMEOUT = 10.0
LOCK_TIMEOUT = 120.0


class ServiceError(RuntimeError):
    """An action the service cannot do now (not running, not installed...); the message says what to do."""


@dataclass
class _Outcome:
    status: str
    message: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    restarted: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    state: ServiceState | None = None


# -- entry points ------------------------------------------------------------------------------------
async def serve(env: AgiEnv, action: str = "start", *, scheduler: str | None = None,
                workers: Mapping[str, int] | None = None, events: EventBus | None = None,
                **options: Any) -> dict[str, Any]:
    """Run one service action; see the module docstring. ``options`` override ``[service]`` for this call."""
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    unknown = sorted(set(options) - set(SERVICE_KEYS))
    if unknown:
        raise ValueError(f"unknown service option {unknown[0]!r} (known: {', '.join(SERVICE_KEYS)})")
    settings = with_overrides(load_service_settings(AppSettings(env)), options)  # bad values refused here
    paths = q.ServicePaths.of(env.share, env.app)
    running = read_state(paths)
    # a running service keeps the settings it started with, unless this call says otherwise
    kept = {k: v for k, v in running.settings.items() if k in SERVICE_KEYS} if running and action != "start" else {}
    config = with_overrides(settings, {**kept, **options})
    target = health_path(env.share, env.app, config.health_output_path)  # an escape is refused before anything
    bus = events or EventBus()
    launch = _launch_inputs(env, workers, scheduler) if action == "start" else None  # bad input: before any file
    paths.root.mkdir(parents=True, exist_ok=True)
    async with _locked(paths):
        paths.ensure()
        if action == "start":
            outcome = await _start(env, launch, config, paths, bus)
        elif action == "stop":
            outcome = await _stop(env, config, paths)
        else:
            outcome = await _status(env, config, paths)
        payload = _payload(env, config, paths, outcome)
        write_health(target, payload)
    if action == "health":
        return {**payload, "path": str(target)}
    return {"action": action, "app": env.app, "status": outcome.status, "message": outcome.message,
            **outcome.details, "health": payload, "health_path": str(target)}


async def submit(env: AgiEnv, args: Mapping[str, Any], *, events: EventBus | None = None) -> str:
    """Queue the app's work plan for ``args`` over the service's slots: one task per slot; returns the submission id.

    Every check (a running service, known args, a plan) comes before the first file is written.
    """
    paths = q.ServicePaths.of(env.share, env.app)
    state = read_state(paths)
    if state is None or paths.stop_flag.exists():
        raise ServiceError(f"no service is running for app {env.app}: start it first "
                           f"(agilab-panel service start --app {env.app})")
    if not scheduler_reachable(state.scheduler.removeprefix("tcp://"), timeout=2.0):
        raise ServiceError(f"the service of app {env.app} does not answer at {state.scheduler}: "
                           f"stop it and start it again")
    settings = AppSettings(env)
    inputs = resolve_inputs(env, args, state.workers, settings=settings)
    saved = load_plan(env)
    if saved is not None and saved.mismatch(inputs.args_dict, inputs.workers, str(inputs.data_in)) is None:
        plan = saved  # the saved (maybe edited) plan still fits: honour it, as RUN does
        await prepare_inputs(env, inputs, events)
    else:
        plan = await build_distribution(env, inputs, events)
    job = make_job(env, plan, state.mode, inputs.data_in, inputs.data_out,
                   Path(state.cython_path) if state.cython_path else None)
    manifest, tasks = plan_tasks(job, q.new_submission_id())
    _claim_output(inputs.data_out, env.app)
    q.write_submission(paths.ensure(), manifest)  # first: the loop finishing the last task reads it
    q.enqueue(paths, tasks)
    return manifest["id"]


def plan_tasks(job: Job, submission: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A submission's record and its tasks: one per slot with partitions, each carrying the job and its part."""
    job.run_id = submission
    base = json.loads(job.slim().to_json())
    now = time.time()
    tasks = []
    for index, (slot, parts) in enumerate((s, p) for s, p in job.slots.items() if p):
        tasks.append({"schema": q.TASK_SCHEMA, "id": q.task_id(submission, index), "submission": submission,
                      "index": index, "slot": slot, "created": now, "attempts": 0,
                      "job": {**base, "order": [p["label"] for p in parts]}, "partitions": parts})
    manifest = {"id": submission, "app": job.app, "status": "submitted", "created": now, "args": job.args,
                "tasks": [t["id"] for t in tasks], "job": base}
    return manifest, tasks


async def wait_submission(env: AgiEnv, submission: str, timeout: float | None = None) -> dict[str, Any]:
    """Block until every task of ``submission`` is done or failed; returns its final record.

    While no task of it finishes for a heartbeat timeout, the service is checked (``status``), so a
    loop that died meanwhile is restarted and its task run again: the wait never outlasts a dead loop.
    """
    q.check_submission_id(submission)
    paths = q.ServicePaths.of(env.share, env.app)
    deadline = None if timeout is None else time.monotonic() + timeout
    progress, since = -1, time.monotonic()
    while True:
        record = q.read_submission(paths, submission)
        if record is None:
            raise ServiceError(f"no submission {submission!r} for app {env.app}")
        if record.get("status") in ("done", "failed"):
            return record
        state = read_state(paths)
        if state is None:
            raise ServiceError(f"the service of app {env.app} stopped before submission {submission} finished; "
                               "its tasks wait in pending/ for the next start")
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"submission {submission} did not finish within {timeout:g}s")
        finished = sum((paths.done / f"{t}.json").exists() or (paths.failed / f"{t}.json").exists()
                       for t in record.get("tasks", []))
        if finished != progress:
            progress, since = finished, time.monotonic()
        elif time.monotonic() - since > float(state.settings.get("heartbeat_timeout", 10.0)):
            await serve(env, "status")
            since = time.monotonic()
        await asyncio.sleep(0.02)


# -- helpers -----------------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def _locked(paths: q.ServicePaths):  # noqa: ANN202
    lock = FileLock(str(paths.lock_file), thread_local=False)
    try:
        await asyncio.to_thread(lock.acquire, timeout=LOCK_TIMEOUT)
    except Timeout as exc:
        raise ServiceError(f"another action on this service holds {paths.lock_file} for over {LOCK_TIMEOUT:.0f}s") from exc
    try:
        yield
    finally:
        lock.release()


def _claim_output(data_out: Path, app: str) -> None:
    """Mark a new output folder as the app's own, as RUN does (when the path rules are available)."""
    try:
        from ..paths import claim_output
    except ImportError:  # pragma: no cover - older engines
        data_out.mkdir(parents=True, exist_ok=True)
        return
    claim_output(data_out, app)


def _service_mode(settings: AppSettings, env: AgiEnv) -> int:
    """Loops run in Dask workers; the pool, Cython and RAPIDS toggles apply inside them."""
    cluster = settings.cluster
    mode = modes.DASK_MODE | (modes.POOL_MODE if cluster.pool else 0)
    if cluster.cython and env.spec.cython:
        mode |= modes.CYTHON_MODE
    if cluster.rapids:
        mode |= modes.RAPIDS_MODE
    return mode


def _dataset(app: str, slot: str) -> str:
    return f"agilab-service-{app}-{slot}"


async def _connect(address: str) -> Any:
    from distributed import Client

    return await asyncio.wait_for(Client(address, asynchronous=True, timeout=CONNECT_TIMEOUT), CONNECT_TIMEOUT + 2)


async def _close(client: Any) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.close(), 5)


async def _identity(client: Any) -> dict[str, str]:
    """Connected workers: name -> address."""
    try:
        info = await client.scheduler.identity(n_workers=-1)
    except TypeError:
        info = await client.scheduler.identity()
    return {str(w.get("name")): addr for addr, w in info.get("workers", {}).items()}


async def _future_states(client: Any, keys: list[str]) -> dict[str, str]:
    """Dask's state of each loop's future, read on the scheduler (the published datasets keep them)."""
    def states(dask_scheduler: Any = None, keys: list[str] = keys) -> dict[str, str | None]:
        return {k: (dask_scheduler.tasks[k].state if k in dask_scheduler.tasks else None) for k in keys}

    raw = await client.run_on_scheduler(states)
    mapping = {"memory": "finished", "erred": "error", None: "cancelled", "forgotten": "cancelled"}
    return {k: mapping.get(v, "pending") for k, v in raw.items()}


async def _submit_loop(client: Any, paths: q.ServicePaths, state: ServiceState, slot: str,
                       config: ServiceSettings) -> None:
    """A new incarnation of ``slot``'s loop, pinned to its worker; the previous one (if alive) stands down."""
    from .loop import serve as loop_serve

    s = state.slots[slot]
    s.incarnation += 1
    s.started = time.time()
    s.key = f"agilab-service-{state.app}-{slot}-{s.incarnation}"
    atomic_write_text(paths.slot_control(slot), str(s.incarnation))
    spec = {"root": str(paths.root), "worker": slot, "incarnation": s.incarnation, "poll_interval": config.poll_interval}
    future = client.submit(loop_serve, spec, key=s.key, workers=[s.address], allow_other_workers=False, pure=False)
    await client.publish_dataset(future, name=_dataset(state.app, slot), override=True)


async def _wait_first_beats(paths: q.ServicePaths, state: ServiceState, slots: list[str], timeout: float) -> None:
    """Until each loop's first heartbeat of its incarnation; a loop that ended at once is an error naming why."""
    deadline = time.monotonic() + timeout
    while True:
        beats = read_heartbeats(paths.heartbeats)
        waiting = []
        for slot in slots:
            beat = beats.get(slot)
            if beat is None or int(beat.get("incarnation", -1)) != state.slots[slot].incarnation:
                waiting.append(slot)
            elif beat.get("state") == "stopped":
                error = str(beat.get("error") or beat.get("exit")).split("\n")[0]
                raise ServiceError(f"the loop of worker {slot} ended as it started: {error}")
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise ServiceError(f"the loops of {', '.join(waiting)} wrote no heartbeat within {timeout:.0f}s")
        await asyncio.sleep(0.02)


def _own(state: ServiceState) -> bool:
    """Processes this machine may signal: ours, started here."""
    return not state.external and state.host == socket.gethostname()


def _pids(state: ServiceState) -> dict[str, int | None]:
    pids: dict[str, int | None] = {slot: s.pid for slot, s in state.slots.items()}
    pids["scheduler"] = state.scheduler_pid
    return pids


def _requeue_slot(paths: q.ServicePaths, slot: str | None, reason: str, max_retries: int) -> dict[str, str]:
    """Every task left in running/ by ``slot``'s loop (every slot's when None): where each went."""
    moved = {}
    for name in sorted(q.task_files(paths.running)):
        task, owner = q.parse_running(name)
        if slot is None or owner == q.safe_name(slot):
            moved[task] = q.requeue(paths, paths.running / name, reason, max_retries)
            if moved[task] == "failed":
                q.finish_submission(paths, q.submission_of(task))
    return moved


def _payload(env: AgiEnv, config: ServiceSettings, paths: q.ServicePaths, outcome: _Outcome) -> dict[str, Any]:
    state = outcome.state
    now = time.time()
    window = config.restart_window_sec
    return build_payload(
        app=env.app, status=outcome.status, rows=outcome.rows, queue=q.counts(paths),
        heartbeat_timeout=config.heartbeat_timeout, restarted=outcome.restarted,
        cleanup=outcome.details.get("cleanup"),
        restart_rate=state.restart_rate(window, now) if state else 0.0, restart_window=window,
        restarts_in_window=len(state.restarts_within(window, now)) if state else 0,
        message=outcome.message, now=now,
        extra={"scheduler": state.scheduler if state else None, "queue_dir": str(paths.queue)},
    )


# -- start -------------------------------------------------------------------------------------------
@dataclass
class _Launch:
    settings: AppSettings
    inputs: Any  # RunInputs: the worker map and scheduler, checked
    python: Path
    cython_path: Path


def _launch_inputs(env: AgiEnv, workers: Mapping[str, int] | None, scheduler: str | None) -> _Launch:
    """What a start needs, checked: the worker map, the scheduler address, an installed worker environment."""
    from ..install import NotInstalledError, cython_path, worker_python

    settings = AppSettings(env)
    inputs = resolve_inputs(env, None, workers, scheduler, settings=settings)
    try:
        python = worker_python(env)
    except NotInstalledError as exc:
        raise ServiceError(str(exc)) from exc
    return _Launch(settings, inputs, python, cython_path(env))


async def _start(env: AgiEnv, launch: _Launch, config: ServiceSettings, paths: q.ServicePaths,
                 bus: EventBus) -> _Outcome:
    settings, inputs, python, cy = launch.settings, launch.inputs, launch.python, launch.cython_path
    state = read_state(paths)
    if state is not None:
        if scheduler_reachable(state.scheduler.removeprefix("tcp://"), timeout=2.0):
            outcome = await _status(env, config, paths, restart=False)
            outcome.message = (f"the service of app {env.app} is already running at {state.scheduler} "
                               f"({len(state.slots)} loops): nothing started")
            outcome.details["started"] = False
            return outcome
        await _clear_stale(paths, state, config)
    paths.stop_flag.unlink(missing_ok=True)
    for slot in slot_ids(inputs.workers):  # what the loops of a stopped service left: a new service starts afresh
        paths.heartbeat_file(slot).unlink(missing_ok=True)
        paths.slot_control(slot).unlink(missing_ok=True)
    cluster = ServiceCluster(env, python, inputs.workers, scheduler=inputs.scheduler, cython_path=cy, persistent=True)
    cluster.bus = bus
    how = await cluster.start()
    state = ServiceState(app=env.app, host=socket.gethostname(), scheduler=str(cluster.address),
                         external=cluster.external, cluster_dir=str(cluster.dir), python=str(python),
                         cython_path=str(cy), mode=_service_mode(settings, env), workers=dict(inputs.workers),
                         settings={k: getattr(config, k) for k in SERVICE_KEYS},
                         scheduler_pid=cluster.procs["scheduler"].pid if "scheduler" in cluster.procs else None)
    for slot, address in cluster.slot_workers.items():
        proc = cluster.procs.get(slot)
        state.slots[slot] = SlotState(worker=slot, address=address, pid=proc.pid if proc else None,
                                      command=list(proc.args) if proc else None)
    write_state(paths, state)  # from here on, a failure leaves a service that stop can end
    try:
        for slot in state.slots:
            await _submit_loop(cluster.client, paths, state, slot, config)
        write_state(paths, state)
        await _wait_first_beats(paths, state, list(state.slots), START_TIMEOUT)
    except BaseException:
        await cluster.detach()
        await _stop(env, config, paths)
        raise
    await cluster.detach()
    outcome = await _status(env, config, paths, restart=False)
    outcome.message = (f"started the service of app {env.app}: {len(state.slots)} loops on the scheduler "
                       f"{state.scheduler} ({how})")
    outcome.details["started"] = True
    return outcome


async def _clear_stale(paths: q.ServicePaths, state: ServiceState, config: ServiceSettings) -> None:
    """A state file whose scheduler is gone (a reboot, a kill): end what is left, requeue, forget it."""
    if _own(state):
        await asyncio.to_thread(end_processes, _pids(state), state.cluster_dir, time.monotonic() + 5)
    _requeue_slot(paths, None, "the service's scheduler was gone", config.max_retries)
    paths.state_file.unlink(missing_ok=True)


# -- status ------------------------------------------------------------------------------------------
async def _evaluate(client: Any, state: ServiceState, paths: q.ServicePaths,
                    config: ServiceSettings) -> list[dict[str, Any]]:
    names: dict[str, str] = {}
    futures: dict[str, str] = {}
    if client is not None:
        names = await _identity(client)
        keys = {slot: s.key for slot, s in state.slots.items()}
        states = await _future_states(client, list(keys.values()))
        futures = {slot: states.get(key, "cancelled") for slot, key in keys.items()}
        state.futures = futures
    dead = await asyncio.to_thread(_dead_slots, state)
    loops = []
    for slot, s in state.slots.items():
        # by address: a cluster someone else started names its workers its own way
        connected = None if client is None else (s.address in names.values() if s.address else slot in names)
        if slot in dead:  # its process is gone, whether or not the scheduler has seen its connection close yet
            connected = False
        loops.append(LoopInfo(worker=slot, incarnation=s.incarnation, started=s.started,
                              future_state=futures.get(slot, "unknown"), connected=connected, address=s.address))
    return evaluate(loops, read_heartbeats(paths.heartbeats), config.heartbeat_timeout)


async def _status(env: AgiEnv, config: ServiceSettings, paths: q.ServicePaths, *, restart: bool = True) -> _Outcome:
    state = read_state(paths)
    cleanup = q.cleanup(paths, retention_policy(config))
    if state is None:
        return _Outcome("idle", f"no service is running for app {env.app}", details={"cleanup": cleanup})
    try:
        client = await _connect(state.scheduler)
    except Exception as exc:
        rows = await _evaluate(None, state, paths, config)
        return _Outcome("error", f"the scheduler {state.scheduler} does not answer ({type(exc).__name__}): "
                        "stop the service and start it again", rows=rows, details={"cleanup": cleanup}, state=state)
    try:
        rows = await _evaluate(client, state, paths, config)
        restarted: dict[str, str] = {}
        errors: dict[str, str] = {}
        if restart:
            for row in rows:
                if row["healthy"]:
                    continue
                try:
                    await _restart(client, state, paths, config, row)
                    restarted[row["worker"]] = row["reason"]
                except Exception as exc:
                    errors[row["worker"]] = f"{type(exc).__name__}: {exc}".split("\n")[0]
        write_state(paths, state)  # restarts, and the futures' states the cheap views show
        closed = await _finish_orphans(client, state, paths)
    finally:
        await _close(client)
    unhealthy = [r["worker"] for r in rows if not r["healthy"]]
    if errors:
        status, message = "error", "could not restart " + "; ".join(f"{w}: {e}" for w, e in errors.items())
    elif unhealthy:
        status = "degraded"
        message = (f"{len(unhealthy)} unhealthy loop(s): " + ", ".join(f"{r['worker']} ({r['reason']})" for r in rows
                                                                       if not r["healthy"])
                   + (f"; restarted {', '.join(restarted)}" if restarted else ""))
    else:
        status, message = "running", f"{len(rows)} loop(s) healthy"
    if closed:
        message += "; closed " + ", ".join(f"submission {sub} ({how})" for sub, how in closed.items())
    return _Outcome(status, message, rows=rows, restarted=restarted,
                    details={"cleanup": cleanup, "restart_errors": errors, "closed_submissions": closed}, state=state)


async def _finish_orphans(client: Any, state: ServiceState, paths: q.ServicePaths) -> dict[str, str]:
    """Submissions whose tasks all ended but whose finisher died before closing them: closed by a worker
    (the reduce needs the app's worker), outside its loop's thread; {submission: final status}."""
    if not q.unfinished_submissions(paths):
        return {}
    connected = set((await _identity(client)).values())
    address = next((s.address for s in state.slots.values() if s.address in connected), None)
    if address is None:
        return {}
    from .loop import finish_orphans_async

    live = {slot: s.incarnation for slot, s in state.slots.items()}
    try:
        done = await client.run(finish_orphans_async, str(paths.root), live, workers=[address])
    except Exception:  # the worker went meanwhile: the next status closes them
        return {}
    return dict(done.get(address, {}))


async def _restart(client: Any, state: ServiceState, paths: q.ServicePaths, config: ServiceSettings,
                   row: dict[str, Any]) -> None:
    """A new loop for an unhealthy slot; a dead or hung worker process is replaced first."""
    slot, reason = row["worker"], row["reason"]
    s = state.slots[slot]
    listed = s.address in (await _identity(client)).values()
    gone = not listed or slot in await asyncio.to_thread(_dead_slots, state, [slot])
    hung = reason.startswith("stale-heartbeat") and not gone
    if (gone or hung) and not _own(state):
        raise ServiceError(f"worker {slot} of the external cluster {state.scheduler} is gone or stuck: restart it there")
    if gone or hung:
        await asyncio.to_thread(end_processes, {slot: s.pid}, state.cluster_dir, time.monotonic() + 5)
        if listed:  # the scheduler would refuse the new worker its slot's name while it lists the old one
            await _forget_worker(client, s.address)
    _requeue_slot(paths, slot, reason, config.max_retries)
    state.record_restart(slot, reason)
    if gone or hung:
        if not s.command:
            raise ServiceError(f"no command recorded to start worker {slot} again")
        old = s.address
        s.pid = await asyncio.to_thread(respawn_worker, s.command, state.cluster_dir, slot, state.cython_path)
        s.address = await _wait_worker(client, slot, s.pid, old)
    await _submit_loop(client, paths, state, slot, config)


def _dead_slots(state: ServiceState, slots: list[str] | None = None) -> set[str]:
    """Slots (of ``slots``, else all) of a service started here whose worker process has ended (none for an
    external cluster)."""
    if not _own(state):
        return set()
    pids = {slot: s.pid for slot, s in state.slots.items() if s.pid and (slots is None or slot in slots)}
    return set(pids) - set(owned_processes(pids, state.cluster_dir))


async def _forget_worker(client: Any, address: str) -> None:
    """Take an ended worker off the scheduler now, rather than when it next notices the closed connection."""
    async def remove(dask_scheduler: Any = None, address: str = address) -> None:
        if address in dask_scheduler.workers:
            await dask_scheduler.remove_worker(address, stimulus_id=f"agilab-service-ended-{time.time()}",
                                               close=False)

    await client.run_on_scheduler(remove)


async def _wait_worker(client: Any, slot: str, pid: int, old: str = "") -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        address = (await _identity(client)).get(slot)
        if address and address != old:
            return address
        await asyncio.sleep(0.05)
    raise ServiceError(f"the restarted worker {slot} (pid {pid}) did not join within {START_TIMEOUT:.0f}s")


# -- stop --------------------------------------------------------------------------------------------
async def _stop(env: AgiEnv, config: ServiceSettings, paths: q.ServicePaths) -> _Outcome:
    state = read_state(paths)
    if state is None:
        return _Outcome("stopped", f"no service was running for app {env.app}: nothing to stop",
                        details={"stopped": [], "not_stopped": {}, "requeued": {}})
    started = time.monotonic()
    deadline = started + config.stop_timeout
    atomic_write_text(paths.stop_flag, json.dumps({"time": time.time()}))
    graceful_until = deadline - min(2.0, config.stop_timeout / 3)
    while time.monotonic() < graceful_until:  # loops finish their task and say stopped
        beats = read_heartbeats(paths.heartbeats)
        if all(beats.get(slot, {}).get("state") == "stopped" and
               int(beats[slot].get("incarnation", -1)) == s.incarnation for slot, s in state.slots.items()):
            break
        if _own(state) and not owned_processes({k: v for k, v in _pids(state).items() if k != "scheduler"},
                                               state.cluster_dir):
            break  # every worker is already gone
        await asyncio.sleep(0.05)
    ended: list[str] = []
    survivors: dict[str, int] = {}
    if _own(state):
        pids = _pids(state)
        workers_first = {k: v for k, v in pids.items() if k != "scheduler"}
        ended, survivors = await asyncio.to_thread(end_processes, workers_first, state.cluster_dir,
                                                   max(time.monotonic() + 0.5, deadline - 0.5))
        more, left = await asyncio.to_thread(end_processes, {"scheduler": pids["scheduler"]}, state.cluster_dir,
                                             max(time.monotonic() + 0.5, deadline))
        ended += more
        survivors.update(left)
    requeued = _requeue_slot(paths, None, "the service stopped while it ran", config.max_retries)
    if survivors:
        message = (f"stopped the service of app {env.app} except " +
                   ", ".join(f"{name} (pid {pid})" for name, pid in survivors.items()) +
                   f": still running after {config.stop_timeout:g}s")
        status = "error"
    else:
        paths.state_file.unlink(missing_ok=True)
        note = "" if _own(state) else f" (the processes of the external scheduler {state.scheduler} keep running)"
        message = f"stopped the service of app {env.app} in {time.monotonic() - started:.1f}s{note}"
        status = "stopped"
    if requeued:
        message += f"; {len(requeued)} interrupted task(s) back in pending/"
    return _Outcome(status, message, details={"stopped": ended, "not_stopped": survivors, "requeued": requeued},
                    state=state if survivors else None)
