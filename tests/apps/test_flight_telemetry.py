"""The flight_telemetry app driven in-process: generation, plan, numpy/Cython/cuDF paths, summary, form."""
from __future__ import annotations

import importlib.util
import json
import socket
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agilab_panel.apps import builtin_apps_path, load_app
from agilab_panel.runtime import CapabilityError
from agilab_panel.settings import args_to_dict, make_args

SPEC = load_app(builtin_apps_path() / "flight_telemetry")
Args = SPEC.args_class()
Manager = SPEC.manager_class()
Worker = SPEC.worker_class()
SMALL = {"n_aircraft": 3, "rows_per_file": 2000}
# 2000 samples stop mid-climb: this longer file covers every phase, gaps and a second airport
LONG = {"n_aircraft": 1, "rows_per_file": 20_000, "seed": 5}


def setup(tmp_path: Path, **values):
    args = make_args(Args, {**SMALL, **values}, "flight_telemetry")
    return args, Manager(args, tmp_path / "data_in", tmp_path / "data_out")


def run(args, manager, mode: int = 0) -> pd.DataFrame:
    worker = Worker(args_to_dict(args), worker_id="127.0.0.1-0", mode=mode, data_in=manager.data_in, data_out=manager.data_out)
    worker.summary_name = SPEC.summary  # what the runtime sets from [tool.agilab] summary
    worker.work_init()
    manager.prepare()
    return worker.work_done([(p.label, worker.work_pool(p.payload)) for p in manager.partitions()])


def mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_app_declares_its_kernel_rapids_and_seed_matches_the_args():
    assert SPEC.cython == ("src/flight_telemetry/flight_kernel.pyx",)
    assert (SPEC.path / SPEC.cython[0]).is_file()
    assert SPEC.rapids and SPEC.pool_backend == "process" and SPEC.tool["summary"] == "summary.json"
    seed = tomllib.loads(SPEC.settings_seed.read_text(encoding="utf-8"))
    assert args_to_dict(make_args(Args, seed["args"], "flight_telemetry")) == args_to_dict(Args())
    with pytest.raises(ValueError, match="file_format"):
        make_args(Args, {"file_format": "xlsx"}, "flight_telemetry")


def test_prepare_generates_once_and_is_idempotent(tmp_path):
    args, manager = setup(tmp_path)
    manager.prepare()
    names = sorted(p.name for p in manager.data_in.iterdir())
    assert names == ["aircraft-000.parquet", "aircraft-001.parquet", "aircraft-002.parquet", "manifest.json"]
    before = mtimes(manager.data_in)
    manager.prepare()
    Manager(args, manager.data_in, manager.data_out).prepare()  # a new engine process sees the same manifest
    assert mtimes(manager.data_in) == before
    frame = pd.read_parquet(manager.data_in / "aircraft-000.parquet")
    assert len(frame) == 2000
    assert list(frame.columns) == ["timestamp", "lat", "lon", "altitude_ft", "speed_kt", "heading", "phase"]
    assert set(frame["phase"]) <= {"taxi", "climb", "cruise", "descent"}
    assert frame["timestamp"].is_monotonic_increasing


def test_prepare_regenerates_when_args_differ_or_a_file_is_lost(tmp_path):
    args, manager = setup(tmp_path)
    manager.prepare()
    first = pd.read_parquet(manager.data_in / "aircraft-001.parquet")
    args.seed = 43
    manager.prepare()
    assert not pd.read_parquet(manager.data_in / "aircraft-001.parquet").equals(first)
    assert json.loads((manager.data_in / "manifest.json").read_text())["args"]["seed"] == 43
    args.seed, args.file_format = 42, "csv"
    manager.prepare()
    assert sorted(p.suffix for p in manager.data_in.glob("aircraft-*")) == [".csv"] * 3  # no stale parquet left
    (manager.data_in / "aircraft-002.csv").unlink()
    manager.prepare()
    assert (manager.data_in / "aircraft-002.csv").is_file()
    assert not list(manager.data_in.glob(".*.tmp"))


