"""Apps: discovery and the contract an app folder fulfils (SPEC §4).

An app is a folder with a ``pyproject.toml`` whose ``[tool.agilab]`` table names its args class,
manager and worker, plus a versioned ``app_settings.toml``. The engine imports the args class and the
manager; the worker is imported only inside the worker environment.
"""
from __future__ import annotations

import importlib
import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .appcheck import cython_entry_problem, tool_value_problem

__all__ = ["AppError", "AppSpec", "apps_paths_from_environment", "builtin_apps_path", "discover_apps", "load_app"]


class AppError(Exception):
    """An app folder that does not fulfil the contract, or an app that cannot be found."""


def builtin_apps_path() -> Path:
    """The ``apps/`` folder shipped beside the package."""
    return Path(__file__).resolve().parent.parent / "apps"


def apps_paths_from_environment() -> list[Path]:
    """The extra app folders of ``AGILAB_APPS_PATH`` (separated like PATH): every command and the page see the same apps."""
    return [Path(p) for p in os.environ.get("AGILAB_APPS_PATH", "").split(os.pathsep) if p]


def _import_object(ref: str, src_path: Path) -> Any:
    module_name, _, attr = ref.partition(":")
    if not attr:
        raise AppError(f"{ref!r} must look like 'package.module:Name'")
    src = str(src_path)
    if src not in sys.path:
        sys.path.insert(0, src)
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise AppError(f"{module_name} has no attribute {attr!r}") from exc


@dataclass(frozen=True)
class AppSpec:
    """What the engine knows about one app folder."""

    name: str
    path: Path
    module: str
    args_ref: str
    manager_ref: str
    worker_ref: str
    dependencies: tuple[str, ...] = ()
    cython: tuple[str, ...] = ()  # .pyx files relative to the app folder
    rapids: bool = False
    pool_backend: str = "process"
    description: str = ""
    output: str = "output.parquet"
    summary: str | None = None  # JSON metrics file the worker writes under data_out (write_summary)
    tool: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def src_path(self) -> Path:
        return self.path / "src"

    @property
    def settings_seed(self) -> Path:
        return self.path / "app_settings.toml"

    @property
    def args_form(self) -> Path | None:
        form = self.path / "app_args_form.py"
        return form if form.is_file() else None

    def args_class(self) -> type:
        return _import_object(self.args_ref, self.src_path)

    def manager_class(self) -> type:
        return _import_object(self.manager_ref, self.src_path)

    def worker_class(self) -> type:
        return _import_object(self.worker_ref, self.src_path)

    @property
    def worker_module(self) -> str:
        return self.worker_ref.partition(":")[0]


def load_app(path: Path) -> AppSpec:
    """Read an app folder's ``pyproject.toml``; a missing piece is an :class:`AppError` naming it."""
    path = Path(path).resolve()
    pyproject = path / "pyproject.toml"
    if not pyproject.is_file():
        raise AppError(f"{path} is not an app: it has no pyproject.toml")
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise AppError(f"{pyproject}: {exc}") from exc
    tools = data.get("tool", {})
    tool = tools.get("agilab") if isinstance(tools, dict) else None
    if not isinstance(tool, dict):
        raise AppError(f"{pyproject} has no [tool.agilab] table")
    project = data.get("project", {})
    dependencies = project.get("dependencies", []) if isinstance(project, dict) else None
    if not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies):
        raise AppError(f"{pyproject}: [project] dependencies must be a list of requirement strings, not {dependencies!r}")
    name = path.name
    module = tool.get("module", name.replace("-", "_"))
    missing = [key for key in ("args", "manager", "worker") if key not in tool]
    if missing:
        raise AppError(f"{pyproject}: [tool.agilab] lacks {', '.join(missing)}")
    if not (path / "app_settings.toml").is_file():
        raise AppError(f"{path} has no versioned app_settings.toml")
    backend = tool.get("pool_backend", "process")
    # The same checks as check-app, stopping at the first: names the engine turns into paths stay
    # where they belong, and every value has the type the engine reads it as.
    for key, value in {**tool, "module": module}.items():
        problem = tool_value_problem(key, value)
        if problem:
            raise AppError(f"{pyproject}: [tool.agilab] {key} {problem}")
    for source in tool.get("cython", []):
        problem = cython_entry_problem(path, source)
        if problem:
            raise AppError(f"{pyproject}: [tool.agilab] {problem}")
    return AppSpec(
        name=name,
        path=path,
        module=module,
        args_ref=tool["args"],
        manager_ref=tool["manager"],
        worker_ref=tool["worker"],
        dependencies=tuple(dependencies),
        cython=tuple(tool.get("cython", ())),
        rapids=bool(tool.get("rapids", False)),
        pool_backend=backend,
        description=project.get("description", ""),
        output=tool.get("output", "output.parquet"),
        summary=tool.get("summary") or None,
        tool=dict(tool),
    )


def discover_apps(apps_paths: list[Path] | None = None) -> dict[str, Path]:
    """App name -> folder, built-in apps first; a later folder does not shadow an earlier one."""
    found: dict[str, Path] = {}
    for root in [builtin_apps_path(), *(apps_paths or [])]:
        root = Path(root).expanduser()
        if not root.is_dir():
            continue
        candidates = [root] if (root / "pyproject.toml").is_file() else sorted(root.iterdir())
        for child in candidates:
            pyproject = child / "pyproject.toml"
            if pyproject.is_file() and "[tool.agilab]" in pyproject.read_text(encoding="utf-8"):
                found.setdefault(child.name, child.resolve())
    return found
