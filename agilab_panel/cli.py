"""``agilab-panel``: the page's verbs from a shell (SPEC §9).

Logs stream to stderr as they are written; ``--json`` puts the structured result on stdout; any
failure is one line on stderr and a non-zero exit code.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

__all__ = ["main", "parse_set"]


def parse_set(items: list[str] | None) -> dict[str, Any]:
    """``k=v`` pairs; values are TOML literals (``3``, ``true``, ``[1, 2]``), else plain strings.

    A value is always one value: text that would read as several TOML lines (``3\\nsize = 4``) is
    refused rather than cut after its first line. The app's args decide types: ``true`` stays a
    boolean, which an integer argument refuses.
    """
    values: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ValueError(f"--set expects key=value with an identifier key, got {item!r}")
        if key in values:
            raise ValueError(f"--set {key} is given twice")
        try:
            doc = tomllib.loads(f"v = {raw}")
        except tomllib.TOMLDecodeError:
            values[key] = raw
            continue
        if list(doc) != ["v"]:
            raise ValueError(f"--set {key}: the value {raw!r} reads as several settings; quote it to pass one text value")
        values[key] = doc["v"]
    return values


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise ValueError(f"--workers names {', '.join(map(repr, twice))} twice")
    return dict(pairs)


def _workers(text: str | None) -> dict[str, int] | None:
    if text is None:
        return None
    try:
        value = json.loads(text, object_pairs_hook=_unique_pairs)
    except json.JSONDecodeError as exc:
        raise ValueError(f'--workers must be JSON like {{"127.0.0.1": 2}}: {exc.msg}') from exc
    from .hosts import validate_workers

    return validate_workers(value)


def _env(ns: argparse.Namespace) -> Any:
    from .env import AgiEnv

    return AgiEnv(ns.app, apps_path=ns.apps_path, verbose=ns.verbose)


def _bus(ns: argparse.Namespace) -> Any:
    from .events import EventBus, stderr_printer

    bus = EventBus()
    if ns.verbose > 0:
        bus.add_listener(stderr_printer(ns.verbose))
    return bus


def _emit(ns: argparse.Namespace, data: Any, text: str) -> None:
    if ns.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        print(text)


def _inputs(ns: argparse.Namespace, env: Any) -> tuple[dict[str, Any], str | None, str | None]:
    """(app arguments, data_in, data_out) of this call: the --preset's, with --set and --data-in/--data-out over them."""
    params: dict[str, Any] = {}
    folders: dict[str, str] = {}
    if ns.preset:
        from .presets import split_preset
        from .settings import AppSettings

        params, folders = split_preset(AppSettings(env).preset(ns.preset))
    params.update(parse_set(ns.set))
    return params, ns.data_in or folders.get("data_in"), ns.data_out or folders.get("data_out")


async def _install(ns: argparse.Namespace) -> int:
    from .agi import AGI

    env = _env(ns)
    params, data_in, data_out = _inputs(ns, env)
    for value in (data_in, data_out):  # install touches no data: a bad folder is still refused up front
        if value:
            env.resolve_data_path(value, value)
    result = await AGI.install(env, scheduler=ns.scheduler, workers=_workers(ns.workers),
                               modes_enabled=ns.modes_enabled, events=_bus(ns), force=ns.force, **params)
    lines = [f"{h}: {'ok' if r.ok else 'FAILED ' + r.error}" for h, r in result.hosts.items()]
    _emit(ns, result.to_dict(), "\n".join(lines))
    return 0 if result.ok else 1


async def _distrib(ns: argparse.Namespace) -> int:
    from .agi import AGI

    env = _env(ns)
    params, data_in, data_out = _inputs(ns, env)
    plan = await AGI.get_distrib(env, scheduler=ns.scheduler, workers=_workers(ns.workers),
                                 events=_bus(ns), data_in=data_in, data_out=data_out, **params)
    loads = plan.loads()
    text = "\n".join(f"{slot}: {len(parts)} partitions, load {loads[slot]:.6g}" for slot, parts in plan.by_slot().items())
    _emit(ns, plan.to_dict(), text)
    return 0


