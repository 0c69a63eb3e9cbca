"""Wheels built here and shipped to remote hosts: the agilab_panel runtime and the app.

A host needs neither the source tree nor outside network for them. Each wheel is built once per
content of its source tree (``uv build`` on this machine) and kept under ``<home>/wheelhouse/``; the
content digest is also what the remote install fingerprints, so an unchanged tree builds nothing.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path

from ..events import EventBus, LogLine
from ..install import engine_uv

__all__ = ["tree_digest", "WheelBuilder"]

_SKIP_DIRS = {"__pycache__", "build", "dist", ".venv", ".git", ".pytest_cache"}
_SKIP_SUFFIXES = (".pyc", ".so", ".pyd", ".c", ".egg-info")


def tree_digest(*roots: Path, skip: tuple[str, ...] = ()) -> str:
    """Content digest of the files a wheel is built from (caches, builds and compiled files left out, and
    the top-level folders of ``skip``: parts the workers never import)."""
    h = hashlib.sha256()
    for root in roots:
        if root.is_file():
            h.update(root.name.encode() + b"\0" + root.read_bytes())
            continue
        for folder, dirs, files in os.walk(root):
            top = Path(folder) == root
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".egg-info")
                             and not d.startswith(".") and not (top and d in skip))
            for name in sorted(files):
                if name.endswith(_SKIP_SUFFIXES):
                    continue
                path = Path(folder, name)
                h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


class WheelBuilder:
    """Builds each project's wheel at most once per content (shared by the hosts of one install)."""

    def __init__(self, cache: Path, bus: EventBus) -> None:
        self.cache = cache
        self.bus = bus
        self._lock = asyncio.Lock()

    async def wheel(self, project: Path, digest: str) -> Path:
        """The wheel of ``project`` whose sources have ``digest``, built here if not cached yet."""
        async with self._lock:
            folder = self.cache / f"{project.name}-{digest[:20]}"
            found = sorted(folder.glob("*.whl"))
            if found:
                return found[0]
            self.cache.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=self.cache, prefix=".build-") as tmp:
                # sdist first, wheel from it: the build runs in a temporary copy, nothing is written into the tree
                cmd = [engine_uv(), "build", "--quiet", "--out-dir", tmp, str(project)]
                self.bus.emit(LogLine(text=f"building the wheel of {project.name} here", source="install", step="wheels"))
                proc = await asyncio.create_subprocess_exec(
                    *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                    env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"})
                out, _ = await proc.communicate()
                built = sorted(Path(tmp).glob("*.whl"))
                if proc.returncode != 0 or not built:
                    last = out.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
                    raise RuntimeError(f"building the wheel of {project} failed: {last[0]}")
                folder.mkdir(exist_ok=True)
                target = folder / built[0].name
                os.replace(built[0], target)
                return target
