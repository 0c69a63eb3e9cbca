"""Files written whole or not at all (settings, plans, outputs, exports); stdlib only, so workers use it too.

The writer replaces the file a path names, not the path itself: a symlinked file is written through
the link (the link stays), and an existing file keeps its permissions. Temporary files carry the pid
of their writer, so one left by a killed writer is removed by the next write of the same file.
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text", "keep_copy", "remove_stale_temps"]

_NAME_LIMIT = 100  # characters of the target's name kept in a temp name (file names stop at 255 bytes)


def _real_target(path: Path) -> Path:
    """The file ``path`` names: symlinks followed, even a dangling one (its target is created)."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _temp_prefix(target: Path) -> str:
    return f".{target.name[:_NAME_LIMIT]}.agtmp-{socket.gethostname()[:40]}-"


def _alive(pid: int) -> bool:
    if os.name != "posix":  # no harmless liveness probe elsewhere: keep the file
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _remove_stale_temps(target: Path) -> None:
    """Temp files of this target left by writers of this host that no longer run (killed mid-write)."""
    _sweep(target.parent, _temp_prefix(target))


def remove_stale_temps(folder: str | os.PathLike) -> int:
    """Temp files of any target in ``folder`` left by writers of this host that no longer run; returns
    how many went. For folders written with ``sweep=False`` (a queue), swept now and then instead."""
    return _sweep(Path(folder), None)


def _sweep(folder: Path, prefix: str | None) -> int:
    host = f".agtmp-{socket.gethostname()[:40]}-"
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    removed = 0
    for name in names:
        if not name.endswith(".tmp") or not (name.startswith(prefix) if prefix else name.startswith(".")):
            continue
        at = name.rfind(host)
        if at < 0:
            continue
        pid = name[at + len(host):].split(".", 1)[0]
        if pid.isascii() and pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            try:
                (folder / name).unlink()
                removed += 1
            except OSError:
                pass
    return removed


def _open_temp(target: Path) -> Path:
    """A new empty file beside ``target``, created with the mode a new file gets (umask applied)."""
    while True:
        tmp = target.parent / f"{_temp_prefix(target)}{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


@contextmanager
def atomic_path(path: str | os.PathLike, *, durable: bool = True, sweep: bool = True) -> Iterator[Path]:
    """A temporary path beside the file ``path`` names; renamed over it when the block succeeds, removed otherwise.

    Readers never see a half-written file, and a failed write leaves the previous file as it was.
    ``durable=False`` skips the fsync, for files rewritten many times a second whose readers check
    what they read anyway (heartbeats, service queue records): a power cut may then lose the last
    write, never expose half of one to a running reader. ``sweep=False`` skips the removal of a
    killed writer's temp file, which lists the folder: for hot writes into folders of thousands of
    files (the service queue), whose owner calls :func:`remove_stale_temps` now and then instead.
    """
    target = _real_target(Path(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    if sweep:
        _remove_stale_temps(target)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    tmp = _open_temp(target)
    try:
        yield tmp
        if durable or mode is not None:
            with open(tmp, "rb+") as handle:
                if mode is not None and hasattr(os, "fchmod"):
                    os.fchmod(handle.fileno(), mode)
                if durable:
                    os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str, *, durable: bool = True, sweep: bool = True) -> None:
    with atomic_path(path, durable=durable, sweep=sweep) as tmp:
        tmp.write_text(text, encoding="utf-8")


def keep_copy(path: str | os.PathLike, tag: str = "broken") -> Path:
    """Copy ``path`` beside itself as ``<name>.<tag>-<time>`` (``-1``, ``-2``... never over an earlier copy).

    What a file held is kept before the file is replaced, when it could not be read as it is.
    """
    source = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    n = 0
    while True:
        copy = source.with_name(f"{source.name}.{tag}-{stamp}" + (f"-{n}" if n else ""))
        try:
            with open(source, "rb") as src, open(copy, "xb") as dst:
                shutil.copyfileobj(src, dst)
        except FileExistsError:
            n += 1
            continue
        shutil.copystat(source, copy)
        return copy
