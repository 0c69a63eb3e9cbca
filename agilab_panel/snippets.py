"""Generated snippets: the code behind each button, as a script a user can read, save and rerun.

Any value in the settings may be text a user typed, so nothing is ever formatted into code as text:
every value is rendered as a Python literal of plain data, every keyword is checked to be an
identifier, and the finished source is parsed with :mod:`ast` and its shape checked (imports, one
``async def main()`` awaiting exactly one ``AGI`` call, the entry point) before anyone sees it.

The snippet carries the app's arguments explicitly; the engine validates them when the snippet runs,
so a snippet generated before an argument was renamed or removed stops with one line naming it.
"""
from __future__ import annotations

import ast
import keyword
import math
import numbers
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path, PurePath
from typing import Any

from .apps import discover_apps
from .fsutil import atomic_write_text
from .hosts import parse_host_port, validate_workers
from .modes import benchmark_modes, mode_expression, parse_mode
from .paths import check_worker_path, inside
from .settings import AppSettings

__all__ = [
    "SERVICE_ACTIONS",
    "SNIPPET_KINDS",
    "SNIPPET_VERSION",
    "available_kinds",
    "literal",
    "render_snippet",
    "save_snippets",
    "service_snippet",
    "snippet_file_name",
    "snippet_for",
]

SNIPPET_KINDS = ("install", "distrib", "run", "serve")
SNIPPET_VERSION = 1

_FILE_NAMES = {
    "install": "AGI_install_{app}.py",
    "distrib": "AGI_get_distrib_{app}.py",
    "run": "AGI_run_{app}.py",
    "serve": "AGI_serve_{app}.py",
}
_VERBS = {"install": "install", "distrib": "get_distrib", "run": "run", "serve": "serve"}
# Parameters of AGI.get_distrib an app argument passed as a keyword would silently land in.
_DISTRIB_OWN = frozenset({"app_env", "scheduler", "workers", "events", "save"})
_SUBMIT_OWN = frozenset({"app_env", "events"})
# The serve snippet of each Service mode button; submit awaits AGI.submit instead of AGI.serve.
SERVICE_ACTIONS = ("start", "status", "health", "stop", "submit")
_IND = "    "


# -- literals --------------------------------------------------------------------------------------
def _str_literal(text: str) -> str:
    """``repr`` of the exact str data, in double quotes when the text holds no quote at all."""
    text = str.__str__(text)
    source = repr(text)
    if "'" not in text and '"' not in text:
        source = '"' + source[1:-1] + '"'
    return source


def _float_literal(value: float) -> str:
    if math.isfinite(value):
        return repr(value)
    if math.isnan(value):
        return 'float("nan")'
    return 'float("inf")' if value > 0 else '-float("inf")'


def literal(value: Any) -> str:
    """Python source that evaluates to ``value``; only plain data is accepted (no objects, no code)."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, numbers.Integral):  # numpy integers too
        return int.__repr__(int(value))
    if isinstance(value, numbers.Real) and not isinstance(value, Fraction):
        return _float_literal(float(value))
    if isinstance(value, str):
        return _str_literal(value)
    if isinstance(value, PurePath):
        return _str_literal(str(value))
    if isinstance(value, bytes):
        return repr(bytes(value))
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        items = [literal(v) for v in value]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(value, (set, frozenset)):
        items = sorted(literal(v) for v in value)
        return "{" + ", ".join(items) + "}" if items else "set()"
    raise ValueError(f"a {type(value).__name__} value ({value!r}) cannot be written as a Python literal in a snippet")


def _block(mapping: Mapping[str, Any], indent: str) -> str:
    """A dict literal with one item per line, so long argument lists stay readable."""
    if not mapping:
        return "{}"
    inner = indent + _IND
    lines = [f"{inner}{literal(k)}: {literal(v)}," for k, v in mapping.items()]
    return "{\n" + "\n".join(lines) + f"\n{indent}}}"


def _comment(text: str) -> str:
    """Text safe inside a ``#`` comment: anything that could end the line is escaped."""
    return text if text.isprintable() else repr(text)


# -- checks ----------------------------------------------------------------------------------------
def _check_kind(kind: str) -> None:
    if kind not in SNIPPET_KINDS:
        raise ValueError(f"unknown snippet kind {kind!r}; choose one of {', '.join(SNIPPET_KINDS)}")


