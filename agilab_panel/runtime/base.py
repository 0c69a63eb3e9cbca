"""The app contract: a manager that plans, a worker that works (SPEC §4)."""
from __future__ import annotations

import importlib
import json
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Partition", "BaseManager", "BaseWorker", "CapabilityError", "Args", "KERNELS_PACKAGE", "kernel_module"]

# Compiled kernels are built into a package of their own per app (``agilab_kernels.<app package>``), never
# as top-level modules: a kernel called ``utils`` or ``random`` cannot shadow anything, and two apps'
# ``kernel.pyx`` stay two modules even in one worker process. Both levels are namespace packages.
KERNELS_PACKAGE = "agilab_kernels"


def kernel_module(app_package: str, name: str) -> str:
    """The import name of the kernel built from ``<name>.pyx`` of the app whose package is ``app_package``."""
    return f"{KERNELS_PACKAGE}.{app_package}.{name}"


class CapabilityError(RuntimeError):
    """A requested mode bit this host cannot provide (no cuDF, no compiled build): never a silent fallback."""


@dataclass(frozen=True)
class Partition:
    """One unit of work: a label, a relative weight, and a JSON-able payload for the worker."""

    label: str
    weight: float
    payload: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "weight": self.weight, "payload": self.payload}


class Args(Mapping[str, Any]):
    """The run's arguments in a worker: read-only plain values, by attribute like the manager's param object
    (``self.args.size``) or by key (``self.args["size"]``)."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_values", dict(values))

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_values":
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"the app has no argument {name!r} (arguments: {', '.join(self._values)})") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a worker's args are read-only: the plan fixed them for every partition")

    def __reduce__(self) -> tuple[type, tuple[dict[str, Any]]]:
        return Args, (self._values,)

    def __repr__(self) -> str:
        return f"Args({self._values!r})"


class BaseManager:
    """Runs in the engine: prepares inputs and cuts the work into partitions.

    ``args`` is the app's args object (a ``param.Parameterized``); ``data_in``/``data_out`` are
    resolved folders in the cluster share.
    """

    def __init__(self, args: Any, data_in: Path, data_out: Path) -> None:
        self.args = args
        self.data_in = Path(data_in)
        self.data_out = Path(data_out)

    def prepare(self) -> None:
        """Make sure inputs exist (apps that generate their data do it here, idempotently)."""

    def partitions(self) -> list[Partition]:
        raise NotImplementedError


class BaseWorker:
    """Runs in a worker process: ``work_init`` once, ``work_pool`` per partition, ``work_done`` once.

    ``work_pool`` must be deterministic and return something picklable, so every mode gives the same
    output. ``work_done`` receives ``(label, result)`` pairs in plan order and returns the output
    dataframe (or None); the runtime writes it atomically under ``data_out``.
    """

    summary_name: str | None = None  # ``[tool.agilab] summary``, set by the runtime (see write_summary)

    def __init__(self, args: Mapping[str, Any], *, worker_id: str, mode: int, data_in: str | Path,
                 data_out: str | Path) -> None:
        self.args = Args(args)
        self.worker_id = worker_id
        self.mode = mode
        self.data_in = Path(data_in)
        self.data_out = Path(data_out)

    @property
    def use_cython(self) -> bool:
        return bool(self.mode & 2)

    @property
    def use_rapids(self) -> bool:
        return bool(self.mode & 8)

    def work_init(self) -> None:
        """Once per worker process, before its first partition."""

    def work_pool(self, payload: dict[str, Any]) -> Any:
        raise NotImplementedError

    def work_done(self, results: list[tuple[str, Any]]) -> Any:
        """Combine the partition results; default: concatenate dataframes in plan order."""
        import pandas as pd

        frames = [r for _, r in results if isinstance(r, pd.DataFrame)]
        if not frames:
            return None
        return pd.concat(frames, ignore_index=True)

    def stop(self) -> None:
        """Release what ``work_init`` took."""

    # -- helpers for apps ---------------------------------------------------------------------------
    def compiled(self, name: str) -> Any:
        """Import the app's kernel built from ``<name>.pyx``, or say which host lacks it and how to fix it."""
        module = kernel_module(type(self).__module__.split(".")[0], name)
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            raise CapabilityError(
                f"cython mode needs the compiled kernel {name!r} ({module}) on host {socket.gethostname()} "
                f"(worker {self.worker_id}): run INSTALL with cython enabled ({exc})"
            ) from exc

    def write_summary(self, metrics: Mapping[str, Any]) -> Path:
        """Write the run's metrics as JSON to the file ``[tool.agilab] summary`` names, under ``data_out``.

        The dashboard shows them beside the values the args form previews (``preview_metrics``).
        """
        from ..fsutil import atomic_write_text

        if not self.summary_name:
            raise ValueError("write_summary needs [tool.agilab] summary = \"<name>.json\" in the app's pyproject.toml")
        if Path(self.summary_name).name != self.summary_name:
            raise ValueError(f"[tool.agilab] summary must be a file name inside data_out, not {self.summary_name!r}")
        path = self.data_out / self.summary_name
        atomic_write_text(path, json.dumps(dict(metrics), indent=2, default=str))
        return path

    def cudf(self) -> Any:
        """Import cuDF, or say which host cannot run the RAPIDS path."""
        try:
            return importlib.import_module("cudf")
        except Exception as exc:  # cudf raises more than ImportError without a GPU
            raise CapabilityError(
                f"rapids mode needs cuDF and a GPU on host {socket.gethostname()} (worker {self.worker_id}): "
                f"install RAPIDS there or turn the rapids toggle off ({type(exc).__name__}: {exc})"
            ) from exc
