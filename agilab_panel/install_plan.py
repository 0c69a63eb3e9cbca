"""What an install of an app needs on a host, and the fingerprint of each step's inputs.

Pickles and the Dask protocol cross between the engine and its workers, so the worker's runtime
packages are pinned to the versions the engine runs. Every step is fingerprinted from its inputs: an
unchanged install skips all steps in milliseconds, and an edited ``.pyx`` rebuilds only the Cython step.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .env import AgiEnv
from .modes import CYTHON_MODE, RAPIDS_MODE
from .runtime.base import KERNELS_PACKAGE, kernel_module

__all__ = ["runtime_requirements", "install_fingerprint", "install_steps", "project_root"]

RUNTIME_PACKAGES = ("dask", "distributed", "pandas", "numpy", "pyarrow", "param", "tomlkit", "filelock",
                    "python-dotenv", "cloudpickle")
CYTHON_PACKAGES = ("cython", "setuptools")
_RELEVANT_BITS = CYTHON_MODE | RAPIDS_MODE  # the only mode bits that change what install prepares
_STEP_BIT = {"cython": CYTHON_MODE, "rapids": RAPIDS_MODE}


def project_root() -> Path:
    """The source tree of agilab_panel, installed editable into every worker environment."""
    return Path(__file__).resolve().parent.parent


def _engine_versions(names: Iterable[str]) -> dict[str, str]:
    """Versions the engine runs of ``names`` and of everything they depend on (canonical names).

    Reading every package's metadata takes a good part of a second and pages ask often; the answer
    changes only when a package is installed or removed, which touches the site-packages folders.
    """
    return dict(_versions_of(tuple(sorted(set(names))), _site_packages_stamp()))


def _site_packages_stamp() -> tuple[int, ...]:
    stamps = []
    for folder in sys.path:
        with contextlib.suppress(OSError):
            if folder.endswith("-packages"):
                stamps.append(os.stat(folder).st_mtime_ns)
    return tuple(stamps)


@lru_cache(maxsize=8)
def _versions_of(names: tuple[str, ...], _stamp: tuple[int, ...]) -> tuple[tuple[str, str], ...]:
    versions: dict[str, str] = {}
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in versions:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        versions[name] = dist.version
        for text in dist.requires or ():
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return tuple(versions.items())


def runtime_requirements(modes_enabled: int) -> tuple[list[str], list[str]]:
    """(requirements, constraints): the runtime packages pinned ``==`` to the engine's versions, and the
    engine's versions of their whole dependency tree (applied to the app's dependencies too)."""
    names = RUNTIME_PACKAGES + (CYTHON_PACKAGES if modes_enabled & CYTHON_MODE else ())
    versions = _engine_versions(names)
    pinned = {n: versions.get(canonicalize_name(n)) for n in names}
    requirements = [f"{n}=={v}" if v else n for n, v in pinned.items()]  # setuptools may be absent from the engine
    # A local version (``+cpu``) is not on the index: pinning it would make every install fail.
    constraints = sorted(f"{n}=={v}" for n, v in versions.items() if "+" not in v and n != "agilab-panel")
    return requirements, constraints


def _venv_python(wenv: Path) -> Path:
    return wenv / ".venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _compiled_files(folder: Path, module: str) -> list[Path]:
    return [folder / f"{module}{suffix}" for suffix in EXTENSION_SUFFIXES if (folder / f"{module}{suffix}").is_file()]


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def _read(path: Path) -> bytes:
    return path.read_bytes() if path.is_file() else b"<missing>"


@dataclass(frozen=True)
class _Plan:
    """Everything one host's install will do, and the fingerprint of each step's inputs (in run order)."""

    host: str
    wenv: Path
    python: Path
    requirements: tuple[str, ...]
    constraints: tuple[str, ...]
    app_target: str
    pyx: tuple[Path, ...]
    package: str  # the app's top-level package: its kernels live in agilab_kernels/<package>/
    steps: dict[str, str]
    fingerprint: str

    @property
    def cython_dir(self) -> Path:
        return self.wenv / "cython"

    @property
    def kernel_dir(self) -> Path:
        return self.cython_dir / KERNELS_PACKAGE / self.package

    @property
    def modules(self) -> list[str]:
        """Kernel names, as the worker asks for them (``self.compiled(name)``): the ``.pyx`` stems."""
        return [p.stem for p in self.pyx]

    @property
    def imports(self) -> list[str]:
        """The kernels' full import names."""
        return [kernel_module(self.package, m) for m in self.modules]


def _plan(env: AgiEnv, modes_enabled: int, host: str = "localhost") -> _Plan:
    bits = modes_enabled & _RELEVANT_BITS
    spec = env.spec
    wenv = env.wenv_path(host)
    requirements, constraints = runtime_requirements(bits)
    pyproject = _read(spec.path / "pyproject.toml")
    app_target = str(spec.path)
    if bits & RAPIDS_MODE and _has_extra(pyproject, "rapids"):
        app_target += "[rapids]"
    pyx = tuple(spec.path / rel for rel in spec.cython) if bits & CYTHON_MODE else ()
    package = spec.worker_module.split(".")[0]

    steps = {"venv": _digest(sys.version, sys.executable)}
    steps["runtime"] = _digest(steps["venv"], "bytecode", *requirements, "|", *constraints, str(project_root()),
                               _read(project_root() / "pyproject.toml"))
    steps["app"] = _digest(steps["runtime"], app_target, pyproject)
    if pyx:
        cython_pin = [r for r in requirements if r.lower().startswith("cython")]
        sources = [part for p in pyx for src in (p, *_pxd_files(p)) for part in (src.name, _read(src))]
        steps["cython"] = _digest(steps["venv"], *cython_pin, KERNELS_PACKAGE, package, *sources)
    if bits & RAPIDS_MODE:
        steps["rapids"] = _digest(steps["app"], "rapids")
    steps["check"] = _digest(*steps.values(), spec.worker_module)
    return _Plan(host, wenv, _venv_python(wenv), tuple(requirements), tuple(constraints), app_target, pyx,
                 package, steps, _digest(str(bits), *steps.values()))


def _extra(pyproject: bytes, extra: str | None) -> list[str] | None:
    """The requirements of ``[project.optional-dependencies] extra`` (None when the app has no such extra),
    or of ``[project] dependencies`` when ``extra`` is None; read from the file as it is now."""
    try:
        project = tomllib.loads(pyproject.decode()).get("project", {})
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    found = project.get("dependencies", []) if extra is None else project.get("optional-dependencies", {}).get(extra)
    return list(found) if isinstance(found, list) else None


def _has_extra(pyproject: bytes, extra: str) -> bool:
    return _extra(pyproject, extra) is not None


def _pxd_files(pyx: Path) -> list[Path]:
    """Declaration files beside a kernel: it may ``cimport`` them, so they are copied and fingerprinted."""
    return sorted(pyx.parent.glob("*.pxd")) if pyx.parent.is_dir() else []


def install_fingerprint(env: AgiEnv, modes_enabled: int, host: str = "localhost") -> str:
    """The fingerprint an install with these modes would record (it changes when any input changes)."""
    return _plan(env, modes_enabled, host).fingerprint


def install_steps(env: AgiEnv, modes_enabled: int, host: str = "localhost") -> list[str]:
    """The steps an INSTALL of these modes runs on a local ``host``, in order (a view lays them out first)."""
    return list(_plan(env, modes_enabled, host).steps)
