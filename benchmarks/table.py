"""Rebuild the README's performance table from the claim lines the benchmark scripts printed.

Each file given holds one script's output (named after it: ``modes.txt`` for ``benchmarks/modes.py``);
its ``claim: <what>: <measured> vs goal <goal>: met | NOT met`` lines replace that script's rows, in
the order printed. Rows of scripts not given are kept as they are, so the table never says more than
a script printed.

    python benchmarks/modes.py | tee modes.txt && python benchmarks/table.py modes.txt [--readme README.md]
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from agilab_panel.fsutil import atomic_write_text  # noqa: E402

HEADER = "| claim | script | measured | goal | verdict |"
RULE = "|---|---|---|---|---|"
CLAIM = re.compile(r"^claim: (?P<what>.+?): (?P<measured>.+) vs goal (?P<goal>.+): (?P<verdict>met|NOT met)$")


def claim_rows(text: str, script: str) -> list[str]:
    """The table rows of one script's output, one per claim line."""
    rows = []
    for line in text.splitlines():
        match = CLAIM.match(line.strip())
        if match:
            verdict = "met" if match["verdict"] == "met" else "**NOT met**"
            rows.append(f"| {match['what']} | `{script}` | {match['measured']} | {match['goal']} | {verdict} |")
    return rows


def rebuild(readme: str, outputs: dict[str, str]) -> str:
    """``readme`` with its table's rows of each script in ``outputs`` replaced by that output's claims."""
    lines = readme.splitlines()
    try:
        top = next(i for i, line in enumerate(lines) if line.startswith("| claim | script |"))
    except StopIteration:
        raise SystemExit("README has no performance table (a line starting '| claim | script |')") from None
    end = next((i for i in range(top + 2, len(lines)) if not lines[i].startswith("|")), len(lines))
    rows = lines[top + 2:end]
    for script, text in outputs.items():
        new = claim_rows(text, script)
        if not new:
            raise SystemExit(f"no claim lines in the output given for {script}")
        mine = [i for i, row in enumerate(rows) if f"| `{script}` |" in row]
        at = mine[0] if mine else len(rows)
        rows = [row for row in rows[:at] if f"| `{script}` |" not in row] + new + \
               [row for row in rows[at:] if f"| `{script}` |" not in row]
    return "\n".join(lines[:top] + [HEADER, RULE] + rows + lines[end:]) + ("\n" if readme.endswith("\n") else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outputs", nargs="+", type=Path, help="saved output of a script, named <script>.txt")
    parser.add_argument("--readme", type=Path, default=Path(__file__).resolve().parent.parent / "README.md")
    ns = parser.parse_args()
    outputs = {f"benchmarks/{path.stem}.py": path.read_text() for path in ns.outputs}
    atomic_write_text(ns.readme, rebuild(ns.readme.read_text(), outputs))
    print(f"{ns.readme.name}: table rows of {', '.join(outputs)} rebuilt from their claim lines")


if __name__ == "__main__":
    main()
