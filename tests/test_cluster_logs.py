"""Log lines of cluster processes get levels the log view can filter on."""
from __future__ import annotations

from agilab_panel.execute.cluster import _level


def test_dask_chatter_is_debug_while_app_prints_and_problems_stay_visible():
    assert _level("2026-11-30 06:03:30,861 - distributed.worker - INFO - Run out-of-band function 'warm'") == "DEBUG"
    assert _level("2026-11-30 06:03:30,861 - distributed.worker - WARNING - Compute Failed") == "WARNING"
    assert _level("2026-11-30 06:03:30,861 - distributed.core - ERROR - boom") == "ERROR"
    assert _level("aircraft-003: 100000 rows aggregated") == "INFO"
