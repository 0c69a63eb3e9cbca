"""The app contract, checked without running the app (``agilab-panel check-app``).

:func:`check_app` returns every problem it finds, each naming a file and, where it can, a line: an
author fixes them all in one pass instead of meeting them one run at a time. The files are read here;
the app's code is imported in a separate engine interpreter (:mod:`.appcheck_imports`) so a
broken or half-edited app never leaves its modules behind in the caller (the dashboard keeps running
and sees the fixed code on the next check).
"""
from __future__ import annotations

import ast
import importlib.util
import json
import keyword
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .runtime.job import OUTPUT_FORMATS
from .toml_lines import decode_error_line, line_of

__all__ = ["Problem", "check_app", "check_name", "TOOL_KEYS", "kernel_stems", "tool_value_problem",
           "cython_entry_problem"]

REF_HINT = "'package.module:ClassName'"
IMPORT_TIMEOUT = 300.0  # seconds the import check may take (a first pandas import on a cold disk is slow)


@dataclass(frozen=True)
class Problem:
    """One way an app does not fulfil the contract: where (file, 1-based line when known) and what."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ref(value: Any) -> str | None:
    """Why ``value`` is not a 'package.module:Name' reference, or None."""
    if not isinstance(value, str):
        return f"must be a string like {REF_HINT}, not {type(value).__name__}"
    module, sep, name = value.partition(":")
    if not sep or not name.isidentifier() or not all(p.isidentifier() for p in module.split(".")):
        return f"{value!r} must look like {REF_HINT}"
    return None


def _identifier(value: Any) -> str | None:
    return None if isinstance(value, str) and value.isidentifier() and not keyword.iskeyword(value) \
        else f"must be a Python identifier (it names the export folder), not {value!r}"


def _bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, not {value!r}"


def _backend(value: Any) -> str | None:
    return None if value in ("process", "thread") else f"must be 'process' or 'thread', not {value!r}"


def _file_name(value: Any) -> str | None:
    if not isinstance(value, str) or not value or Path(value).name != value or value in (".", ".."):
        return f"must be a file name inside data_out, not {value!r}"
    return None


def _output(value: Any) -> str | None:
    problem = _file_name(value)
    if problem is None and Path(value).suffix.lower() not in OUTPUT_FORMATS:
        return f"{value!r}: the engine writes only {', '.join(OUTPUT_FORMATS)} files (the suffix picks the format)"
    return problem


def _summary(value: Any) -> str | None:
    problem = _file_name(value)
    if problem is None and not value.endswith(".json"):
        return f"{value!r}: the metrics file is JSON and must end in .json"
    return problem


def _pyx_list(value: Any) -> str | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return f"must be a list of .pyx paths relative to the app folder, not {value!r}"
    return None


# key -> (required, check, what it is): the one table of [tool.agilab] (docs/APPS.md lists the same keys).
TOOL_KEYS: dict[str, tuple[bool, Callable[[Any], str | None], str]] = {
    "args": (True, _ref, "the args class, a param.Parameterized"),
    "manager": (True, _ref, "the manager class (builds the partitions)"),
    "worker": (True, _ref, "the worker class (does the work)"),
    "module": (False, _identifier, "the app's Python name (export folder, form title); default: the folder name"),
    "cython": (False, _pyx_list, "typed kernels compiled at INSTALL when cython is enabled"),
    "rapids": (False, _bool, "the app has a cuDF path"),
    "pool_backend": (False, _backend, "'process' (default) or 'thread' for the pool bit"),
    "output": (False, _output, "output file name under data_out; suffix .parquet/.pq or .csv"),
    "summary": (False, _summary, "JSON metrics file the worker writes under data_out"),
}


def tool_value_problem(key: str, value: Any) -> str | None:
    """Why ``value`` cannot be ``[tool.agilab] key`` (None when it can, or when the key is not the engine's)."""
    entry = TOOL_KEYS.get(key)
    return entry[1](value) if entry else None


def cython_entry_problem(path: Path, source: str) -> str | None:
    """Why ``source`` (a ``cython`` entry of the app in ``path``) cannot be built: it must be a ``.pyx``
    file inside the app folder."""
    real = (path / source).resolve()
    if real.suffix != ".pyx" or not real.is_relative_to(path.resolve()):
        return f"cython entry {source!r} must be a .pyx file inside the app folder"
    return None


def kernel_stems(sources: Iterable[str]) -> list[str]:
    """The module names of the declared kernels (a ``.pyx`` is built as its file stem)."""
    return [Path(s).stem for s in sources]


def _module_clash(name: str) -> str | None:
    """What an importable module named ``name`` already is in the engine (None when the name is free)."""
    if name in sys.stdlib_module_names or name in sys.builtin_module_names:
        return "a module of Python's standard library"
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return None
    where = spec.origin or (list(spec.submodule_search_locations or []) or ["?"])[0]
    return f"a module the engine already imports ({where})"


def check_name(name: str, apps_paths: list[Path] | None = None, folder: Path | None = None) -> str | None:
    """Why ``name`` cannot be a new app's name (its folder and its package), or None when it can."""
    from .apps import discover_apps

    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        return f"app name {name!r} must be a Python identifier (letters, digits, underscores; not a keyword)"
    if name != name.lower():
        return f"app name {name!r} must be lower case (it is the package name too)"
    known = discover_apps(apps_paths)
    if name in known:
        return f"app name {name!r} is taken by {known[name]}"
    clash = _module_clash(name)
    if clash:
        return f"app name {name!r} would shadow {clash}: choose another"
    if folder is not None and folder.exists():
        return f"{folder} already exists"
    return None


class _Checker:
    """Collects the problems of one app folder; ``add`` records one, ``toml`` reads a file (or says why not)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[Problem] = []

    def add(self, file: Path, message: str, line: int | None = None) -> None:
        self.problems.append(Problem(str(file), line, message))

    def toml(self, file: Path) -> tuple[str, dict[str, Any]] | None:
        if not file.is_file():
            return None
        text = file.read_text(encoding="utf-8", errors="replace")
        try:
            return text, tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            self.add(file, f"not valid TOML: {str(exc).split(' (at ')[0]}", decode_error_line(str(exc)))
            return None


def _static(path: Path, apps_paths: list[Path] | None) -> tuple[list[Problem], dict[str, Any]]:
    """Everything that can be checked from the files; returns the problems and what the import check needs."""
    c = _Checker(path)
    pyproject = path / "pyproject.toml"
    loaded = c.toml(pyproject)
    if not pyproject.is_file():
        c.add(path, "no pyproject.toml: an app is an installable Python project (see docs/APPS.md)")
    if loaded is None:
        return c.problems, {}
    text, data = loaded
    build = data.get("build-system")
    if not isinstance(build, dict) or "build-backend" not in build:
        c.add(pyproject, "[build-system] with requires and build-backend is missing: uv cannot install the app",
              line_of(text, ("build-system",)))
    project = data.get("project")
    if not isinstance(project, dict) or not isinstance(project.get("name"), str):
        c.add(pyproject, "[project] name is missing: the worker environment installs the app as a package",
              line_of(text, ("project",)))
    tool = data.get("tool", {}).get("agilab") if isinstance(data.get("tool"), dict) else None
    if not isinstance(tool, dict):
        c.add(pyproject, "no [tool.agilab] table naming args, manager and worker")
        return c.problems, {}
    tool_line = line_of(text, ("tool", "agilab"))
    for key, (required, check, _) in TOOL_KEYS.items():
        if key not in tool:
            if required:
                c.add(pyproject, f"[tool.agilab] {key} is missing ({TOOL_KEYS[key][2]})", tool_line)
            continue
        problem = check(tool[key])
        if problem:
            c.add(pyproject, f"[tool.agilab] {key} {problem}", line_of(text, ("tool", "agilab", key)))
    for key in tool:
        if key not in TOOL_KEYS:
            c.add(pyproject, f"[tool.agilab] unknown key {key!r} (known: {', '.join(TOOL_KEYS)})",
                  line_of(text, ("tool", "agilab", key)))

    src = path / "src"
    refs = {k: tool[k] for k in ("args", "manager", "worker") if isinstance(tool.get(k), str) and not _ref(tool[k])}
    packages = {k: ref.partition(":")[0].split(".")[0] for k, ref in refs.items()}
    for key, package in packages.items():
        init = src / package / "__init__.py"
        if not init.is_file():
            c.add(pyproject, f"[tool.agilab] {key} names package {package!r}, but {init.relative_to(path)} does not "
                  "exist (src layout: src/<package>/__init__.py)", line_of(text, ("tool", "agilab", key)))
    if len(set(packages.values())) > 1:
        c.add(pyproject, f"args, manager and worker must live in one package, not {sorted(set(packages.values()))}",
              tool_line)
    package = packages.get("worker") or next(iter(packages.values()), None)
    if package:  # (what it would shadow in the engine is checked by the import check, in a fresh interpreter)
        _other_apps(c, pyproject, text, path, package, apps_paths)

    stems = _kernels(c, pyproject, text, path, tool.get("cython", []))
    _worker_kernels(c, path, src, refs.get("worker"), stems)
    _settings(c, path / "app_settings.toml")
    _form(c, path / "app_args_form.py")
    return c.problems, {"refs": refs, "src": str(src), "dependencies": list((project or {}).get("dependencies", [])),
                        "package": package, "where": [str(pyproject), tool_line]}


def _other_apps(c: _Checker, pyproject: Path, text: str, path: Path, package: str,
                apps_paths: list[Path] | None) -> None:
    """Two apps with one name, or one package, cannot live in one dashboard: the first found would win."""
    from .apps import discover_apps

    for name, other in discover_apps(apps_paths).items():
        if other == path:
            continue
        if name == path.name:
            c.add(pyproject, f"another app is also called {name!r} ({other}): the first one found is used")
            continue
        try:
            other_tool = tomllib.loads((other / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["agilab"]
        except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError):
            continue
        worker = other_tool.get("worker")
        if isinstance(worker, str) and worker.split(".")[0] == package:
            c.add(pyproject, f"app {name!r} ({other}) uses the same package {package!r}: the engine imports both "
                  "apps into one process, so one would load the other's code", line_of(text, ("tool", "agilab")))


def _kernels(c: _Checker, pyproject: Path, text: str, path: Path, sources: Any) -> list[str]:
    if _pyx_list(sources):
        return []
    line = line_of(text, ("tool", "agilab", "cython"))
    stems = kernel_stems(sources)
    for source, stem in zip(sources, stems):
        problem = cython_entry_problem(path, source)
        if problem:
            c.add(pyproject, problem, line)
        elif not (path / source).is_file():
            c.add(pyproject, f"cython entry {source!r}: no such file", line)
        if _identifier(stem):
            c.add(pyproject, f"cython entry {source!r}: the kernel is imported as {stem!r}, which is not a Python "
                  "identifier", line)
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        c.add(pyproject, f"two cython entries build the same module {', '.join(twice)}: rename one .pyx", line)
    return stems


def _parse_py(c: _Checker, file: Path) -> ast.Module | None:
    try:
        return ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
    except SyntaxError as exc:
        c.add(file, f"syntax error: {exc.msg}", exc.lineno)
    except (OSError, UnicodeDecodeError) as exc:
        c.add(file, f"cannot be read: {exc}")
    return None


def _worker_kernels(c: _Checker, path: Path, src: Path, worker_ref: str | None, stems: list[str]) -> None:
    """``self.compiled("name")`` in the worker's package must name a declared kernel."""
    if worker_ref is None:
        return
    package = src / worker_ref.split(".")[0]
    for file in sorted(package.rglob("*.py")):
        tree = _parse_py(c, file)
        for node in ast.walk(tree) if tree is not None else ():
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "compiled"
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                name = node.args[0].value
                if name not in stems:
                    declared = ", ".join(stems) or "none"
                    c.add(file, f"compiled({name!r}) names no kernel declared in [tool.agilab] cython "
                          f"(declared: {declared})", node.lineno)


def _settings(c: _Checker, file: Path) -> None:
    if not file.is_file():
        c.add(file, "missing: every app ships a versioned app_settings.toml ([__meta__], [args], [cluster])")
        return
    loaded = c.toml(file)
    if loaded is None:
        return
    text, data = loaded
    for table in ("__meta__", "args", "cluster"):
        if not isinstance(data.get(table), dict):
            c.add(file, f"[{table}] table is missing", line_of(text, (table,)))


def _form(c: _Checker, file: Path) -> None:
    if not file.is_file():
        return
    tree = _parse_py(c, file)
    if tree is None:
        return
    functions = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    if "build_form" not in functions:
        c.add(file, "defines no build_form(args): the dashboard cannot show the custom form")
    for name in ("build_form", "preview_metrics"):
        fn = functions.get(name)
        if fn is not None and len(fn.args.args) != 1:
            c.add(file, f"{name} must take exactly one argument (the args object)", fn.lineno)


def check_app(path: str | Path, apps_paths: list[Path] | None = None, *, imports: bool = True) -> list[Problem]:
    """Every problem of the app folder ``path`` (empty when it fulfils the contract).

    ``imports=False`` reads the files only; otherwise the app's classes are also imported and inspected
    in a separate interpreter of the engine.
    """
    path = Path(path).expanduser().resolve()
    if not path.is_dir():
        return [Problem(str(path), None, "no such app folder")]
    problems, found = _static(path, apps_paths)
    if not imports or not found.get("refs"):
        return problems
    proc = subprocess.run(  # -P: the caller's folder is not on the path (a folder there named like the app is no clash)
        [sys.executable, "-P", "-m", "agilab_panel.appcheck_imports", str(path), json.dumps(found)],
        capture_output=True, text=True, timeout=IMPORT_TIMEOUT, stdin=subprocess.DEVNULL,
    )
    try:
        reported = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return problems + [Problem(str(path), None, f"importing the app ended its interpreter: {tail}")]
    seen = {(str(Path(p.file).resolve()), p.line) for p in problems}  # a syntax error is found by both checks
    return problems + [Problem(**p) for p in reported if (str(Path(p["file"]).resolve()), p["line"]) not in seen]
