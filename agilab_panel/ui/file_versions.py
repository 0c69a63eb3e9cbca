"""Which version of each saved file a page last read, so it re-reads exactly those that changed since.

Another session, or the command line, may save an app's settings, work plan, last run, benchmark or
install while a page shows that app. A version is the file's modification time, size and inode (every
atomic write makes a new inode, so two writes within one clock tick still differ); a missing file has
the version None.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["FileVersions", "version"]

Version = tuple[int, int, int] | None


def version(path: Path) -> Version:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


class FileVersions:
    """Named files and the version of each that was last read (taken when created)."""

    def __init__(self, paths: Mapping[str, Path]) -> None:
        self.paths = dict(paths)
        self._seen: dict[str, Version] = {name: version(path) for name, path in self.paths.items()}

    def changed(self) -> list[str]:
        """The names whose file is not the version last seen."""
        return [name for name, path in self.paths.items() if version(path) != self._seen[name]]

    def seen(self, *names: str) -> None:
        """Record the current version of ``names``: call it before reading them (a change made while
        reading shows at the next check) or right after writing them."""
        for name in names:
            self._seen[name] = version(self.paths[name])
