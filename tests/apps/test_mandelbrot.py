"""The mandelbrot app driven in-process: plan, pure-Python reference, Cython kernel, rapids checks."""
from __future__ import annotations

import socket
import sys
import tomllib

import numpy as np
import pandas as pd
import pytest

from agilab_panel.apps import builtin_apps_path, load_app
from agilab_panel.runtime import CapabilityError
from agilab_panel.settings import args_to_dict, make_args

SPEC = load_app(builtin_apps_path() / "mandelbrot")
Args = SPEC.args_class()
Manager = SPEC.manager_class()
Worker = SPEC.worker_class()
SMALL = {"width": 48, "height": 32, "max_iter": 120, "partitions": 4}


def make(tmp_path, mode: int = 0, **values):
    args = make_args(Args, {**SMALL, **values}, "mandelbrot")
    worker = Worker(args_to_dict(args), worker_id="127.0.0.1-0", mode=mode, data_in=tmp_path, data_out=tmp_path)
    return Manager(args, tmp_path, tmp_path), worker


def run(manager, worker) -> pd.DataFrame:
    worker.work_init()
    parts = manager.partitions()
    return worker.work_done([(p.label, worker.work_pool(p.payload)) for p in parts])


def test_app_declares_its_kernel_and_seed_matches_the_args():
    assert SPEC.cython == ("src/mandelbrot/mandelbrot_kernel.pyx",)
    assert (SPEC.path / SPEC.cython[0]).is_file()
    assert SPEC.pool_backend == "process" and SPEC.rapids
    seed = tomllib.loads(SPEC.settings_seed.read_text(encoding="utf-8"))
    assert seed["__meta__"]["version"] == 1
    assert args_to_dict(make_args(Args, seed["args"], "mandelbrot")) == args_to_dict(Args())


def test_bands_cover_every_row_once_and_weights_follow_the_work(tmp_path):
    manager, _ = make(tmp_path, height=40, partitions=7)
    parts = manager.partitions()
    rows = [r for p in parts for r in range(p.payload["row_start"], p.payload["row_stop"])]
    assert rows == list(range(40))
    assert len({p.label for p in parts}) == 7
    assert all(p.weight > 0 for p in parts)
    # the middle bands cross the set (points that never escape): they must weigh more than the edges
    weights = [p.weight for p in parts]
    assert max(weights[2:5]) > 3 * max(weights[0], weights[-1])
    assert [p.weight for p in manager.partitions()] == weights  # deterministic


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"partitions": 50}, "must not exceed height"),
        ({"x_min": 1.0, "x_max": -1.0}, "x_min"),
        ({"y_min": 0.5, "y_max": 0.5}, "y_min"),
    ],
)
def test_bad_geometry_is_refused_by_name(tmp_path, values, message):
    manager, _ = make(tmp_path, **values)
    with pytest.raises(ValueError, match=message):
        manager.partitions()


def test_pure_path_is_deterministic_and_correct(tmp_path):
    manager, worker = make(tmp_path, width=41, height=21, x_min=-2.0, x_max=2.0, y_min=-1.0, y_max=1.0)
    first, second = run(manager, worker), run(manager, worker)
    pd.testing.assert_frame_equal(first, second)
    assert list(first.columns) == ["row", "iterations", "inside"]
    assert first["row"].tolist() == list(range(21))
    counts = worker.counts(10, 11)[0]  # the row through y = -1 + 10 * 2/21 ~ -0.05
    assert counts[0] == 1  # c ~ -2 - 0.05i escapes after one step
    assert counts[20] == 120  # c ~ 0 never escapes
    assert first.loc[10, "inside"] == int((counts == 120).sum())


def test_cython_kernel_gives_identical_counts(tmp_path, compiled_kernels):
    for region in (
        {},  # the whole set at small size
        {"x_min": -0.75, "x_max": -0.74, "y_min": 0.1, "y_max": 0.11, "max_iter": 400},  # boundary detail
    ):
        _, pure = make(tmp_path, mode=0, **region)
        _, typed = make(tmp_path, mode=2, **region)
        typed.work_init()
        for start, stop in ((0, 32), (5, 6), (31, 32)):
            a, b = pure.counts(start, stop), typed.counts(start, stop)
            assert a.dtype == b.dtype == np.int32
            np.testing.assert_array_equal(a, b)
    manager, _ = make(tmp_path)
    pd.testing.assert_frame_equal(run(manager, make(tmp_path, mode=0)[1]), run(manager, make(tmp_path, mode=3)[1]))


def test_cython_mode_without_a_build_names_the_host(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "agilab_kernels.mandelbrot.mandelbrot_kernel", None)
    _, worker = make(tmp_path, mode=2)
    with pytest.raises(CapabilityError, match=socket.gethostname()):
        worker.work_init()


def test_rapids_without_cudf_names_the_host(tmp_path, no_cudf):
    _, worker = make(tmp_path, mode=8)
    with pytest.raises(CapabilityError, match=f"host {socket.gethostname()}"):
        worker.work_init()


def test_rapids_path_with_mock_cudf_module_no_gpu_here(tmp_path, fake_cudf, compiled_kernels):
    manager, _ = make(tmp_path)
    reference = run(manager, make(tmp_path, mode=0)[1])
    pd.testing.assert_frame_equal(run(manager, make(tmp_path, mode=8)[1]), reference)
    pd.testing.assert_frame_equal(run(manager, make(tmp_path, mode=10)[1]), reference)
