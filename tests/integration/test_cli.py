"""The command line mirrors the API: JSON on stdout, live logs on stderr, non-zero exit on failure."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def _cli(dirs, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **{k: str(v) for k, v in dirs.items()}}
    return subprocess.run([sys.executable, "-m", "agilab_panel.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_apps_lists_the_builtin_apps(agilab_dirs):
    proc = _cli(agilab_dirs, "apps", "--json")
    assert proc.returncode == 0
    assert {"minimal_app", "flight_telemetry", "mandelbrot"} <= set(json.loads(proc.stdout))


def test_install_distrib_and_benchmark_from_the_shell(installed):
    dirs = installed("minimal_app")
    install = _cli(dirs, "install", "--app", "minimal_app", "--modes-enabled", "dcp", "--json")
    assert install.returncode == 0, install.stderr
    steps = json.loads(install.stdout)["hosts"]["127.0.0.1"]["steps"]
    assert steps and all(step["skipped"] for step in steps)  # nothing changed since the session's install

    distrib = _cli(dirs, "distrib", "--app", "minimal_app", "--workers", '{"127.0.0.1": 2}', "--set", "partitions=5",
                   "--json")
    assert distrib.returncode == 0, distrib.stderr
    plan = json.loads(distrib.stdout)
    assert len(plan["partitions"]) == 5 and set(plan["assignment"].values()) == {"127.0.0.1-0", "127.0.0.1-1"}

    bench = _cli(dirs, "benchmark", "--app", "minimal_app", "--modes", "0,p", "--set", "partitions=5", "--repeats", "2",
                 "--json")
    assert bench.returncode == 0, bench.stderr
    table = json.loads(bench.stdout)["table"]
    assert set(table) == {"0", "1"} and all(row["seconds"] > 0 for row in table.values())
    assert [row["repeats"] for row in table.values()] == [2, 2]
    assert "0: python" in bench.stderr and "1: pool" in bench.stderr  # logs go to stderr, the JSON alone to stdout


def test_snippet_prints_runnable_code(installed):
    dirs = installed("minimal_app")
    proc = _cli(dirs, "snippet", "run", "--app", "minimal_app")
    assert proc.returncode == 0, proc.stderr
    ast.parse(proc.stdout)
    assert "await AGI.run(" in proc.stdout and "RunRequest(" in proc.stdout


@pytest.mark.parametrize("args, text", [
    (["run", "--app", "minimal_app", "--workers", '{"127.0.0.1": 0}'], "positive"),
    (["run", "--app", "minimal_app", "--mode", "16"], "between 0 and 15"),
    (["distrib", "--app", "nope"], "unknown app"),
    (["benchmark", "--app", "minimal_app", "--repeats", "0"], "repeats must be an int 1..100"),
])
def test_bad_input_is_one_line_on_stderr_and_a_non_zero_exit(agilab_dirs, args, text):
    proc = _cli(agilab_dirs, *args)
    assert proc.returncode != 0
    assert text in proc.stderr and proc.stderr.strip().count("\n") == 0


def test_data_in_and_data_out_keep_two_argument_sets_apart(installed):
    dirs = installed("minimal_app")
    share = dirs["AGI_CLUSTER_SHARE"]
    outputs = {}
    for name, partitions in (("tiny", 2), ("full", 5)):
        proc = _cli(dirs, "run", "--app", "minimal_app", "--mode", "0", "--set", f"partitions={partitions}",
                    "--data-in", f"sets/{name}/in", "--data-out", f"sets/{name}/out", "--json")
        assert proc.returncode == 0, proc.stderr
        outputs[name] = json.loads(proc.stdout)["output"]
    assert outputs == {n: str(share / "sets" / n / "out" / "minimal_output.parquet") for n in ("tiny", "full")}
    import pandas as pd

    assert [len(pd.read_parquet(outputs[n])) for n in ("tiny", "full")] == [2, 5]  # neither overwrote the other
    plan = _cli(dirs, "distrib", "--app", "minimal_app", "--data-in", "sets/tiny/in", "--data-out", "sets/tiny/out", "--json")
    assert plan.returncode == 0 and json.loads(plan.stdout)["data_out"] == str(share / "sets" / "tiny" / "out")
    escape = _cli(dirs, "install", "--app", "minimal_app", "--data-out", "../outside")
    assert escape.returncode != 0 and "outside the cluster share" in escape.stderr and escape.stderr.count("\n") == 1


def test_a_preset_runs_its_arguments_into_its_own_folder(installed):
    import tomlkit

    dirs = installed("minimal_app")
    settings = dirs["AGILAB_HOME"] / "apps" / "minimal_app" / "app_settings.toml"
    before = settings.read_text()
    doc = tomlkit.parse(before)
    doc["args"]["presets"] = {"tiny": {"partitions": 2, "size": 50, "data_out": "tiny/out"}}
    settings.write_text(tomlkit.dumps(doc))
    try:
        proc = _cli(dirs, "run", "--app", "minimal_app", "--mode", "0", "--preset", "tiny", "--json")
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        assert result["rows"] == 2 and result["output"] == str(dirs["AGI_CLUSTER_SHARE"] / "tiny" / "out" / "minimal_output.parquet")
        over = _cli(dirs, "distrib", "--app", "minimal_app", "--preset", "tiny", "--set", "partitions=3", "--json")
        assert over.returncode == 0 and len(json.loads(over.stdout)["partitions"]) == 3  # --set wins over the preset
        unknown = _cli(dirs, "run", "--app", "minimal_app", "--preset", "huge")
        assert unknown.returncode != 0 and "no argument set 'huge'" in unknown.stderr and "tiny" in unknown.stderr
    finally:
        settings.write_text(before)
