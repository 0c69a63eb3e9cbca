"""From settings and overrides to a work plan: what CHECK DISTRIBUTE and RUN share."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from .env import AgiEnv
from .events import EventBus
from .fsutil import keep_copy
from .hosts import validate_workers
from .paths import PathEscapeError
from .plan import PlanError, WorkPlan, build_plan
from .prepare import locked_prepare, run_interruptible
from .runtime.base import BaseManager
from .settings import AppSettings, args_to_dict, make_args

__all__ = ["RunInputs", "resolve_inputs", "build_distribution", "prepare_inputs", "plan_for_run", "save_plan",
           "load_plan", "read_plan"]


@dataclass
class RunInputs:
    """Args, worker map and data folders after settings and overrides are merged and validated."""

    args: Any  # the app's param object
    args_dict: dict[str, Any]
    workers: dict[str, int]
    scheduler: str | None
    data_in: Path
    data_out: Path


def resolve_inputs(
    env: AgiEnv,
    params: Mapping[str, Any] | None = None,
    workers: Mapping[str, int] | None = None,
    scheduler: str | None = None,
    data_in: str | None = None,
    data_out: str | None = None,
    settings: AppSettings | None = None,
) -> RunInputs:
    """Values not given come from the app's settings; an unknown argument names itself."""
    settings = settings or AppSettings(env)
    values = {**settings.args_dict, **dict(params or {})}
    args = make_args(env.spec.args_class(), values, env.app)
    chosen_workers = validate_workers(dict(workers) if workers is not None else dict(settings.cluster.workers))
    folder_in = env.resolve_data_path(data_in, f"{env.app}/data_in", "data_in")
    folder_out = env.resolve_data_path(data_out, f"{env.app}/data_out", "data_out")
    if folder_in == folder_out:
        raise PathEscapeError(f"data_in and data_out are the same folder ({folder_in}): a reset would delete the inputs")
    return RunInputs(
        args=args,
        args_dict=args_to_dict(args),
        workers=chosen_workers,
        scheduler=scheduler if scheduler is not None else (settings.cluster.scheduler or None),
        data_in=folder_in,
        data_out=folder_out,
    )


async def build_distribution(env: AgiEnv, inputs: RunInputs, bus: EventBus | None = None) -> WorkPlan:
    """Prepare the inputs (apps may generate data) and balance the partitions over the slots.

    Preparing stops when the caller is cancelled, and waits while another prepare of the same inputs runs.
    """
    manager = env.spec.manager_class()(inputs.args, inputs.data_in, inputs.data_out)
    if bus:
        bus.log(f"preparing {env.app} inputs in {inputs.data_in}", source="distrib")
    partitions = await run_interruptible(partial(locked_prepare, manager, inputs.data_in, bus, env.app, True))
    if not partitions:
        raise PlanError(f"{env.app} produced no partitions for these args")
    plan = build_plan(env.app, partitions, inputs.workers, inputs.args_dict, str(inputs.data_in), str(inputs.data_out))
    if bus:
        loads = plan.loads()
        bus.log(
            f"plan: {len(partitions)} partitions over {len(loads)} worker slots "
            f"(heaviest slot {max(loads.values()):.3g}, lightest {min(loads.values()):.3g})",
            source="distrib",
        )
    return plan


async def prepare_inputs(env: AgiEnv, inputs: RunInputs, bus: EventBus | None = None) -> None:
    """Prepare the inputs a saved plan reads (apps regenerate what is missing); stops when the caller is
    cancelled, and waits while another prepare of the same inputs runs. A manager without a ``prepare``
    of its own has nothing to prepare: no thread, no lock (a run pays neither)."""
    manager = env.spec.manager_class()(inputs.args, inputs.data_in, inputs.data_out)
    if getattr(type(manager), "prepare", None) is BaseManager.prepare:
        return
    await run_interruptible(partial(locked_prepare, manager, inputs.data_in, bus, env.app, False))


def save_plan(env: AgiEnv, plan: WorkPlan) -> Path:
    """Save ``plan``; a saved plan that cannot be read (edited by hand, say) is kept beside it, not lost."""
    if read_plan(env)[1] is not None:
        keep_copy(env.plan_path)
    return plan.save(env.plan_path)


def read_plan(env: AgiEnv) -> tuple[WorkPlan | None, str | None]:
    """The saved plan, or None and why it cannot be read (None too when there is no saved plan)."""
    if not env.plan_path.is_file():
        return None, None
    try:
        return WorkPlan.load(env.plan_path), None
    except (OSError, PlanError, KeyError, TypeError, ValueError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def load_plan(env: AgiEnv) -> WorkPlan | None:
    """The saved plan, or None when there is none or it cannot be read."""
    return read_plan(env)[0]


async def plan_for_run(env: AgiEnv, inputs: RunInputs, bus: EventBus | None = None) -> tuple[WorkPlan, str, str]:
    """The saved plan while it matches the args, workers and inputs; else a rebuilt one, and why."""
    saved, unreadable = read_plan(env)
    if saved is not None:
        reason = saved.mismatch(inputs.args_dict, inputs.workers, str(inputs.data_in))
        if reason is None:
            note = "using the saved work plan" + (" (edited)" if saved.edited else "")
            await prepare_inputs(env, inputs, bus)
            return saved, "saved", note
        note = f"rebuilt the work plan: {reason}"
        source = "rebuilt"
    elif unreadable:
        note = f"built a work plan (the saved one cannot be read, and is kept as a .broken copy: {unreadable})"
        source = "built"
    else:
        note, source = "built a work plan (none was saved)", "built"
    plan = await build_distribution(env, inputs, bus)
    save_plan(env, plan)
    return plan, source, note
