"""Fixtures of the built-in app tests: the apps' Cython kernels compiled once per test run."""
from __future__ import annotations

import shutil
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from agilab_panel.apps import builtin_apps_path

KERNELS = {  # import name -> source: each app's kernels live in agilab_kernels.<app package>
    "agilab_kernels.mandelbrot.mandelbrot_kernel": "mandelbrot/src/mandelbrot/mandelbrot_kernel.pyx",
    "agilab_kernels.flight_telemetry.flight_kernel": "flight_telemetry/src/flight_telemetry/flight_kernel.pyx",
}


@pytest.fixture(scope="session")
def compiled_kernels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Compile the kernels the way INSTALL does (cythonize -i in a scratch folder, then moved into
    ``agilab_kernels/<app package>/``) and import them from there."""
    build = tmp_path_factory.mktemp("cython")
    for rel in KERNELS.values():
        shutil.copy2(builtin_apps_path() / rel, build)
    proc = subprocess.run(
        [sys.executable, "-m", "Cython.Build.Cythonize", "-i", "-q", *(Path(r).name for r in KERNELS.values())],
        cwd=build, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, f"cythonize failed:\n{proc.stdout}\n{proc.stderr}"
    for name in KERNELS:
        _, package, stem = name.split(".")
        (build / "agilab_kernels" / package).mkdir(parents=True, exist_ok=True)
        for built in build.glob(f"{stem}.*.so"):
            built.rename(build / "agilab_kernels" / package / built.name)
    sys.path.insert(0, str(build))
    try:
        yield build
    finally:
        sys.path.remove(str(build))
        for name in [m for m in sys.modules if m == "agilab_kernels" or m.startswith("agilab_kernels.")]:
            sys.modules.pop(name, None)


@pytest.fixture
def fake_cudf(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """A ``cudf`` module backed by pandas, so the rapids code path runs on a host without a GPU.

    ``calls`` counts the reads, proving the worker went through the cuDF entry points.
    """
    calls = types.SimpleNamespace(read_parquet=0, read_csv=0)
    module = types.ModuleType("cudf")

    def read_parquet(*a, **k):
        calls.read_parquet += 1
        return pd.read_parquet(*a, **k)

    def read_csv(*a, **k):
        calls.read_csv += 1
        return pd.read_csv(*a, **k)

    module.read_parquet, module.read_csv = read_parquet, read_csv
    module.to_datetime, module.DataFrame, module.Series = pd.to_datetime, pd.DataFrame, pd.Series
    module.__version__ = "0.0-pandas-stand-in"
    monkeypatch.setitem(sys.modules, "cudf", module)
    return calls


@pytest.fixture
def no_cudf(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import cudf`` fail even on a host that has it."""
    monkeypatch.setitem(sys.modules, "cudf", None)
