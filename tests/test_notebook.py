"""Notebook export (SPEC §6.5): a valid v4 notebook holding the recipe steps that apply, written atomically."""
from __future__ import annotations

import ast

import nbformat
import pytest

from agilab_panel.env import AgiEnv
from agilab_panel.notebook import build_notebook, export_notebook
from agilab_panel.settings import AppSettings


@pytest.fixture
def settings() -> AppSettings:
    return AppSettings(AgiEnv("minimal_app"))


def test_notebook_has_an_intro_then_a_heading_and_a_cell_per_step(settings: AppSettings) -> None:
    nb = build_notebook(settings.env, settings)
    nbformat.validate(nb)
    assert nb.nbformat == 4 and nb.metadata.kernelspec.name == "python3"
    kinds = [c.cell_type for c in nb.cells]
    assert kinds == ["markdown"] + ["markdown", "code"] * 3
    assert nb.cells[0].source.startswith("# minimal_app — ORCHESTRATE recipe")
    headings = [c.source.splitlines()[0] for c in nb.cells[1::2]]
    assert headings == ["## INSTALL", "## CHECK distribute", "## RUN"]
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.metadata.tags for c in code] == [["agilab-install"], ["agilab-distrib"], ["agilab-run"]]
    for cell, verb in zip(code, ("install", "get_distrib", "run")):
        assert f"await AGI.{verb}(" in cell.source and cell.source.rstrip().endswith("result = await main()")
        compile(cell.source, "<cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_the_service_cell_comes_last_with_the_cluster_and_says_how_to_stop(settings: AppSettings) -> None:
    settings.cluster.cluster_enabled = True
    nb = build_notebook(settings.env, settings)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.metadata.tags for c in code] == [["agilab-install"], ["agilab-distrib"], ["agilab-run"], ["agilab-serve"]]
    assert "AGI.DASK_MODE" in code[2].source
    assert 'action="start"' in code[3].source and "await AGI.serve(" in code[3].source
    heading = nb.cells[-2].source
    assert heading.startswith("## Service mode") and 'AGI.serve(app_env, action="stop")' in heading
    compile(code[3].source, "<cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_benchmark_notebook_runs_the_enabled_modes(settings: AppSettings) -> None:
    settings.cluster.pool = True
    nb = build_notebook(settings.env, settings, benchmark=True)
    assert "mode=[0, AGI.POOL_MODE]" in nb.cells[-1].source and "benchmark of modes 0, 1" in nb.cells[0].source


def test_export_writes_the_default_file_and_reads_back(settings: AppSettings, tmp_path) -> None:
    env = settings.env
    path = export_notebook(env, settings)
    assert path == env.log_dir / "minimal_app_orchestrate.ipynb"
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert [p.name for p in env.log_dir.iterdir()] == [path.name]  # no temp file left
    other = export_notebook(env, settings, tmp_path / "elsewhere" / "recipe.ipynb")
    body = [c.source.splitlines()[1:] for c in nbformat.read(other, as_version=4).cells if c.cell_type == "code"]
    assert body == [c.source.splitlines()[1:] for c in nb.cells if c.cell_type == "code"]  # same but the time stamp
