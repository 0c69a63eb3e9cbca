"""``agilab-panel service ...`` and ``agilab-panel health ...`` (SPEC §9).

``health`` exits with the gate code (0, 2, 3, 4, 5 of SPEC §8) so probes can use it; anything that
keeps it from judging (a bad option, a health file that is not the schema, a service state file that
cannot be read) is one line on stderr and exit code 1, never a gate code.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["add_commands", "HEALTH_ERROR"]

HEALTH_ERROR = 1
_OPTIONS = (("--poll-interval", float, "seconds between heartbeats"),
            ("--heartbeat-timeout", float, "age in seconds after which a heartbeat is stale"),
            ("--stop-timeout", float, "seconds stop waits for running tasks before it kills"),
            ("--health-output-path", str, "health.json path (relative: inside the share)"))


def _options(ns: argparse.Namespace) -> dict[str, Any]:
    return {flag[2:].replace("-", "_"): getattr(ns, flag[2:].replace("-", "_")) for flag, _, _ in _OPTIONS
            if getattr(ns, flag[2:].replace("-", "_"), None) is not None}


def _table(result: dict[str, Any]) -> str:
    payload = result.get("health", result)
    lines = [str(result.get("message", ""))]
    rows = payload.get("worker_health", [])
    if rows:
        lines.append(f"{'worker':<24} {'healthy':<8} {'future':<10} {'heartbeat':<11} {'age (s)':>8}  reason")
        for r in rows:
            age = "" if r.get("heartbeat_age_sec") is None else f"{r['heartbeat_age_sec']:.1f}"
            lines.append(f"{r['worker']:<24} {str(r['healthy']).lower():<8} {r['future_state']:<10} "
                         f"{r['heartbeat_state']:<11} {age:>8}  {r['reason']}")
    queue = payload.get("queue", {})
    lines.append("queue: " + ", ".join(f"{k} {v}" for k, v in queue.items()))
    return "\n".join(lines)


async def _service(ns: argparse.Namespace) -> int:
    from ..agi import AGI
    from ..cli import _bus, _emit, _env, _workers, parse_set

    env = _env(ns)
    if ns.action == "submit":
        submission = await AGI.submit(env, events=_bus(ns), **parse_set(ns.set))
        if not ns.wait:
            _emit(ns, {"submission": submission}, submission)
            return 0
        print(submission, file=sys.stderr)
        record = await AGI.wait_submission(env, submission, timeout=ns.timeout)
        errors = record.get("errors") or {}
        text = f"{submission}: {record['status']}" + (f", {record.get('rows', 0)} rows -> {record['output']}"
                                                       if record.get("output") else "")
        text += "".join(f"\n{task}: {error}" for task, error in errors.items())
        _emit(ns, record, text)
        return 0 if record["status"] == "done" else 1
    result = await AGI.serve(env, ns.action, scheduler=ns.scheduler, workers=_workers(ns.workers), events=_bus(ns),
                             **_options(ns))
    _emit(ns, result, _table(result))
    return 1 if result["status"] == "error" else 0


async def _health(ns: argparse.Namespace) -> int:
    from ..agi import AGI
    from ..cli import _env
    from ..settings import AppSettings
    from .gate import evaluate_gate
    from .health import load_health_file
    from .prometheus import render

    try:
        env = _env(ns)
        thresholds = AppSettings(env).service_health
        if ns.from_file:
            payload = load_health_file(ns.from_file)
        else:
            payload = await AGI.serve(env, "health", **_options(ns))
        gate = evaluate_gate(
            payload,
            allow_idle=thresholds.allow_idle if ns.allow_idle is None else ns.allow_idle,
            max_unhealthy=thresholds.max_unhealthy if ns.max_unhealthy is None else ns.max_unhealthy,
            max_restart_rate=thresholds.max_restart_rate if ns.max_restart_rate is None else ns.max_restart_rate,
        )
    except Exception as exc:
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return HEALTH_ERROR
    if ns.format == "prometheus":
        sys.stdout.write(render([payload], {str(payload.get("app", "")): gate}))
    else:
        print(json.dumps({**payload, "gate": gate.to_dict()}, indent=2, default=str))
    print(f"health gate: {gate.code} ({gate.reason})", file=sys.stderr)
    return gate.code


def _one_line_errors(parser: argparse.ArgumentParser, code: int) -> None:
    """Usage errors exit with ``code`` (health keeps 2 for its gate)."""
    def error(message: str) -> None:
        parser.exit(code, f"{parser.prog}: error: {message}\n")

    parser.error = error  # type: ignore[method-assign]


def _non_negative(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value != value or value < 0:  # NaN or negative
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


def add_commands(sub: Any, common: Callable[..., None]) -> None:
    """The ``service`` and ``health`` subcommands, on the parser of :mod:`agilab_panel.cli`."""
    p = sub.add_parser("service", help="start, check, stop or feed the app's service (persistent worker loops)")
    p.add_argument("action", choices=["start", "status", "stop", "submit"])
    common(p)
    p.add_argument("--scheduler", help="Dask scheduler host[:port] (start)")
    p.add_argument("--workers", help='worker map as JSON, e.g. {"127.0.0.1": 2} (start)')
    p.add_argument("--set", action="append", metavar="K=V", help="an app argument of the submission (submit)")
    p.add_argument("--wait", action="store_true", help="wait until every task is done or failed; non-zero if any failed")
    p.add_argument("--timeout", type=_non_negative(float), help="seconds --wait waits at most")
    for flag, kind, text in _OPTIONS:
        p.add_argument(flag, type=_non_negative(kind) if kind is float else kind, help=text)
    p.set_defaults(coro=_service)

    p = sub.add_parser("health", help="the service's health and its gate: exit code 0, 2, 3, 4 or 5")
    common(p)
    p.add_argument("--format", choices=["json", "prometheus"], default="json")
    p.add_argument("--from-file", metavar="FILE", help="judge this health.json instead of the running service")
    idle = p.add_mutually_exclusive_group()
    idle.add_argument("--allow-idle", dest="allow_idle", action="store_true", default=None)
    idle.add_argument("--no-allow-idle", dest="allow_idle", action="store_false")
    p.add_argument("--max-unhealthy", type=_non_negative(int), help="unhealthy workers tolerated")
    p.add_argument("--max-restart-rate", type=_non_negative(float), help="restarts per worker tolerated over the window")
    for flag, kind, text in _OPTIONS:
        p.add_argument(flag, type=_non_negative(kind) if kind is float else kind, help=text)
    p.set_defaults(coro=_health)
    _one_line_errors(p, HEALTH_ERROR)