def test_generation_is_deterministic_across_folders(tmp_path):
    _, one = setup(tmp_path / "one")
    _, two = setup(tmp_path / "two")
    one.prepare()
    two.prepare()
    for name in ("aircraft-000.parquet", "aircraft-002.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(one.data_in / name), pd.read_parquet(two.data_in / name))


def test_partitions_cover_every_file_weighted_by_size(tmp_path):
    _, manager = setup(tmp_path)
    parts = manager.partitions()
    assert [p.label for p in parts] == ["aircraft-000", "aircraft-001", "aircraft-002"]
    assert {p.payload["file"] for p in parts} == {p.name for p in manager.data_in.glob("aircraft-*")}
    assert [p.payload["aircraft"] for p in parts] == [0, 1, 2]
    for p in parts:
        assert p.weight == (manager.data_in / p.payload["file"]).stat().st_size > 0
    json.dumps([p.to_dict() for p in parts])  # payloads cross process boundaries as JSON


def test_worker_output_is_deterministic_and_summary_matches_preview(tmp_path):
    args, manager = setup(tmp_path)
    first = run(args, manager)
    second = run(args, manager)
    pd.testing.assert_frame_equal(first, second)
    assert first["aircraft"].tolist() == [0, 1, 2] and (first["rows"] == 2000).all()
    assert (first["distance_nm"] > 0).all() and (first["max_altitude_ft"] > 1000).all()
    summary = json.loads((manager.data_out / "summary.json").read_text())
    assert summary["rows"] == 6000 and summary["aircraft"] == 3
    assert summary["total_distance_nm"] == pytest.approx(first["distance_nm"].sum(), rel=1e-12)
    form = load_form()
    assert form.preview_metrics(args).items() <= summary.items()  # the preview is what RUN writes back
    assert not list(manager.data_out.glob(".*.tmp"))


def test_full_flight_metrics_are_consistent(tmp_path):
    args, manager = setup(tmp_path, **LONG)
    row = run(args, manager).iloc[0]
    phase_time = sum(row[f"time_{p}_s"] for p in ("taxi", "climb", "cruise", "descent"))
    assert phase_time == pytest.approx(row["duration_h"] * 3600)
    phase_nm = sum(row[f"distance_{p}_nm"] for p in ("taxi", "climb", "cruise", "descent"))
    assert phase_nm == pytest.approx(row["distance_nm"], rel=1e-9)
    assert row["climbs"] >= 1 and row["airports_visited"] >= 2 and "-" in row["route"]
    assert row["max_speed_kt"] < 600 and row["max_altitude_ft"] <= 41_500


def test_csv_and_parquet_give_the_same_output(tmp_path):
    a_args, a = setup(tmp_path / "parquet", **LONG)
    b_args, b = setup(tmp_path / "csv", **LONG, file_format="csv")
    pd.testing.assert_frame_equal(run(a_args, a), run(b_args, b), check_exact=True)


def test_cython_kernel_matches_the_numpy_reference(tmp_path, compiled_kernels):
    from agilab_kernels.flight_telemetry import flight_kernel
    from flight_telemetry import airports, worker as ref

    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-70, 70, 5000), rng.uniform(-180, 180, 5000)
    lat[100:200], lon[100:200] = airports.LAT[5] + 0.01, airports.LON[5]  # a run close to one airport
    np.testing.assert_allclose(flight_kernel.segments_nm(lat, lon), ref.segments_numpy(lat, lon), rtol=1e-9)
    idx_c, nm_c = flight_kernel.nearest_airport(lat, lon, airports.LAT, airports.LON)
    idx_n, nm_n = ref.nearest_airport_numpy(lat, lon, airports.LAT, airports.LON)
    np.testing.assert_array_equal(idx_c, idx_n)
    np.testing.assert_allclose(nm_c, nm_n, rtol=1e-9)
    rate = np.repeat([0.0, 900.0, 0.0, 700.0, 600.0, 0.0, 800.0], [5, 70, 3, 30, 40, 2, 59])
    for r in (rate, rate[:-2], np.zeros(0), np.full(100, 1000.0)):
        assert flight_kernel.count_climbs(r, 500.0, 60) == ref.count_climbs_numpy(r, 500.0, 60)

    args, manager = setup(tmp_path, **LONG)
    pd.testing.assert_frame_equal(run(args, manager, mode=2), run(args, manager, mode=0), rtol=1e-9)