async def _run(ns: argparse.Namespace, modes: Any) -> int:
    from .agi import AGI
    from .request import DEFAULT_REPEATS, RunRequest

    env = _env(ns)
    params, data_in, data_out = _inputs(ns, env)
    request = RunRequest(params=params, scheduler=ns.scheduler, workers=_workers(ns.workers), mode=modes,
                         rapids_enabled=getattr(ns, "rapids", False), verbose=ns.verbose, reset_target=ns.reset_target,
                         data_in=data_in, data_out=data_out,
                         repeats=DEFAULT_REPEATS if getattr(ns, "repeats", None) is None else ns.repeats)
    try:
        result = await AGI.run(env, request=request, events=_bus(ns), keep_cluster=True, detach_cluster=ns.keep_cluster)
    finally:
        await AGI.shutdown(keep_persistent=ns.keep_cluster)
    if hasattr(result, "table"):
        rows = [f"{r['label']:<32} {r.get('seconds', float('nan')):>9.3f}s  x{r.get('speedup') or 0:.2f}  {r.get('error', '')}"
                for r in result.table.values()]
        _emit(ns, result.to_dict(), "\n".join(rows) + f"\n{result.summary}\nwritten {result.path}")
    else:
        _emit(ns, result.to_dict(), f"{result.label}: {result.seconds:.3f}s, {result.rows} rows -> {result.output}")
    return 0


def _modes_list(text: str | None) -> list[int] | None:
    if text is None:
        return None
    from .modes import parse_mode

    return [parse_mode(item) for item in text.split(",") if item.strip()]


def _apps_paths(ns: argparse.Namespace) -> list[Path]:
    """``--apps-path`` folders when given, else those of ``AGILAB_APPS_PATH``, as AgiEnv takes them."""
    from .apps import apps_paths_from_environment

    return [Path(p) for p in ns.apps_path] if ns.apps_path else apps_paths_from_environment()


def _apps(ns: argparse.Namespace) -> int:
    from .apps import discover_apps, load_app

    found = discover_apps(_apps_paths(ns))
    data = {name: {"path": str(path), "description": load_app(path).description} for name, path in found.items()}
    _emit(ns, data, "\n".join(f"{n:<20} {d['description']}" for n, d in data.items()))
    return 0


def _cluster(ns: argparse.Namespace) -> int:
    from .agi import AGI

    pids = AGI.stop_cluster(_env(ns))
    _emit(ns, {"stopped": pids}, f"stopped {len(pids)} processes" if pids else "no kept cluster")
    return 0


def _snippet(ns: argparse.Namespace) -> int:
    from .settings import AppSettings
    from .snippets import save_snippets, snippet_for

    env = _env(ns)
    settings = AppSettings(env)
    text = snippet_for(ns.kind, settings, benchmark=ns.benchmark)
    if ns.save:
        paths = save_snippets(env, settings, kinds=(ns.kind,), benchmark=ns.benchmark)
        print(f"saved {paths[0]}", file=sys.stderr)
    _emit(ns, {"kind": ns.kind, "app": env.app, "code": text}, text)
    return 0


def _check_app(ns: argparse.Namespace) -> int:
    from .appcheck import check_app
    from .apps import AppError, discover_apps

    apps_paths = _apps_paths(ns)
    folder = Path(ns.app).expanduser()
    if not (folder / "pyproject.toml").is_file():
        found = discover_apps(apps_paths)
        if ns.app not in found:
            raise AppError(f"unknown app {ns.app!r} (known apps: {', '.join(sorted(found)) or 'none'})")
        folder = found[ns.app]
    folder = folder.resolve()
    problems = check_app(folder, apps_paths)
    text = "\n".join(map(str, problems)) if problems else f"{folder}: the app fulfils the contract"
    _emit(ns, {"app": str(folder), "problems": [p.to_dict() for p in problems]}, text)
    return 1 if problems else 0


