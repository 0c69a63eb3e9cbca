"""The service's state file: what a new process needs to find a running service, report on it and stop it.

``<share>/service/<app>/service.json`` records the scheduler, every process the service started
(pid, command, host), the loop of each slot (its Dask key and incarnation), the settings it runs
with and the restarts it made, with their time, so the restart rate is measured over a window.
Written atomically; a file that cannot be read is named in a one-line error, never guessed at.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..fsutil import atomic_write_text
from .queue import ServicePaths

__all__ = ["STATE_SCHEMA", "ServiceStateError", "SlotState", "ServiceState", "read_state", "write_state"]

STATE_SCHEMA = "agi.service.state.v1"
_RESTARTS_KEPT = 1000  # the history is for the rate over a window; older entries are dropped


class ServiceStateError(RuntimeError):
    """A state file that exists but cannot be used."""


@dataclass
class SlotState:
    """One slot: its Dask worker (address, pid and how to start it again) and the loop it runs."""

    worker: str
    address: str = ""
    pid: int | None = None
    command: list[str] | None = None
    incarnation: int = 0
    started: float = 0.0
    key: str = ""


@dataclass
class ServiceState:
    app: str
    host: str  # where the processes below run (pids mean nothing elsewhere)
    scheduler: str  # tcp://host:port
    external: bool  # a scheduler and workers someone else started: never signalled
    cluster_dir: str
    python: str
    cython_path: str | None
    mode: int
    workers: dict[str, int]
    settings: dict[str, Any]
    scheduler_pid: int | None = None
    slots: dict[str, SlotState] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)
    restarts: list[dict[str, Any]] = field(default_factory=list)
    futures: dict[str, str] = field(default_factory=dict)  # last known Dask future state per slot
    schema: str = STATE_SCHEMA

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServiceState:
        data = dict(data)
        slots = {k: SlotState(**v) for k, v in dict(data.pop("slots", {})).items()}
        return cls(**data, slots=slots)

    def record_restart(self, worker: str, reason: str, now: float | None = None) -> None:
        self.restarts.append({"time": time.time() if now is None else now, "worker": worker, "reason": reason})
        del self.restarts[:-_RESTARTS_KEPT]

    def restarts_within(self, window: float, now: float | None = None) -> list[dict[str, Any]]:
        now = time.time() if now is None else now
        return [r for r in self.restarts if now - float(r["time"]) <= window]

    def restart_rate(self, window: float, now: float | None = None) -> float:
        """Restarts per slot over the last ``window`` seconds (not since the service started)."""
        return len(self.restarts_within(window, now)) / max(1, len(self.slots))


def read_state(paths: ServicePaths) -> ServiceState | None:
    """The state of the service, or None when none runs; a broken file raises naming it."""
    try:
        text = paths.state_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
        if data.get("schema") != STATE_SCHEMA:
            raise ValueError(f"schema {data.get('schema')!r} is not {STATE_SCHEMA!r}")
        return ServiceState.from_dict(data)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ServiceStateError(f"service state file {paths.state_file} cannot be read ({exc}); "
                                "stop the service processes by hand and delete it") from exc


def write_state(paths: ServicePaths, state: ServiceState) -> None:
    atomic_write_text(paths.state_file, state.to_json())
