"""Where user-given paths may lead, and what a reset may delete: one set of rules for every caller.

Data folders live in the cluster share, exports under the export root, saved scripts under the log
root. A path is resolved against its root with symlinks followed, so neither ``..`` nor an absolute
path nor a link can lead a write or a delete elsewhere; an escape is refused with one line naming
the path, where it leads and the root. A reset deletes only what the app wrote: the whole content of
an output folder the engine marked as the app's own when it found it missing or empty, otherwise
only the app's declared output.
"""
from __future__ import annotations

import json
import os
import posixpath
import shutil
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from .fsutil import atomic_write_text

__all__ = ["OUTPUT_MARKER", "PathEscapeError", "check_worker_path", "claim_output", "inside", "reset_output"]

OUTPUT_MARKER = ".agilab-output"


class PathEscapeError(ValueError):
    """A user-given path that leads outside its root, or is the root where a folder inside it is needed."""


def _check_text(value: str, what: str) -> None:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise PathEscapeError(f"{what} {value!r} contains a control character (a newline or NUL, say)")


def inside(root: str | os.PathLike, value: str | os.PathLike, what: str, *, root_name: str,
           allow_root: bool = False) -> Path:
    """``value`` (relative to ``root``, or absolute) as a path under ``root``, spelled from ``root``.

    Symlinks are followed for the check, the part that does not exist yet is taken as written.
    """
    text = os.fspath(value)
    _check_text(text, what)
    candidate = Path(text).expanduser()
    base = Path(os.path.abspath(Path(root).expanduser()))
    real_root = Path(os.path.realpath(base))
    real = Path(os.path.realpath(candidate if candidate.is_absolute() else base / candidate))
    if real == real_root:
        if allow_root:
            return base
        raise PathEscapeError(f"{what} {text!r} is the {root_name} itself ({base}): give a folder inside it")
    if real_root not in real.parents:
        raise PathEscapeError(f"{what} {text!r} leads to {real}, outside the {root_name} {base}")
    return base / real.relative_to(real_root)


def check_worker_path(value: str, what: str = "workers_data_path") -> str:
    """A folder as the workers see it: absolute there, or relative to their share without leaving it.

    The folder is on other machines, so only its spelling can be checked here.
    """
    if not isinstance(value, str):
        raise PathEscapeError(f"{what} must be a path string, got {type(value).__name__}")
    _check_text(value, what)
    if not PurePosixPath(value).is_absolute() and posixpath.normpath(value).split("/")[0] == "..":
        raise PathEscapeError(f"{what} {value!r} leads outside the workers' share: give an absolute folder or one inside it")
    return value


def _marked(folder: Path, app: str) -> bool:
    marker = folder / OUTPUT_MARKER
    if marker.is_symlink() or not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("app") == app
    except (OSError, ValueError, AttributeError):
        return False


def claim_output(folder: Path, app: str) -> bool:
    """Create ``folder`` if needed and mark it as ``app``'s own when it is new or empty; True when it is the app's."""
    folder.mkdir(parents=True, exist_ok=True)
    if _marked(folder, app):
        return True
    if any(folder.iterdir()):  # content the app did not write: only its declared output is its own
        return False
    atomic_write_text(folder / OUTPUT_MARKER, json.dumps({"app": app}) + "\n")
    return True


def reset_output(folder: Path, app: str, output_name: str, keep: Iterable[Path] = ()) -> list[str]:
    """Delete what ``app`` wrote in ``folder``; returns the names removed.

    A folder marked as the app's loses everything but its marker; any other folder only the declared
    output. Links are removed, never followed, and an entry holding one of ``keep`` (the inputs) stays.
    """
    if folder.is_symlink() or not folder.is_dir():
        return []
    protected = [Path(os.path.realpath(p)) for p in keep]
    if _marked(folder, app):
        entries = sorted(e for e in folder.iterdir() if e.name != OUTPUT_MARKER)
    else:
        entries = [e for e in (folder / output_name,) if e.is_symlink() or e.exists()]
    removed = []
    for entry in entries:
        if entry.is_symlink() or not entry.is_dir():
            entry.unlink()
        else:
            real = Path(os.path.realpath(entry))
            if any(p == real or real in p.parents for p in protected):
                continue
            shutil.rmtree(entry)
        removed.append(entry.name)
    return removed