def _new_app(ns: argparse.Namespace) -> int:
    from .scaffold import new_app

    path = new_app(ns.name, ns.kind, ns.dir, _apps_paths(ns))
    _emit(ns, {"app": ns.name, "kind": ns.kind, "path": str(path)}, str(path))
    return 0


def _notebook(ns: argparse.Namespace) -> int:
    from .notebook import export_notebook
    from .settings import AppSettings

    env = _env(ns)
    path = export_notebook(env, AppSettings(env), Path(ns.output) if ns.output else None)
    _emit(ns, {"path": str(path)}, str(path))
    return 0


def _serve(ns: argparse.Namespace) -> int:
    from .ui.serve import serve

    oauth: dict[str, Any] = {}
    if ns.oauth_key:
        oauth["oauth_key"] = ns.oauth_key
    if ns.oauth_redirect_uri:
        oauth["oauth_redirect_uri"] = ns.oauth_redirect_uri
    if ns.oauth_extra_params:
        try:
            oauth["oauth_extra_params"] = json.loads(ns.oauth_extra_params)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--oauth-extra-params must be a JSON object: {exc.msg}") from exc
    serve(address=ns.address, port=ns.port, apps_path=ns.apps_path, show=ns.show,
          allow_websocket_origin=ns.allow_websocket_origin, allow_hosts=ns.allow_host,
          password_file=ns.password_file, oauth_provider=ns.oauth_provider, **oauth)
    return 0


