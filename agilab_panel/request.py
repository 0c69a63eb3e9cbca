"""RunRequest: everything one ``AGI.run`` call needs, validated once when it is built."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from os import PathLike, fspath
from types import MappingProxyType
from typing import Any

from .hosts import parse_host_port, validate_workers
from .modes import parse_mode
from .paths import check_worker_path

__all__ = ["DEFAULT_REPEATS", "RunRequest"]

ModeSpec = int | str | list | tuple | None
DEFAULT_REPEATS = 3  # timed runs per mode in a benchmark


def _normalize_mode(mode: ModeSpec) -> int | tuple[int, ...] | None:
    if mode is None:
        return None
    if isinstance(mode, (list, tuple)):
        if not mode:
            raise ValueError("mode list is empty: give at least one mode, or None to benchmark the enabled modes")
        modes = tuple(parse_mode(m) for m in mode)
        if len(set(modes)) != len(modes):
            raise ValueError(f"mode list {list(mode)!r} repeats a mode")
        return modes
    if isinstance(mode, (int, str)) and not isinstance(mode, bool):
        return parse_mode(mode)
    raise ValueError(f"mode must be an int 0..15, a mode string like 'dp', a list of modes or None, got {mode!r}")


@dataclass(frozen=True)
class RunRequest:
    """What to run and where. ``mode=None`` (or a list) means a benchmark of those modes."""

    params: Mapping[str, Any] = field(default_factory=dict)
    data_in: str | None = None
    data_out: str | None = None
    reset_target: bool = False
    scheduler: str | None = None
    workers: Mapping[str, int] | None = None
    mode: ModeSpec = 0
    rapids_enabled: bool = False
    workers_data_path: str | None = None
    verbose: int = 1
    repeats: int = DEFAULT_REPEATS  # timed runs per benchmarked mode, after one untimed warm-up run of each

    def __post_init__(self) -> None:
        if not isinstance(self.params, Mapping):
            raise ValueError(f"params must be a mapping of app arguments, got {type(self.params).__name__}")
        for key in self.params:
            if not isinstance(key, str) or not key.isidentifier():
                raise ValueError(f"params key {key!r} is not a valid argument name")
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        for name in ("data_in", "data_out", "workers_data_path"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                if not isinstance(value, PathLike):
                    raise ValueError(f"{name} must be a path, got {type(value).__name__} {value!r}")
                object.__setattr__(self, name, fspath(value))
        if self.workers_data_path:
            check_worker_path(self.workers_data_path)
        if self.scheduler is not None:
            if not isinstance(self.scheduler, str):
                raise ValueError(f"scheduler must be 'host[:port]', got {self.scheduler!r}")
            if self.scheduler.strip():
                parse_host_port(self.scheduler)
            else:
                object.__setattr__(self, "scheduler", None)
        if self.workers is not None:
            object.__setattr__(self, "workers", MappingProxyType(validate_workers(self.workers)))
        object.__setattr__(self, "mode", _normalize_mode(self.mode))
        for name in ("reset_target", "rapids_enabled"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if isinstance(self.verbose, bool) or not isinstance(self.verbose, int) or not 0 <= self.verbose <= 3:
            raise ValueError(f"verbose must be an int 0..3, got {self.verbose!r}")
        if isinstance(self.repeats, bool) or not isinstance(self.repeats, int) or not 1 <= self.repeats <= 100:
            raise ValueError(f"repeats must be an int 1..100 (timed runs per benchmarked mode), got {self.repeats!r}")

    @property
    def is_benchmark(self) -> bool:
        return not isinstance(self.mode, int)

    def to_dict(self) -> dict[str, Any]:
        mode = list(self.mode) if isinstance(self.mode, tuple) else self.mode
        return {
            "params": dict(self.params),
            "data_in": self.data_in,
            "data_out": self.data_out,
            "reset_target": self.reset_target,
            "scheduler": self.scheduler,
            "workers": dict(self.workers) if self.workers is not None else None,
            "mode": mode,
            "rapids_enabled": self.rapids_enabled,
            "workers_data_path": self.workers_data_path,
            "verbose": self.verbose,
            "repeats": self.repeats,
        }
