"""Per-cluster folders (Dask logs, scheduler file, worker scratch space): bounded in number, kept while used.

Each cluster start makes a folder; without pruning they pile up forever. A folder is *in use* while
some process holds the lock on its ``.in-use`` file: the engine that made it, and every Dask
process started in it (they inherit the locked descriptor), so a cluster kept across processes
keeps its folder for as long as it runs. The newest :data:`KEEP` folders stay for reading; older
ones nobody uses are removed when the next cluster starts.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: no lock, so nothing is ever pruned
    fcntl = None  # type: ignore[assignment]

__all__ = ["KEEP", "IN_USE", "claim", "in_use", "prune", "release"]

KEEP = 20
IN_USE = ".in-use"


def claim(folder: Path, keep: int = KEEP) -> int | None:
    """Create ``folder`` and hold its lock; prune its older siblings. Returns the locked descriptor
    (pass it to the processes that work in the folder), or None where locks are not available."""
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        return None
    fd = os.open(folder / IN_USE, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    prune(folder.parent, keep)
    return fd


def in_use(folder: Path) -> bool:
    """Whether a process (this one included) holds ``folder``'s lock."""
    if fcntl is None:
        return True
    try:
        fd = os.open(folder / IN_USE, os.O_RDWR)
    except OSError:  # never claimed (or not a cluster folder): nobody can be using it through a lock
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the probe's own lock
    return False


def prune(root: Path, keep: int = KEEP) -> list[Path]:
    """Remove the folders of ``root`` beyond the newest ``keep`` (by name: they start with their time) not in use."""
    try:
        folders = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True)
    except OSError:
        return []
    removed = []
    for old in folders[keep:]:
        if not in_use(old):
            shutil.rmtree(old, ignore_errors=True)
            removed.append(old)
    return removed


def release(folder: Path, fd: int | None, *, scratch: str | None = None) -> None:
    """Stop holding ``folder`` (its logs stay for reading); remove its ``scratch`` subfolder, if named."""
    if scratch:
        shutil.rmtree(folder / scratch, ignore_errors=True)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