def _hash_password(ns: argparse.Namespace) -> int:
    import getpass

    from .passwords import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise ValueError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    print(hash_password(password))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agilab-panel", description="Install, distribute, run and serve AGILAB apps.")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, app: bool = True) -> None:
        if app:
            p.add_argument("--app", required=True, help="app name (see `agilab-panel apps`) or app folder")
        p.add_argument("--apps-path", action="append", help="extra folder holding apps (repeatable)")
        p.add_argument("--json", action="store_true", help="print the structured result as JSON on stdout")
        p.add_argument("--verbose", "-v", type=int, default=1, choices=range(4), help="log detail 0-3 (default 1)")

    def cluster(p: argparse.ArgumentParser) -> None:
        p.add_argument("--scheduler", help="Dask scheduler host[:port]")
        p.add_argument("--workers", help='worker map as JSON, e.g. {"127.0.0.1": 2}')
        p.add_argument("--set", action="append", metavar="K=V", help="override an app argument for this call")
        p.add_argument("--data-in", metavar="DIR", help="input folder (relative: in the cluster share); default <app>/data_in")
        p.add_argument("--data-out", metavar="DIR", help="output folder (relative: in the cluster share); default <app>/data_out")
        p.add_argument("--preset", metavar="NAME", help="an argument set of the app ([args.presets.NAME]); "
                                                        "--set, --data-in and --data-out override it")

    p = sub.add_parser("serve", help="serve the dashboard")
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5006)
    p.add_argument("--apps-path", action="append")
    p.add_argument("--show", action="store_true", help="open a browser")
    p.add_argument("--allow-websocket-origin", action="append", help="extra allowed websocket origin host[:port]")
    p.add_argument("--allow-host", action="append", metavar="NAME",
                   help="extra host name the page answers for (a DNS name or proxy it is reached by)")
    p.add_argument("--password-file", metavar="FILE",
                   help="login with the password (or its hash) on the first line of FILE; "
                        "default: $AGILAB_PANEL_PASSWORD when set")
    p.add_argument("--oauth-provider", metavar="NAME", help="login with Panel's OAuth provider NAME "
                   "(secrets from PANEL_OAUTH_SECRET, PANEL_OAUTH_ENCRYPTION, PANEL_COOKIE_SECRET)")
    p.add_argument("--oauth-key", help="OAuth client id")
    p.add_argument("--oauth-redirect-uri", help="OAuth redirect URI")
    p.add_argument("--oauth-extra-params", metavar="JSON", help="extra OAuth parameters as a JSON object")
    p.set_defaults(handler=_serve)

    p = sub.add_parser("hash-password", help="print the hash of a password read from stdin (for --password-file)")
    p.set_defaults(handler=_hash_password)

    p = sub.add_parser("apps", help="list the apps")
    common(p, app=False)
    p.set_defaults(handler=_apps)

    p = sub.add_parser("install", help="provision the worker environments")
    common(p)
    cluster(p)
    p.add_argument("--modes-enabled", help="bitmask 0-15 or mode string (rdcp); default: the settings toggles")
    p.add_argument("--force", action="store_true", help="reinstall even when nothing changed")
    p.set_defaults(coro=_install)

    p = sub.add_parser("distrib", help="build and save the work plan")
    common(p)
    cluster(p)
    p.set_defaults(coro=_distrib)

    for name, help_text in (("run", "run one mode"), ("benchmark", "run several modes and write benchmark.json")):
        p = sub.add_parser(name, help=help_text)
        common(p)
        cluster(p)
        if name == "run":
            p.add_argument("--mode", help="mode 0-15 or mode string such as 'dp' (default: the settings toggles)")
        else:
            p.add_argument("--modes", help="comma-separated modes (default: every mode the toggles enable)")
            p.add_argument("--rapids", action="store_true", help="include the rapids bit in the enabled modes")
            p.add_argument("--repeats", type=int,
                           help="timed runs per mode after one untimed warm-up run; the fastest is kept (default 3)")
        p.add_argument("--reset-target", action="store_true", help="empty data_out before running")
        p.add_argument("--keep-cluster", action="store_true",
                       help="leave the Dask cluster, or the local warm runner, running for later runs "
                            "(`cluster stop` ends them; an unused local runner ends after "
                            "$AGILAB_RUNNER_IDLE_TIMEOUT seconds, 900 by default)")
        p.set_defaults(coro=_run)

    p = sub.add_parser("cluster", help="stop the cluster and local runner kept with --keep-cluster")
    p.add_argument("action", choices=["stop"])
    common(p)
    p.set_defaults(handler=_cluster)

    p = sub.add_parser("snippet", help="print a generated snippet")
    p.add_argument("kind", choices=["install", "distrib", "run", "serve"])
    common(p)
    p.add_argument("--benchmark", action="store_true", help="run snippet benchmarks the enabled modes")
    p.add_argument("--save", action="store_true", help="also save AGI_<kind>_<app>.py in the app's log folder")
    p.set_defaults(handler=_snippet)

    p = sub.add_parser("notebook", help="export <app>_orchestrate.ipynb")
    common(p)
    p.add_argument("-o", "--output", help="notebook path (default: the app's log folder)")
    p.set_defaults(handler=_notebook)

    p = sub.add_parser("new-app", help="write a new app that passes check-app and runs in every local mode")
    p.add_argument("name", help="the app's name: a lower-case Python identifier, also its package name")
    p.add_argument("--kind", choices=["minimal", "data", "numeric"], default="minimal", help="what the app starts as")
    p.add_argument("--dir", help="folder to create the app in (default: the current folder)")
    common(p, app=False)
    p.set_defaults(handler=_new_app)

    p = sub.add_parser("check-app", help="check an app against the contract without running it")
    common(p)
    p.set_defaults(handler=_check_app)

    from .service.cli import add_commands as add_service_commands

    add_service_commands(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    ns = _parser().parse_args(argv)
    try:
        if hasattr(ns, "coro"):
            if ns.command == "run":
                from .modes import parse_mode
                from .settings import AppSettings

                mode = parse_mode(ns.mode) if ns.mode is not None else AppSettings(_env(ns)).cluster.mode
                return asyncio.run(_run(ns, mode))
            if ns.command == "benchmark":
                return asyncio.run(_run(ns, _modes_list(ns.modes)))
            return asyncio.run(ns.coro(ns))
        return ns.handler(ns)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1


if __name__ == "__main__":
    sys.exit(main())