def _check_args(args: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(args, Mapping):
        raise ValueError(f"args must be a mapping of argument names to values, got {type(args).__name__}")
    for key in args:
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"argument name {key!r} is not a Python identifier")
    return dict(args)


def _is_keyword_safe(name: str) -> bool:
    """Usable verbatim as ``name=...``: not a keyword, and unchanged by the parser's NFKC folding."""
    return not keyword.iskeyword(name) and unicodedata.normalize("NFKC", name) == name


def _check_scheduler(scheduler: str | None) -> str | None:
    if scheduler is None or (isinstance(scheduler, str) and not scheduler.strip()):
        return None
    if not isinstance(scheduler, str):
        raise ValueError(f"scheduler must be 'host[:port]' or None, got {scheduler!r}")
    parse_host_port(scheduler)
    return scheduler


def _check_verbose(verbose: int) -> int:
    if isinstance(verbose, bool) or not isinstance(verbose, int) or not 0 <= verbose <= 3:
        raise ValueError(f"verbose must be an int 0..3, got {verbose!r}")
    return verbose


def _verify(source: str, verb: str, notebook: bool) -> None:
    """Parse the snippet and check its shape: a value that broke out of its literal cannot pass."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ValueError(f"generated snippet does not parse (line {exc.lineno}): {exc.msg}") from exc
    shape = [type(node).__name__ for node in tree.body]
    expected = (["ImportFrom", "AsyncFunctionDef", "Assign"] if notebook
                else ["Import", "Import", "ImportFrom", "AsyncFunctionDef", "If"])
    if shape != expected:
        raise ValueError(f"generated snippet has an unexpected shape: {shape}")
    awaits = [node for node in ast.walk(tree.body[-2]) if isinstance(node, ast.Await)]
    calls = [a.value for a in awaits if isinstance(a.value, ast.Call) and isinstance(a.value.func, ast.Attribute)]
    if len(awaits) != 1 or len(calls) != 1 or ast.unparse(calls[0].func) != f"AGI.{verb}":
        raise ValueError(f"generated snippet must await exactly one AGI.{verb} call")


# -- the parts of a snippet ------------------------------------------------------------------------
def _call(verb: str, items: list[tuple[str, str]], indent: str = "") -> str:
    """``AGI.<verb>(app_env, key=value, ...)`` with one argument per line; values are source already."""
    inner = indent + _IND
    lines = [f"{inner}app_env,"] + [f"{inner}{k}={v}," if k else f"{inner}{v}," for k, v in items]
    return f"await AGI.{verb}(\n" + "\n".join(lines) + f"\n{indent})"


def _distrib_kwargs(args: dict[str, Any], indent: str, own: frozenset[str] = _DISTRIB_OWN,
                    verb: str = "get_distrib") -> list[tuple[str, str]]:
    for key in args:
        if key in own:
            raise ValueError(f"argument name {key!r} clashes with a parameter of AGI.{verb}; rename it in the app")
    plain = [(k, literal(v)) for k, v in args.items() if _is_keyword_safe(k)]
    other = {k: v for k, v in args.items() if not _is_keyword_safe(k)}
    return plain + ([("", "**" + _block(other, indent))] if other else [])


def _body(kind: str, *, verbose: int, scheduler: str | None, workers: dict[str, int], mode: int | None,
          args: dict[str, Any], rapids_enabled: bool, workers_data_path: str | None, notebook: bool,
          service_action: str = "start") -> list[str]:
    """The lines of ``main()`` after ``app_env`` is built: one awaited call and a short summary.

    A script stops the Dask cluster its run started (``keep_cluster=False``): nothing will reuse it
    and its process is about to end. A notebook kernel lives on, so the cell keeps it warm.
    """
    i1, i2 = _IND, _IND * 2  # relative to the body of main(), which is indented as a whole
    where = [("scheduler", literal(scheduler)), ("workers", _block(workers, i1))]
    if kind == "install":
        items = where + ([("modes_enabled", mode_expression(mode))] if mode is not None else [])
        return [
            f"result = {_call('install', items)}",
            "for host, outcome in result.hosts.items():",
            f"{_IND}print(f\"{{host}}: {{'ok' if outcome.ok else 'FAILED ' + outcome.error}}\")",
            "if not result.ok:",
            f"{_IND}raise RuntimeError(\"; \".join(result.errors))",
            "return result",
        ]
    if kind == "distrib":
        return [
            f"plan = {_call('get_distrib', where + _distrib_kwargs(args, i1))}",
            "loads = plan.loads()",
            "for slot, parts in plan.by_slot().items():",
            f"{_IND}print(f\"{{slot}}: {{len(parts)}} partitions, load {{loads[slot]:.6g}}\")",
            "return plan",
        ]
    if kind == "serve":  # start: its loops keep running after the script (stop: action="stop")
        return _service_body(service_action, where, args, i1)
    request = [
        ("params", _block(args, i2)),
        ("scheduler", literal(scheduler)),
        ("workers", _block(workers, i2)),
        ("mode", _mode_source(mode)),
        ("rapids_enabled", literal(bool(rapids_enabled))),
        ("verbose", literal(verbose)),
    ]
    if workers_data_path:
        request.append(("workers_data_path", literal(workers_data_path)))
    request_src = "RunRequest(\n" + "\n".join(f"{i2}{k}={v}," for k, v in request) + f"\n{i1})"
    lines = [f"result = {_call('run', [('request', request_src)] + ([] if notebook else [('keep_cluster', 'False')]))}"]
    if not isinstance(mode, int):
        return lines + [
            "for row in result.table.values():",
            f"{_IND}outcome = row.get(\"error\") or f\"{{row['seconds']:.3f}}s, speedup {{row['speedup']}}\"",
            f"{_IND}print(f\"{{row['label']}}: {{outcome}}\")",
            "print(f\"benchmark written to {result.path}\")",
            "return result",
        ]
    return lines + [
        "print(f\"{result.label}: {result.rows} rows in {result.seconds:.3f}s -> {result.output}\")",
        "return result",
    ]


def _service_body(action: str, where: list[tuple[str, str]], args: dict[str, Any], indent: str) -> list[str]:
    """A service action: start names the cluster; the others find the running service from its state file."""
    if action == "submit":
        return [
            f"submission = {_call('submit', _distrib_kwargs(args, indent, _SUBMIT_OWN, 'submit'))}",
            "print(f\"submitted {submission}\")",
            "return submission",
        ]
    if action == "health":
        return [
            f"health = {_call('serve', [('action', literal('health'))])}",
            "print(health[\"status\"], health[\"workers_unhealthy_count\"], health[\"path\"])",
            "return health",
        ]
    return [
        f"result = {_call('serve', [('action', literal(action)), *(where if action == 'start' else [])])}",
        "print(result[\"message\"])",
        "return result",
    ]


_SCRIPT_TAIL = """\


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as exc:  # one readable line, e.g. an argument renamed since this was generated
        sys.exit(f"error: {exc}")
