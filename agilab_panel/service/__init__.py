"""Service mode (SPEC §8): persistent worker loops fed by a queue of task files in the cluster share.

The loops run inside Dask workers started from the worker environment (:mod:`.loop`, light: stdlib,
the queue and the runtime only); everything else runs in the engine: the controller behind
``AGI.serve`` / ``AGI.submit`` (:mod:`.controller`), the health evaluation (:mod:`.heartbeat`,
:mod:`.health`), the gate (:mod:`.gate`), Prometheus text (:mod:`.prometheus`) and the cheap views a
dashboard polls (:mod:`.monitor`). This package file imports nothing, so a worker importing the loop
pays for the loop alone.
"""
from __future__ import annotations

__all__: list[str] = []
