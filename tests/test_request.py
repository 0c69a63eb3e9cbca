"""RunRequest: validated once when built, immutable afterwards."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agilab_panel.request import RunRequest


def test_defaults():
    request = RunRequest()
    assert request.mode == 0
    assert not request.is_benchmark
    assert dict(request.params) == {}
    assert request.workers is None
    assert request.scheduler is None
    assert request.verbose == 1


def test_is_frozen():
    request = RunRequest(mode=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.mode = 2
    with pytest.raises(TypeError):
        request.params["size"] = 3
    with pytest.raises(TypeError):
        RunRequest(workers={"127.0.0.1": 1}).workers["127.0.0.1"] = 5


def test_params_are_copied_not_shared():
    params = {"size": 10}
    request = RunRequest(params=params)
    params["size"] = 99
    assert request.params["size"] == 10


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (0, 0),
        (13, 13),
        ("5", 5),
        ("dp", 5),
        ("_d_p", 5),
        ("rdcp", 15),
        ([0, 1, "dp"], (0, 1, 5)),
        ((4,), (4,)),
        (None, None),
    ],
)
def test_mode_is_normalized(mode, expected):
    assert RunRequest(mode=mode).mode == expected


def test_benchmark_requests():
    assert RunRequest(mode=None).is_benchmark
    assert RunRequest(mode=[0, 1]).is_benchmark
    assert not RunRequest(mode="dp").is_benchmark
    assert RunRequest(mode=[0, 4]).to_dict()["mode"] == [0, 4]


@pytest.mark.parametrize("mode", [1.0, {"mode": 1}, True, False, 16, -1, "xyz", "", [], [1, 1], [1, 16], [True], {1, 2}])
def test_invalid_modes_are_refused(mode):
    with pytest.raises(ValueError, match="mode"):
        RunRequest(mode=mode)


def test_workers_are_validated():
    assert dict(RunRequest(workers={"127.0.0.1": 2, "::1": 1}).workers) == {"127.0.0.1": 2, "::1": 1}
    for bad in ({"127.0.0.1": 0}, {"bad host": 1}, ["127.0.0.1"], {}):
        with pytest.raises(ValueError):
            RunRequest(workers=bad)


def test_scheduler_is_validated():
    assert RunRequest(scheduler="[::1]:8786").scheduler == "[::1]:8786"
    assert RunRequest(scheduler="  ").scheduler is None
    for bad in ("host:99999", "bad host", 8786):
        with pytest.raises(ValueError, match="scheduler|port|host"):
            RunRequest(scheduler=bad)


@pytest.mark.parametrize("key", ["1x", "a-b", "with space", "", 3])
def test_params_keys_must_be_identifiers(key):
    with pytest.raises(ValueError, match="params key"):
        RunRequest(params={key: 1})


def test_params_must_be_a_mapping():
    with pytest.raises(ValueError, match="params must be a mapping"):
        RunRequest(params=[("size", 1)])


def test_paths_become_strings():
    request = RunRequest(data_in=Path("in"), data_out=Path("out"), workers_data_path=Path("/data"))
    assert (request.data_in, request.data_out, request.workers_data_path) == ("in", "out", "/data")


@pytest.mark.parametrize(
    "kwargs",
    [{"verbose": 4}, {"verbose": -1}, {"verbose": True}, {"verbose": "1"}, {"reset_target": 1}, {"rapids_enabled": "yes"}],
)
def test_flags_are_validated(kwargs):
    with pytest.raises(ValueError):
        RunRequest(**kwargs)


def test_to_dict_is_plain_data():
    request = RunRequest(params={"size": 3}, workers={"127.0.0.1": 2}, mode="dp", scheduler="127.0.0.1:8786")
    data = request.to_dict()
    assert data == {
        "params": {"size": 3},
        "data_in": None,
        "data_out": None,
        "reset_target": False,
        "scheduler": "127.0.0.1:8786",
        "workers": {"127.0.0.1": 2},
        "mode": 5,
        "rapids_enabled": False,
        "workers_data_path": None,
        "verbose": 1,
        "repeats": 3,
    }
    assert type(data["params"]) is dict and type(data["workers"]) is dict


@pytest.mark.parametrize("repeats", [0, -1, 101, 2.5, True, "3"])
def test_benchmark_repeats_outside_1_to_100_are_refused(repeats):
    with pytest.raises(ValueError, match="repeats must be an int 1..100"):
        RunRequest(mode=[0, 1], repeats=repeats)
