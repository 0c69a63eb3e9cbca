"""Every built-in app runs in every mode through the engine and gives the same output."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from agilab_panel import AGI, AgiEnv, EventBus, RunRequest
from agilab_panel.execute.result import RunError

pytestmark = pytest.mark.integration
SMALL = {
    "flight_telemetry": {"n_aircraft": 3, "rows_per_file": 2000},
    "mandelbrot": {"width": 60, "height": 24, "max_iter": 60, "partitions": 6},
}


def _assert_same(frame: pd.DataFrame, reference: pd.DataFrame, mode: int) -> None:
    assert list(frame.columns) == list(reference.columns), mode
    for column in reference.columns:
        if pd.api.types.is_float_dtype(reference[column]):
            np.testing.assert_allclose(frame[column], reference[column], rtol=1e-9, err_msg=f"mode {mode} {column}")
        else:
            assert frame[column].tolist() == reference[column].tolist(), (mode, column)


@pytest.mark.parametrize("app", sorted(SMALL))
async def test_same_output_in_every_mode(installed, use_home, app):
    use_home(installed(app))
    env = AgiEnv(app, verbose=0)
    frames = {}
    try:
        for mode in range(8):
            request = RunRequest(params=SMALL[app], workers={"127.0.0.1": 2}, mode=mode, verbose=0)
            result = await AGI.run(env, request, events=EventBus())
            assert result.ok, result.to_dict()
            frames[mode] = pd.read_parquet(result.output)
        with pytest.raises(RunError, match="cuDF"):
            await AGI.run(env, RunRequest(params=SMALL[app], workers={"127.0.0.1": 2}, mode=AGI.RAPIDS_MODE),
                          events=EventBus())
    finally:
        await AGI.shutdown()
    reference = frames.pop(0)
    assert len(reference) > 0
    for mode, frame in frames.items():
        _assert_same(frame, reference, mode)


async def test_flight_telemetry_writes_the_metric_its_form_previews(installed, use_home):
    use_home(installed("flight_telemetry"))
    env = AgiEnv("flight_telemetry", verbose=0)
    request = RunRequest(params=SMALL["flight_telemetry"], workers={"127.0.0.1": 2}, mode=AGI.DASK_MODE)
    try:
        result = await AGI.run(env, request, events=EventBus())
    finally:
        await AGI.shutdown()
    summary = json.loads((env.resolve_data_path(None, "flight_telemetry/data_out") / "summary.json").read_text())
    assert summary["rows"] == 3 * 2000 and summary["aircraft"] == result.rows == 3
