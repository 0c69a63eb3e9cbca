"""The execution-mode bitmask (SPEC §2): codec, labels, benchmark lists and snippet expressions."""
from __future__ import annotations

import pytest

from agilab_panel import modes
from agilab_panel.modes import (
    ALL_MODES,
    CYTHON_MODE,
    DASK_MODE,
    POOL_MODE,
    PYTHON_MODE,
    RAPIDS_MODE,
    benchmark_modes,
    mode_expression,
    mode_from_toggles,
    mode_label,
    mode_to_str,
    parse_mode,
    str_to_mode,
)


def test_bit_values_match_the_spec():
    assert (POOL_MODE, CYTHON_MODE, DASK_MODE, RAPIDS_MODE) == (1, 2, 4, 8)
    assert PYTHON_MODE == POOL_MODE
    assert ALL_MODES == 15


@pytest.mark.parametrize(
    ("toggles", "expected"),
    [
        ({}, 0),
        ({"pool": True}, 1),
        ({"cython": True}, 2),
        ({"cluster": True}, 4),
        ({"rapids": True}, 8),
        ({"pool": True, "cluster": True, "rapids": True}, 13),
        ({"pool": True, "cython": True, "cluster": True, "rapids": True}, 15),
    ],
)
def test_mode_from_toggles(toggles, expected):
    assert mode_from_toggles(**toggles) == expected


@pytest.mark.parametrize(("mode", "text"), [(0, "____"), (1, "___p"), (5, "_d_p"), (8, "r___"), (13, "rd_p"), (15, "rdcp")])
def test_mode_to_str(mode, text):
    assert mode_to_str(mode) == text


@pytest.mark.parametrize(("text", "mode"), [("pcd", 7), ("rdcp", 15), ("____", 0), ("_d_p", 5), ("dp", 5), ("RD", 12), (" p ", 1)])
def test_str_to_mode(text, mode):
    assert str_to_mode(text) == mode


def test_round_trip_for_every_mode():
    for mode in range(16):
        text = mode_to_str(mode)
        assert len(text) == 4
        assert str_to_mode(text) == mode
        assert parse_mode(text) == mode
        assert parse_mode(mode) == mode
        assert parse_mode(str(mode)) == mode


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("xyz", "unknown letter 'x'"),
        ("pp", "repeated"),
        ("rdcp_", "longer than 4"),
        ("", "letters from 'rdcp'"),
        ("   ", "letters from 'rdcp'"),
        ("d-p", "unknown letter '-'"),
    ],
)
def test_bad_mode_strings_are_refused_clearly(bad, message):
    with pytest.raises(ValueError, match=message):
        str_to_mode(bad)
    with pytest.raises(ValueError):
        parse_mode(bad)


@pytest.mark.parametrize("bad", [-1, 16, 99, "16", True, False, 1.0, None, [1], "\u0661", "\u00b2"])  # "١", "²"
def test_bad_mode_values_are_refused(bad):
    with pytest.raises(ValueError, match="mode"):
        parse_mode(bad)


@pytest.mark.parametrize("bad", [-1, 16, True])
def test_mode_to_str_refuses_out_of_range(bad):
    with pytest.raises(ValueError, match="mode"):
        mode_to_str(bad)


def test_str_to_mode_refuses_non_strings():
    with pytest.raises(ValueError, match="mode string"):
        str_to_mode(5)


@pytest.mark.parametrize(
    ("mode", "label"),
    [
        (0, "0: python"),
        (1, "1: pool"),
        (2, "2: cython"),
        (4, "4: dask"),
        (8, "8: rapids"),
        (13, "13: rapids and dask and pool"),
        (15, "15: rapids and dask and cython and pool"),
    ],
)
def test_mode_label(mode, label):
    assert mode_label(mode) == label


def test_benchmark_modes_from_toggles():
    assert benchmark_modes(mode_from_toggles(pool=True, cython=True)) == [0, 1, 2, 3]
    assert benchmark_modes(mode_from_toggles(pool=True, rapids=True, cluster=True)) == [0, 1, 4, 5, 8, 9, 12, 13]
    assert benchmark_modes(0) == [0]
    assert benchmark_modes(15) == list(range(16))


def test_benchmark_modes_from_a_list_of_masks_combines_bits():
    assert benchmark_modes([POOL_MODE, CYTHON_MODE]) == [0, 1, 2, 3]
    # Overlapping masks must be OR-ed, not added: 3 and 1 still mean pool + cython.
    assert benchmark_modes([3, 1]) == [0, 1, 2, 3]
    assert benchmark_modes([]) == [0]


@pytest.mark.parametrize("bad", [16, -1, True, [1, 16]])
def test_benchmark_modes_refuses_bad_masks(bad):
    with pytest.raises(ValueError):
        benchmark_modes(bad)


def test_mode_expression_uses_public_constants():
    assert mode_expression(0) == "0"
    assert mode_expression(1) == "AGI.POOL_MODE"
    assert mode_expression(POOL_MODE | DASK_MODE) == "AGI.POOL_MODE | AGI.DASK_MODE"
    assert mode_expression(15) == "AGI.POOL_MODE | AGI.CYTHON_MODE | AGI.DASK_MODE | AGI.RAPIDS_MODE"


def test_mode_expression_evaluates_back_to_the_mode():
    class AGI:  # the constants a generated snippet refers to
        POOL_MODE = modes.POOL_MODE
        CYTHON_MODE = modes.CYTHON_MODE
        DASK_MODE = modes.DASK_MODE
        RAPIDS_MODE = modes.RAPIDS_MODE

    for mode in range(16):
        expression = mode_expression(mode)
        if mode:
            assert not any(ch.isdigit() for ch in expression), expression
        assert eval(expression, {"AGI": AGI}) == mode  # noqa: S307 - our own generated text
