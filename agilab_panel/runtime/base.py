"""The app contract: a manager that plans, a worker that works (SPEC §4)."""
from __future__ import annotations

import importlib
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Partition", "BaseManager", "BaseWorker", "CapabilityError"]


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

    def __init__(self, args: dict[str, Any], *, worker_id: str, mode: int, data_in: str | Path, data_out: str | Path) -> None:
        self.args = dict(args)
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
    def compiled(self, module: str) -> Any:
        """Import the app's compiled (Cython) module, or say which host lacks it and how to fix it."""
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            raise CapabilityError(
                f"cython mode needs the compiled module {module!r} on host {socket.gethostname()} "
                f"(worker {self.worker_id}): run INSTALL with cython enabled ({exc})"
            ) from exc

    def cudf(self) -> Any:
        """Import cuDF, or say which host cannot run the RAPIDS path."""
        try:
            return importlib.import_module("cudf")
        except Exception as exc:  # cudf raises more than ImportError without a GPU
            raise CapabilityError(
                f"rapids mode needs cuDF and a GPU on host {socket.gethostname()} (worker {self.worker_id}): "
                f"install RAPIDS there or turn the rapids toggle off ({type(exc).__name__}: {exc})"
            ) from exc
