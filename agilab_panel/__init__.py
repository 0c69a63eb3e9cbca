"""agilab-panel: the ORCHESTRATE page of AGILAB as a Panel/HoloViews dashboard over a real engine.

The package face is lazy so that worker environments importing ``agilab_panel.runtime`` start fast
and never pull in the engine, Dask's client or Panel.
"""
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "AGI",
    "AgiEnv",
    "RunRequest",
    "EventBus",
    "POOL_MODE",
    "PYTHON_MODE",
    "CYTHON_MODE",
    "DASK_MODE",
    "RAPIDS_MODE",
    "__version__",
]

_LAZY = {
    "AGI": ".agi",
    "AgiEnv": ".env",
    "RunRequest": ".request",
    "EventBus": ".events",
    "POOL_MODE": ".modes",
    "PYTHON_MODE": ".modes",
    "CYTHON_MODE": ".modes",
    "DASK_MODE": ".modes",
    "RAPIDS_MODE": ".modes",
}

if TYPE_CHECKING:  # pragma: no cover
    from .agi import AGI
    from .env import AgiEnv
    from .events import EventBus
    from .modes import CYTHON_MODE, DASK_MODE, POOL_MODE, PYTHON_MODE, RAPIDS_MODE
    from .request import RunRequest


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'agilab_panel' has no attribute {name!r}")
