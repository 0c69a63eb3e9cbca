"""Shared set-up for the benchmark scripts: a throwaway AGILAB home unless one is given."""
from __future__ import annotations

import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


def use_temp_home() -> Path:
    """Point every per-user path at a temporary folder (kept for inspection) unless AGILAB_HOME is set."""
    if os.environ.get("AGILAB_HOME"):
        return Path(os.environ["AGILAB_HOME"])
    root = Path(tempfile.mkdtemp(prefix="agilab-bench-"))
    os.environ.update(
        AGILAB_HOME=str(root / "home"),
        AGI_CLUSTER_SHARE=str(root / "share"),
        AGILAB_EXPORT_ABS=str(root / "export"),
        AGILAB_LOG_ABS=str(root / "log"),
    )
    return root / "home"


@contextmanager
def timed(store: dict, key: str):
    start = time.perf_counter()
    yield
    store[key] = time.perf_counter() - start


def load() -> str:
    """The load average, printed beside every figure: the machine may be shared, and a figure measured
    under load says so."""
    return "load %.2f %.2f %.2f" % os.getloadavg()


CLAIMS: list[str] = []


def claim(text: str, measured: str, goal: str, met: bool) -> str:
    """Record one claim line, ``claim: <what>: <measured> vs goal <goal>: met | NOT met``.

    ``benchmarks/table.py`` builds the README's performance table from these lines alone, so the table
    says what a script printed and nothing else. ``text`` names the claim and holds no ": ".
    """
    if ": " in text:
        raise ValueError(f"claim name {text!r} must not hold ': '")
    line = f"claim: {text}: {measured} vs goal {goal}: {'met' if met else 'NOT met'}"
    CLAIMS.append(line)
    return line


def print_claims() -> None:
    """The closing lines of a script: one per claim."""
    print("\n".join(CLAIMS))
