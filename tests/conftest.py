"""Shared fixtures: every test runs against per-test folders, never the real ~/.agilab or ~/log."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def agilab_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Point every per-user path of SPEC §3 at a temporary folder and drop extra app folders."""
    dirs = {
        "AGILAB_HOME": tmp_path / "agilab_home",
        "AGI_CLUSTER_SHARE": tmp_path / "share",
        "AGILAB_EXPORT_ABS": tmp_path / "export",
        "AGILAB_LOG_ABS": tmp_path / "log" / "execute",
    }
    for name, path in dirs.items():
        monkeypatch.setenv(name, str(path))
    monkeypatch.delenv("AGILAB_APPS_PATH", raising=False)
    return dirs
