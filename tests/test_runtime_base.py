"""The app contract's base classes as workers see them: args, summary file, where kernels are imported from."""
from __future__ import annotations

import json
import pickle
import socket
import sys
from pathlib import Path

import pytest

from agilab_panel.runtime import Args, BaseWorker, CapabilityError, kernel_module


class _Worker(BaseWorker):
    def work_pool(self, payload: dict) -> int:
        return self.args.size * payload["factor"]


def _worker(tmp_path: Path, **args) -> _Worker:
    return _Worker({"size": 3, **args}, worker_id="w", mode=2, data_in=tmp_path / "in", data_out=tmp_path / "out")


def test_worker_args_read_by_attribute_like_the_manager_or_by_key(tmp_path: Path) -> None:
    worker = _worker(tmp_path, label="x")
    assert worker.work_pool({"factor": 2}) == 6 and worker.args["label"] == "x" and dict(worker.args) == {"size": 3, "label": "x"}
    with pytest.raises(AttributeError, match="no argument 'sise'.*size, label"):
        worker.args.sise
    with pytest.raises(AttributeError, match="read-only"):
        worker.args.size = 4
    with pytest.raises(TypeError):
        worker.args["size"] = 4
    assert pickle.loads(pickle.dumps(worker.args)) == worker.args


def test_write_summary_writes_the_declared_file_only(tmp_path: Path) -> None:
    worker = _worker(tmp_path)
    with pytest.raises(ValueError, match=r"\[tool.agilab\] summary"):
        worker.write_summary({"rows": 1})
    worker.summary_name = "metrics.json"
    path = worker.write_summary({"rows": 1})
    assert path == tmp_path / "out" / "metrics.json" and json.loads(path.read_text()) == {"rows": 1}
    worker.summary_name = "../escape.json"
    with pytest.raises(ValueError, match="file name inside data_out"):
        worker.write_summary({"rows": 2})
    assert not (tmp_path / "escape.json").exists()


def test_kernels_are_imported_from_the_app_s_own_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two apps' ``kernel.pyx`` never meet: each worker imports agilab_kernels.<its package>.kernel."""
    pkg = tmp_path / "agilab_kernels" / "tests_app_a"
    pkg.mkdir(parents=True)
    (pkg / "kernel.py").write_text("WHO = 'a'\n")  # stands for a compiled module: the import is the same
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(_Worker, "__module__", "tests_app_a.worker")
    assert kernel_module("tests_app_a", "kernel") == "agilab_kernels.tests_app_a.kernel"
    assert _worker(tmp_path).compiled("kernel").WHO == "a"
    monkeypatch.setattr(_Worker, "__module__", "tests_app_b.worker")
    with pytest.raises(CapabilityError, match=f"agilab_kernels.tests_app_b.kernel.*{socket.gethostname()}"):
        _worker(tmp_path).compiled("kernel")
    for name in [m for m in sys.modules if m.startswith("agilab_kernels")]:
        monkeypatch.delitem(sys.modules, name)