"""


def render_snippet(
    kind: str,
    *,
    app: str,
    verbose: int,
    scheduler: str | None,
    workers: Mapping[str, int],
    mode: int | None,
    args: Mapping[str, Any],
    rapids_enabled: bool = False,
    workers_data_path: str | None = None,
    notebook: bool = False,
    service_action: str = "start",
) -> str:
    """The source of one snippet from plain values.

    ``mode`` is ``modes_enabled`` for install and the run mode for run (``None``: benchmark the
    enabled modes); ``notebook=True`` gives the form for a running event loop (a cell ending with
    ``result = await main()``). ``service_action`` (serve only) is one of :data:`SERVICE_ACTIONS`.
    Raises :class:`ValueError` for a key that is not an identifier, a value that is not plain data,
    or a bad scheduler, worker map, mode, verbosity or service action.
    """
    _check_kind(kind)
    if service_action not in SERVICE_ACTIONS:
        raise ValueError(f"service action must be one of {', '.join(SERVICE_ACTIONS)}, got {service_action!r}")
    if not isinstance(app, str) or not app:
        raise ValueError(f"app must be a non-empty name or folder, got {app!r}")
    values = {
        "verbose": _check_verbose(verbose),
        "scheduler": _check_scheduler(scheduler),
        "workers": validate_workers(dict(workers)),
        "mode": None if mode is None else ([parse_mode(m) for m in mode] if isinstance(mode, (list, tuple))
                                            else parse_mode(mode)),
        "args": _check_args(args),
        "rapids_enabled": bool(rapids_enabled),
        "workers_data_path": check_worker_path(str(workers_data_path)) if workers_data_path else None,
    }
    body = _body(kind, notebook=notebook, service_action=service_action, **values)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    header = [
        f"# agilab-panel snippet v{SNIPPET_VERSION} · app {_comment(app)} · generated {stamp}",
        "# Regenerate it when the app's arguments change: a stale snippet stops, naming the argument.",
    ]
    imports = [] if notebook else ["import asyncio", "import sys", ""]
    main = [
        "async def main():",
        f"{_IND}app_env = AgiEnv(app={literal(app)}, verbose={literal(verbose)})",
        *(f"{_IND}{line}" for chunk in body for line in chunk.split("\n")),
    ]
    source = "\n".join([*header, *imports, "from agilab_panel import AGI, AgiEnv, RunRequest", "", "", *main]) + "\n"
    source += "\n\nresult = await main()\n" if notebook else _SCRIPT_TAIL
    _verify(source, "submit" if kind == "serve" and service_action == "submit" else _VERBS[kind], notebook)
    return source


# -- from the settings models ----------------------------------------------------------------------
def app_reference(env: Any) -> str:
    """How a fresh process finds the app: its name when it is built in, otherwise its folder."""
    return env.app if discover_apps().get(env.app) == Path(env.app_path) else str(env.app_path)


def available_kinds(settings: AppSettings) -> list[str]:
    """The snippets that apply to the active configuration: serve needs the cluster enabled."""
    kinds = ["install", "distrib", "run"]
    if settings.cluster.cluster_enabled:
        kinds.append("serve")
    return kinds


def _mode_source(mode: int | list[int] | None) -> str:
    """A mode with the public constants; a benchmark as the explicit list of its modes."""
    if mode is None:
        return "None"
    if isinstance(mode, list):
        return "[" + ", ".join(mode_expression(m) for m in mode) + "]"
    return mode_expression(mode)


def snippet_for(kind: str, settings: AppSettings, *, benchmark: bool = False, notebook: bool = False) -> str:
    """The snippet of ``kind`` for the current settings (cluster toggles, scheduler, workers, args).

    The scheduler is written only while the cluster is enabled (the seed's "Enable Cluster also
    enables the scheduler field"); the worker map always, since it shapes the work plan of local
    runs too. ``benchmark=True`` renders, for run, the list of the modes the toggles enable, so a saved
    snippet benchmarks the same modes whatever the settings say later.
    """
    _check_kind(kind)
    cluster = settings.cluster
    return render_snippet(
        kind,
        app=app_reference(settings.env),
        verbose=cluster.verbose,
        scheduler=(cluster.scheduler or None) if cluster.cluster_enabled else None,
        workers=dict(cluster.workers),
        mode=benchmark_modes(cluster.mode) if (benchmark and kind == "run") else cluster.mode,
        args=settings.args_dict,
        rapids_enabled=cluster.rapids,
        workers_data_path=cluster.workers_data_path or None,
        notebook=notebook,
    )


def service_snippet(action: str, settings: AppSettings, *, notebook: bool = False) -> str:
    """The snippet of one Service mode button: ``AGI.serve(app_env, action=...)`` or ``AGI.submit(app_env, **args)``.

    Start names the scheduler (while the cluster is enabled) and the worker map; status, health and stop
    find the running service from its state file; submit carries the saved args.
    """
    cluster = settings.cluster
    return render_snippet(
        "serve", app=app_reference(settings.env), verbose=cluster.verbose,
        scheduler=(cluster.scheduler or None) if cluster.cluster_enabled else None,
        workers=dict(cluster.workers), mode=None, args=settings.args_dict if action == "submit" else {},
        notebook=notebook, service_action=action,
    )


def snippet_file_name(kind: str, app: str) -> str:
    """``AGI_install_<app>.py``, ``AGI_get_distrib_<app>.py``, ``AGI_run_<app>.py``, ``AGI_serve_<app>.py``."""
    _check_kind(kind)
    return _FILE_NAMES[kind].format(app=app)


def save_snippets(env: Any, settings: AppSettings, kinds: Iterable[str] = SNIPPET_KINDS, *,
                  benchmark: bool = False) -> list[Path]:
    """Write the snippets into the app's log folder for reuse in pipelines; each file whole or not at all.

    Every snippet is rendered before any file is written, so a bad value leaves the folder untouched.
    """
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    texts = {kind: snippet_for(kind, settings, benchmark=benchmark) for kind in kinds}
    targets = {kind: inside(env.log_root, Path(env.log_dir) / snippet_file_name(kind, env.app), "snippet file",
                            root_name="log folder") for kind in kinds}
    for kind, text in texts.items():
        atomic_write_text(targets[kind], text)
    return list(targets.values())
