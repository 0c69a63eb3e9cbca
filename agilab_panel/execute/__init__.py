"""Executors: one module per execution path (local/pool in a worker process, Dask cluster)."""
from .result import BenchmarkResult, PartitionStatus, RunError, RunResult

__all__ = ["BenchmarkResult", "PartitionStatus", "RunError", "RunResult"]
