"""Structured results of engine actions: what the CLI prints with ``--json``, the dashboard renders
and the tests assert on — nobody parses log text to learn whether an action worked.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["StepResult", "HostInstall", "InstallResult"]


# -- install ---------------------------------------------------------------------------------------
@dataclass
class StepResult:
    """One install step on one host; ``skipped`` means its inputs had not changed since the last install."""

    name: str
    ok: bool
    seconds: float
    skipped: bool = False
    detail: str = ""
    # where the step's time went: each command it ran (wall seconds), and the phases uv reports for its
    # own commands ("runtime packages: uv resolved", "... uv prepared" (download and build), "... uv
    # installed", "... uv bytecode compiled")
    parts: dict[str, float] = field(default_factory=dict)


@dataclass
class HostInstall:
    """The install of one host's worker environment; ``error`` names the host and the failed step."""

    host: str
    ok: bool
    wenv: str
    steps: list[StepResult] = field(default_factory=list)
    error: str = ""

    def step(self, name: str) -> StepResult | None:
        return next((s for s in self.steps if s.name == name), None)


@dataclass
class InstallResult:
    """``AGI.install``: one :class:`HostInstall` per host of the worker map (local hosts share one)."""

    app: str
    modes_enabled: int
    hosts: dict[str, HostInstall]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(h.ok for h in self.hosts.values())

    @property
    def errors(self) -> list[str]:
        return list(dict.fromkeys(h.error for h in self.hosts.values() if not h.ok))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}
