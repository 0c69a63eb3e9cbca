"""Process ownership: every process the engine starts ends with its owner, or when its owner ends it.

Two mechanisms, used together. A run gets its own process group, so cancelling it is one
``killpg`` that reaches every process under it (pool workers, whatever the app started).
``PR_SET_PDEATHSIG`` makes a child die with its parent when the parent dies without cleaning up
(SIGKILL, SIGTERM, a crash); it is set at each level (engine -> warm runner -> run -> pool worker),
since it does not pass to grandchildren. Linux only; elsewhere these are no-ops. Stdlib only, and
safe to call between fork and exec (nothing here allocates a lock or loads a library).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys

__all__ = ["die_with_parent", "become_subreaper", "kill_group", "exit_text"]

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _load_prctl() -> object | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Resolved once at import, in the parent: a child between fork and exec must not load a library.
_prctl = _load_prctl()


def die_with_parent(parent_pid: int) -> None:
    """Be SIGKILLed when the thread of ``parent_pid`` that started this process ends.

    The parent may die between the fork and this call, before the signal is armed: then this
    process has been re-parented already and ends at once.
    """
    if _prctl is None:
        return
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # type: ignore[operator]
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGKILL)


def become_subreaper() -> None:
    """Orphans below this process come back to it (not to init), so it reaps them: no zombie outlives a run."""
    if _prctl is not None:
        _prctl(_PR_SET_CHILD_SUBREAPER, 1)  # type: ignore[operator]


def kill_group(pgid: int) -> None:
    """SIGKILL every process of the group ``pgid`` (a run and everything it started)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def exit_text(code: int) -> str:
    """``exit code 17`` or ``killed by SIGKILL``: how a process ended, for error messages."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