def test_cython_kernel_takes_the_read_only_arrays_pandas_3_returns(compiled_kernels):
    from agilab_kernels.flight_telemetry import flight_kernel

    frame = pd.DataFrame({"lat": [48.0, 48.1, 48.2], "lon": [2.0, 2.1, 2.3], "rate": [0.0, 900.0, 900.0]})
    lat, lon, rate = (frame[c].to_numpy() for c in ("lat", "lon", "rate"))
    if int(pd.__version__.split(".")[0]) >= 3:
        assert not lat.flags.writeable  # copy-on-write: the column's own buffer, read-only
    assert flight_kernel.segments_nm(lat, lon)[1] > 0  # const double[::1] accepts it without a copy
    assert flight_kernel.count_climbs(rate, 500.0, 2) == 1
    assert flight_kernel.nearest_airport(lat, lon, lat, lon)[0].tolist() == [0, 1, 2]


def test_cython_mode_without_a_build_names_the_host(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "agilab_kernels.flight_telemetry.flight_kernel", None)
    args, manager = setup(tmp_path)
    worker = Worker(args_to_dict(args), worker_id="w", mode=2, data_in=manager.data_in, data_out=manager.data_out)
    with pytest.raises(CapabilityError, match=socket.gethostname()):
        worker.work_init()


def test_rapids_without_cudf_names_the_host(tmp_path, no_cudf):
    args, manager = setup(tmp_path)
    worker = Worker(args_to_dict(args), worker_id="w", mode=8, data_in=manager.data_in, data_out=manager.data_out)
    with pytest.raises(CapabilityError, match=f"host {socket.gethostname()}"):
        worker.work_init()
    manager.prepare()
    with pytest.raises(CapabilityError, match="rapids"):
        worker.work_pool(manager.partitions()[0].payload)


@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_rapids_path_with_mock_cudf_module_no_gpu_here(tmp_path, fake_cudf, file_format):
    args, manager = setup(tmp_path, **LONG, file_format=file_format)
    reference = run(args, manager, mode=0)
    rapids = run(args, manager, mode=8)
    assert getattr(fake_cudf, f"read_{file_format}") == 1  # the file went through the cudf reader
    pd.testing.assert_frame_equal(rapids, reference, rtol=1e-9)


def _real_cudf() -> str | None:
    """Why the real cuDF path cannot run here, or None when it can."""
    try:
        import cudf  # noqa: F401  (needs an NVIDIA GPU and its driver)
    except Exception as exc:  # cuDF raises more than ImportError without a GPU
        return f"the real cuDF path needs RAPIDS cuDF and an NVIDIA GPU; this host has none ({type(exc).__name__})"
    return None


@pytest.mark.skipif(_real_cudf() is not None, reason=str(_real_cudf()))
@pytest.mark.parametrize("file_format", ["parquet", "csv"])
def test_rapids_path_on_a_real_gpu_gives_the_numpy_result(tmp_path, file_format):
    import cudf

    args, manager = setup(tmp_path, **LONG, file_format=file_format)
    reference = run(args, manager, mode=0)
    rapids = run(args, manager, mode=8)
    assert isinstance(cudf.DataFrame(), cudf.DataFrame)  # the real module, not the pandas stand-in
    pd.testing.assert_frame_equal(rapids, reference, rtol=1e-9)


def load_form():
    path = SPEC.args_form
    assert path is not None and path.name == "app_args_form.py"
    spec = importlib.util.spec_from_file_location("flight_telemetry_args_form", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_form_binds_widgets_to_args_and_previews_rows():
    import panel as pn

    form = load_form()
    args = Args(n_aircraft=3, rows_per_file=2000)
    assert form.preview_metrics(args) == {"rows": 6000, "aircraft": 3}
    view = form.build_form(args)
    assert isinstance(view, pn.viewable.Viewable)
    widgets = {w.label: w for w in view.select(pn.widgets.Widget)}
    widgets["Aircraft (files)"].value = 5
    assert args.n_aircraft == 5  # widget -> args
    args.rows_per_file = 10_000
    assert widgets["Rows per file"].value == 10_000  # args -> widget
    assert form.preview_metrics(args)["rows"] == 50_000
    numbers = view.select(pn.indicators.Number)
    assert numbers and numbers[0].value == 50_000
    with pytest.raises(ValueError):
        widgets["Aircraft (files)"].value = 0  # bounds come from the param declaration
