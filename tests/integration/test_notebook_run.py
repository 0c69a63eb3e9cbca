"""The exported notebook runs end to end on a real Jupyter kernel: INSTALL, CHECK distribute, RUN, and the
service cell, whose loops outlive the kernel until stopped."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from jupyter_client.kernelspec import find_kernel_specs
from nbclient import NotebookClient

from agilab_panel import AGI, AgiEnv
from agilab_panel.notebook import export_notebook
from agilab_panel.settings import AppSettings

pytestmark = pytest.mark.integration
RECIPE = ("agilab-install", "agilab-distrib", "agilab-run")


def _kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``python3``; when no such kernelspec is installed, one pointing at this interpreter."""
    if "python3" not in find_kernel_specs():
        spec = tmp_path / "jupyter" / "kernels" / "python3"
        spec.mkdir(parents=True)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Python 3", "language": "python"}))
        monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return "python3"


def _stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def test_exported_notebook_executes_on_a_kernel(installed, use_home, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    use_home(installed("minimal_app"))
    env = AgiEnv("minimal_app", verbose=0)
    settings = AppSettings(env)  # changed in memory only: the shared home's file stays as seeded
    settings.cluster.param.update(verbose=0, workers={"127.0.0.1": 2})
    settings.args.param.update(partitions=2, size=300)

    nb = nbformat.read(export_notebook(env, settings), as_version=4)
    nbformat.validate(nb)
    nb.cells = [c for c in nb.cells if c.cell_type == "markdown" or c.metadata.get("tags", [""])[0] in RECIPE]
    client = NotebookClient(nb, kernel_name=_kernel(tmp_path, monkeypatch), timeout=300,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on the first failing cell

    out = {c.metadata.tags[0]: _stdout(c) for c in client.nb.cells if c.cell_type == "code"}
    assert list(out) == list(RECIPE)
    assert "127.0.0.1: ok" in out["agilab-install"]
    assert out["agilab-distrib"].count("partitions, load") == 2
    assert "0: python: 2 rows" in out["agilab-run"]
    frame = pd.read_parquet(AGI.last_output(env))
    assert frame["sum_squares"].map(int).tolist() == [sum(i * i for i in range(s, s + 300)) for s in (0, 300)]


async def test_the_service_cell_starts_a_service_that_outlives_the_kernel(installed, use_home, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from agilab_panel.service.queue import ServicePaths
    from agilab_panel.service.state import read_state

    use_home(installed("minimal_app"))
    env = AgiEnv("minimal_app", verbose=0)
    settings = AppSettings(env)
    settings.cluster.param.update(verbose=0, workers={"127.0.0.1": 2}, cluster_enabled=True)
    nb = nbformat.read(export_notebook(env, settings), as_version=4)
    nb.cells = [c for c in nb.cells if c.cell_type == "code" and c.metadata.tags == ["agilab-serve"]]
    assert len(nb.cells) == 1
    paths = ServicePaths.of(env.share, env.app)
    assert read_state(paths) is None
    try:
        client = NotebookClient(nb, kernel_name=_kernel(tmp_path, monkeypatch), timeout=300,
                                resources={"metadata": {"path": str(tmp_path)}})
        client.execute()
        assert _stdout(client.nb.cells[0]).startswith("started the service of app minimal_app: 2 loops")
        assert (await AGI.serve(env, "status"))["status"] == "running"  # the kernel has ended; the loops run on
    finally:
        stopped = await AGI.serve(env, "stop")
    assert stopped["status"] == "stopped" and stopped["not_stopped"] == {} and read_state(paths) is None
