"""What a worker environment needs: the base classes apps build on and the runner entry points.

Imports stay light (no Panel, no engine settings) so a worker starts fast.
"""
from .base import Args, BaseManager, BaseWorker, CapabilityError, Partition, kernel_module

__all__ = ["Args", "BaseManager", "BaseWorker", "CapabilityError", "Partition", "kernel_module"]
