"""Command-line runs, in one run: what a user typing ``agilab-panel run`` waits for.

1. Cold CLI run of a tiny app (a fresh engine and a fresh worker process each time) with bytecode as
   INSTALL and ``./dev setup`` compile it, against the same run with no bytecode of the environments
   (the stdlib's only), both with PYTHONDONTWRITEBYTECODE=1 so nothing is written while timing;
   goal: with bytecode at least 1.5x faster.
2. Successive CLI runs with ``--keep-cluster``: the warm local runner outlives the command, so from
   the second call a tiny run pays only the engine's own start; goal: < 0.3 s of run time, and the
   whole command under 1 s. ``agilab-panel cluster stop`` then ends the runner.

Each figure is printed with the load average of the (shared) machine.

    python benchmarks/cli.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import claim, load, print_claims, use_temp_home  # noqa: E402

APP = "minimal_app"
CLI = [sys.executable, "-m", "agilab_panel.cli"]


def cli(*args: str, env: dict[str, str], check: bool = True) -> tuple[float, dict]:
    """Wall time of one command, and its --json result."""
    start = time.perf_counter()
    out = subprocess.run([*CLI, *args, "--app", APP, "--json", "-v", "0"], env=env, capture_output=True, text=True,
                         timeout=600)
    seconds = time.perf_counter() - start
    if check and out.returncode != 0:
        raise SystemExit(f"agilab-panel {' '.join(args)} failed: {out.stderr.strip()}")
    return seconds, json.loads(out.stdout) if out.stdout.strip() else {}


def stdlib_only_prefix() -> Path:
    """A bytecode cache (PYTHONPYCACHEPREFIX) holding the standard library's bytecode and nothing else:
    Python looks for every module's bytecode there, so the environments' run as if never compiled."""
    prefix = Path(tempfile.mkdtemp(prefix="agilab-pycache-"))
    stdlib = sysconfig.get_path("stdlib")
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(prefix)}
    subprocess.run([sys.executable, "-m", "compileall", "-qq", "-j", "0", "-x", r"site-packages|[/\\]test[/\\]",
                    stdlib], env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return prefix


def timed_runs(env: dict[str, str], repeat: int, *extra: str) -> list[float]:
    return [cli("run", "--mode", "0", *extra, env=env)[0] for _ in range(repeat)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    ns = parser.parse_args()
    use_temp_home()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    seconds, _ = cli("install", "--modes-enabled", "0", env=env)
    print(f"install of {APP} (with bytecode): {seconds:.1f} s  [{load()}]")

    cli("run", "--mode", "0", env=env)  # untimed: the first run writes the app's settings and data folders
    with_bc = timed_runs(env, ns.repeat)
    print(f"cold CLI run, bytecode compiled: min {min(with_bc):.2f} s, median {statistics.median(with_bc):.2f} s  "
          f"[{load()}]")
    bare = {**env, "PYTHONPYCACHEPREFIX": str(stdlib_only_prefix())}
    without = timed_runs(bare, ns.repeat)
    print(f"cold CLI run, no bytecode but the stdlib's: min {min(without):.2f} s, "
          f"median {statistics.median(without):.2f} s  [{load()}]")
    ratio = statistics.median(without) / statistics.median(with_bc)
    claim("cold CLI tiny run, mode 0, bytecode compiled at install vs none (PYTHONDONTWRITEBYTECODE=1)",
          f"{statistics.median(with_bc):.2f} s vs {statistics.median(without):.2f} s, x{ratio:.2f} ({load()})",
          ">= x1.5", ratio >= 1.5)

    # 2. --keep-cluster: the runner outlives each command
    cli("run", "--mode", "0", "--keep-cluster", env=env)  # untimed: starts the kept runner
    kept = [cli("run", "--mode", "0", "--keep-cluster", env=env) for _ in range(ns.repeat)]
    run_s = [result["seconds"] for _, result in kept]
    wall = [seconds for seconds, _ in kept]
    stopped = cli("cluster", "stop", env=env)[1].get("stopped", [])
    print(f"CLI run with --keep-cluster, 2nd call on: run min {min(run_s):.3f} s, median {statistics.median(run_s):.3f} s; "
          f"whole command min {min(wall):.2f} s, median {statistics.median(wall):.2f} s (engine start and imports "
          f"included); cluster stop ended {len(stopped)} process(es)  [{load()}]")
    claim("tiny CLI run from the second call with --keep-cluster (run time; whole command)",
          f"{statistics.median(run_s):.3f} s; {statistics.median(wall):.2f} s vs {statistics.median(with_bc):.2f} s "
          f"without a kept runner ({load()})", "< 0.3 s", statistics.median(run_s) < 0.3)
    print_claims()


if __name__ == "__main__":
    main()
