"""benchmarks/table.py: the README's performance table says what the scripts printed, and nothing else."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


README = """# demo

| claim | script | measured | goal | verdict |
|---|---|---|---|---|
| old a | `benchmarks/modes.py` | 1 s | < 2 s | met |
| kept | `benchmarks/dashboard.py` | 3 ms | < 5 ms | met |
| old b | `benchmarks/modes.py` | 2 s | < 1 s | **NOT met** |

after the table
"""


def test_a_scripts_rows_are_replaced_by_its_claim_lines_in_place_and_other_rows_kept():
    table = _module("table")
    printed = "noise\nclaim: pool vs mode 0: 6.00 s → 3.00 s, x2.00 vs goal >= 1.8x: met\n" \
              "claim: run overhead, Dask: 5 ms vs goal < 2 ms: NOT met\n"
    out = table.rebuild(README, {"benchmarks/modes.py": printed})
    assert out.splitlines()[4:8] == [
        "| pool vs mode 0 | `benchmarks/modes.py` | 6.00 s → 3.00 s, x2.00 | >= 1.8x | met |",
        "| run overhead, Dask | `benchmarks/modes.py` | 5 ms | < 2 ms | **NOT met** |",
        "| kept | `benchmarks/dashboard.py` | 3 ms | < 5 ms | met |",
        "",
    ]
    assert out.endswith("after the table\n") and "old a" not in out and "old b" not in out


def test_an_output_without_claim_lines_is_refused():
    with pytest.raises(SystemExit, match="no claim lines"):
        _module("table").rebuild(README, {"benchmarks/scale.py": "a traceback\n"})


def test_claim_lines_round_trip_through_the_table():
    common, table = _module("_common"), _module("table")
    line = common.claim("plan for 10,000 hosts", "1.20 s", "< 2 s", True)
    assert line == "claim: plan for 10,000 hosts: 1.20 s vs goal < 2 s: met"
    assert table.claim_rows(line, "benchmarks/scale.py") == [
        "| plan for 10,000 hosts | `benchmarks/scale.py` | 1.20 s | < 2 s | met |"]
    with pytest.raises(ValueError, match="must not hold"):
        common.claim("a: b", "1 s", "< 2 s", True)
