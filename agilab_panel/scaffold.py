"""``agilab-panel new-app``: a new app that fulfils the contract as generated (SPEC §9, docs/APPS.md).

Each kind is a complete app — args, manager, worker, a Cython kernel, settings — that passes
check-app, installs, and runs in every local mode: the author starts from working code and changes
it, rather than from a blank page. The templates are package data (``templates/new_app``); the app
is written to a hidden folder beside its destination and renamed into place, so a failure leaves
nothing behind and a name is never half taken.
"""
from __future__ import annotations

import os
import shutil
import string
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .appcheck import check_name

__all__ = ["KINDS", "AppKind", "new_app", "render"]

TEMPLATES = Path(__file__).resolve().parent / "templates" / "new_app"
PLACEHOLDER = "__app__"  # in template paths: the app's package folder


@dataclass(frozen=True)
class AppKind:
    """What one kind of app does and the pieces that differ between kinds."""

    description: str
    dependencies: tuple[str, ...]
    output: str  # output file name; {name} is the app's name
    summary: bool = False  # writes a summary file (and ships a custom form that previews it)


KINDS: dict[str, AppKind] = {
    "minimal": AppKind("Counts the primes in integer ranges: the smallest app with a typed kernel.",
                       ("pandas",), "{name}_primes.parquet"),
    "numeric": AppKind("Estimates pi from seeded random points: numpy against a typed kernel, identical counts.",
                       ("numpy", "pandas"), "{name}_batches.parquet"),
    "data": AppKind("Aggregates generated sensor CSV files with pandas into one row per sensor.",
                    ("numpy", "pandas", "pyarrow"), "{name}_sensors.parquet", summary=True),
}


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) or name


def render(name: str, kind: str) -> dict[str, str]:
    """The app's files (path relative to the app folder -> text), without writing anything."""
    spec = KINDS[kind]
    values = {
        "name": name,
        "Name": _camel(name),
        "kind": kind,
        "description": spec.description,
        "dependencies": ", ".join(f'"{d}"' for d in spec.dependencies),
        "output": spec.output.format(name=name),
        "summary": (f'summary = "{name}_summary.json"  # metrics the worker writes (write_summary)'
                    if spec.summary else ""),
        "args": (TEMPLATES / kind / "args.toml").read_text(encoding="utf-8"),
    }
    files: dict[str, str] = {}
    for root in (TEMPLATES / "common", TEMPLATES / kind):
        for template in sorted(root.rglob("*.tmpl")):
            rel = template.relative_to(root).as_posix().removesuffix(".tmpl").replace(PLACEHOLDER, name)
            files[rel] = string.Template(template.read_text(encoding="utf-8")).substitute(values)
    return files


def new_app(name: str, kind: str = "minimal", folder: str | os.PathLike | None = None,
            apps_paths: list[Path] | None = None) -> Path:
    """Write a new app ``name`` of ``kind`` into ``folder`` (default: the current folder); returns its path.

    The name must be a lower-case Python identifier that no app and no importable module already
    uses; a bad name or kind is a ``ValueError`` and nothing is written.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown app kind {kind!r}: choose one of {', '.join(KINDS)}")
    parent = Path(folder if folder is not None else Path.cwd()).expanduser().resolve()
    target = parent / str(name)
    problem = check_name(name, [*(apps_paths or []), parent], target)
    if problem:
        raise ValueError(problem)
    if parent.exists() and not parent.is_dir():
        raise ValueError(f"{parent} is not a folder")
    files = render(name, kind)
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.new-", dir=parent))
    try:
        for rel, text in files.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        staging.chmod(0o755)  # mkdtemp made it private; an app folder is an ordinary one
        os.rename(staging, target)  # atomic; fails if the name was taken meanwhile
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
