"""The import half of the app check, run as ``python -m agilab_panel.appcheck_imports PATH FOUND_JSON`` in a
fresh engine interpreter: the app's args, manager and worker are imported and their classes and method
signatures inspected there, so a broken app never leaves its modules behind in the caller. The problems
found come back as JSON on the last line of stdout."""
from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from .appcheck import Problem, _module_clash
from .toml_lines import line_of

__all__: list[str] = []  # run as a module, imported by nobody


def _where(exc: BaseException, src: Path) -> tuple[str, int | None]:
    """The innermost place inside the app where ``exc`` was raised (SyntaxErrors carry their own)."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return exc.filename, exc.lineno
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve().is_relative_to(src)]
    return (frames[-1].filename, frames[-1].lineno) if frames else (str(src), None)


def _source(obj: Any) -> tuple[str, int | None]:
    import inspect

    try:
        return inspect.getsourcefile(obj) or "?", inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        return getattr(sys.modules.get(getattr(obj, "__module__", "")), "__file__", "?") or "?", None


def _imports(path: Path, found: dict[str, Any]) -> list[Problem]:
    """Import args, manager and worker; check their classes and method signatures. Runs in a fresh
    interpreter, so what the app's package would shadow is what the engine has, not what a caller imported."""
    import importlib
    import inspect

    import param

    from .runtime.base import BaseManager, BaseWorker

    refs, dependencies = found["refs"], found.get("dependencies", [])
    problems: list[Problem] = []
    clash = _module_clash(found["package"]) if found.get("package") else None
    if clash:
        problems.append(Problem(*found["where"], f"the app package {found['package']!r} would shadow {clash}"))
    src = (path / "src").resolve()
    sys.path.insert(0, str(src))

    def add(where: tuple[str, int | None], message: str) -> None:
        problems.append(Problem(where[0], where[1], message))

    def load(key: str) -> Any:
        module_name, _, name = refs[key].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            declared = {_dist_name(d) for d in dependencies}
            missing = (exc.name or "").split(".")[0]
            if key == "worker" and missing and missing.replace("_", "-").lower() in declared:
                return None  # installed only in the worker environment: checked by INSTALL's check step
            add(_where(exc, src), f"{key} {refs[key]!r}: {type(exc).__name__}: {exc}")
            return None
        except BaseException as exc:  # noqa: BLE001 - any error importing the app is a problem to report
            add(_where(exc, src), f"{key} {refs[key]!r}: importing {module_name} raised {type(exc).__name__}: {exc}")
            return None
        obj = getattr(module, name, None)
        if obj is None:
            add((getattr(module, "__file__", str(src)), None), f"{key} {refs[key]!r}: {module_name} has no {name!r}")
        elif not inspect.isclass(obj):
            add(_source(obj), f"{key} {refs[key]!r} is not a class")
            return None
        elif "<locals>" in obj.__qualname__:
            add(_source(obj), f"{key} {refs[key]!r} is defined inside a function: define it at module level")
        return obj

    def signature(cls: type, method: str, call: tuple, kwargs: dict, expected: str) -> None:
        fn = getattr(cls, method, None)
        try:
            inspect.signature(fn).bind(*call, **kwargs)
        except (TypeError, ValueError):
            add(_source(fn), f"{cls.__name__}.{method} must accept {expected}")

    args_cls = load("args") if "args" in refs else None
    if args_cls is not None:
        if not issubclass(args_cls, param.Parameterized):
            add(_source(args_cls), f"args class {args_cls.__name__} must subclass param.Parameterized")
        else:
            try:
                args_cls()
            except Exception as exc:  # noqa: BLE001
                add(_source(args_cls), f"args class {args_cls.__name__}() fails with its defaults: {exc}")
            problems += _settings_args(path, args_cls)
    no_kwargs: dict[str, Any] = {}
    worker_kwargs = {"worker_id": "", "mode": 0, "data_in": "", "data_out": ""}
    roles = {  # role -> (base class, the method it must define, (method, call, kwargs, expected signature)...)
        "manager": (BaseManager, "partitions(self) -> list[Partition]", [
            ("__init__", (None, None, Path(), Path()), no_kwargs, "(self, args, data_in, data_out)"),
            ("partitions", (None,), no_kwargs, "(self) and return a list of Partition"),
            ("prepare", (None,), no_kwargs, "(self)")]),
        "worker": (BaseWorker, "work_pool(self, payload)", [
            ("__init__", (None, {}), worker_kwargs,
             "(self, args, *, worker_id, mode, data_in, data_out) and pass them to super().__init__"),
            ("work_pool", (None, {}), no_kwargs, "(self, payload): one partition's payload dict"),
            ("work_done", (None, []), no_kwargs, "(self, results): a list of (label, result) pairs"),
            ("work_init", (None,), no_kwargs, "(self)"),
            ("stop", (None,), no_kwargs, "(self)")]),
    }
    for key, (base, required, calls) in roles.items():
        cls = load(key) if key in refs else None
        if cls is None:
            continue
        method = required.partition("(")[0]
        if not issubclass(cls, base):
            add(_source(cls), f"{key} {cls.__name__} must subclass agilab_panel.runtime.{base.__name__}")
        elif getattr(cls, method) is getattr(base, method):
            add(_source(cls), f"{key} {cls.__name__} must define {required}")
        else:
            for name, call, kwargs, expected in calls:
                signature(cls, name, call, kwargs, expected)
    return problems


def _dist_name(requirement: str) -> str:
    try:
        from packaging.requirements import Requirement

        return Requirement(requirement).name.replace("_", "-").lower()
    except Exception:  # noqa: BLE001 - a bad requirement is INSTALL's to report
        return requirement


def _settings_args(path: Path, args_cls: type) -> list[Problem]:
    """Every ``[args]`` value of the shipped settings, and of each argument set, must be one the args
    class accepts."""
    from .presets import PRESETS, check_presets
    from .settings import make_args

    file = path / "app_settings.toml"
    try:
        text = file.read_text(encoding="utf-8")
        values = dict(tomllib.loads(text).get("args", {}))
    except (OSError, ValueError, TypeError, tomllib.TOMLDecodeError):
        return []  # reported by the file check
    problems = []
    presets = values.pop(PRESETS, {})
    for key, value in values.items():
        try:
            make_args(args_cls, {key: value}, path.name)
        except Exception as exc:  # noqa: BLE001
            problems.append(Problem(str(file), line_of(text, ("args", key)), f"[args] {exc}"))
    try:
        check_presets(presets, lambda k, v: make_args(args_cls, {k: v}, path.name))
    except ValueError as exc:
        problems.append(Problem(str(file), line_of(text, exc.keys), str(exc)))  # type: ignore[attr-defined]
    return problems


def _main(argv: list[str]) -> int:
    """The import check of the app at ``argv[0]`` (what the file check found in ``argv[1]``), as JSON."""
    path, found = Path(argv[0]), json.loads(argv[1])
    problems = _imports(path, found)
    sys.stdout.flush()
    print("\n" + json.dumps([p.to_dict() for p in problems]))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
