"""Execution modes: the bitmask shared by ``modes_enabled`` (install) and ``mode`` (run).

Snippets, the CLI and the dashboard all speak these numbers, so the codec lives in one place.
"""
from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "POOL_MODE",
    "PYTHON_MODE",
    "CYTHON_MODE",
    "DASK_MODE",
    "RAPIDS_MODE",
    "ALL_MODES",
    "mode_from_toggles",
    "mode_to_str",
    "str_to_mode",
    "parse_mode",
    "mode_label",
    "mode_expression",
    "benchmark_modes",
]

POOL_MODE = 1
PYTHON_MODE = POOL_MODE  # historical alias kept for snippet compatibility
CYTHON_MODE = 2
DASK_MODE = 4
RAPIDS_MODE = 8
ALL_MODES = POOL_MODE | CYTHON_MODE | DASK_MODE | RAPIDS_MODE

# Order of the 4-character mode string: r d c p.
_LETTERS = (("r", RAPIDS_MODE), ("d", DASK_MODE), ("c", CYTHON_MODE), ("p", POOL_MODE))
_NAMES = {POOL_MODE: "pool", CYTHON_MODE: "cython", DASK_MODE: "dask", RAPIDS_MODE: "rapids"}
_CONSTANTS = {
    POOL_MODE: "AGI.POOL_MODE",
    CYTHON_MODE: "AGI.CYTHON_MODE",
    DASK_MODE: "AGI.DASK_MODE",
    RAPIDS_MODE: "AGI.RAPIDS_MODE",
}


def _check(mode: int) -> int:
    if isinstance(mode, bool) or not isinstance(mode, int):
        raise ValueError(f"mode must be an int 0..{ALL_MODES}, got {mode!r}")
    if not 0 <= mode <= ALL_MODES:
        raise ValueError(f"mode must be between 0 and {ALL_MODES}, got {mode}")
    return mode


def mode_from_toggles(pool: bool = False, cython: bool = False, cluster: bool = False, rapids: bool = False) -> int:
    """The mode the System settings toggles select."""
    return POOL_MODE * bool(pool) + CYTHON_MODE * bool(cython) + DASK_MODE * bool(cluster) + RAPIDS_MODE * bool(rapids)


def mode_to_str(mode: int) -> str:
    """``5`` -> ``"_d_p"``; ``15`` -> ``"rdcp"``."""
    _check(mode)
    return "".join(letter if mode & bit else "_" for letter, bit in _LETTERS)


def str_to_mode(text: str) -> int:
    """Parse ``"rdcp"``-style strings; letters in any order, ``_`` as a placeholder."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"mode string must be letters from 'rdcp' or '_', got {text!r}")
    value = 0
    bits = dict(_LETTERS)
    for ch in text.strip().lower():
        if ch == "_":
            continue
        if ch not in bits:
            raise ValueError(f"mode string {text!r}: unknown letter {ch!r} (use r, d, c, p or _)")
        if value & bits[ch]:
            raise ValueError(f"mode string {text!r}: letter {ch!r} repeated")
        value |= bits[ch]
    if len(text.strip()) > 4:
        raise ValueError(f"mode string {text!r} is longer than 4 characters")
    return value


def parse_mode(value: int | str) -> int:
    """An int 0..15, a digit string or a mode string, as an int."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.isascii() and stripped.isdigit():  # "٣" or "²" are digits to str.isdigit, not modes
            return _check(int(stripped))
        return str_to_mode(stripped)
    return _check(value)


def mode_label(mode: int) -> str:
    """Human label: ``0: python``, ``13: rapids and dask and pool``."""
    _check(mode)
    parts = [name for _, bit in _LETTERS for b, name in _NAMES.items() if b == bit and mode & bit]
    return f"{mode}: {' and '.join(parts) if parts else 'python'}"


def mode_expression(mode: int) -> str:
    """The mode as public constants, e.g. ``AGI.POOL_MODE | AGI.DASK_MODE``; ``0`` for plain Python."""
    _check(mode)
    names = [_CONSTANTS[bit] for bit in (POOL_MODE, CYTHON_MODE, DASK_MODE, RAPIDS_MODE) if mode & bit]
    return " | ".join(names) if names else "0"


def benchmark_modes(enabled: int | Iterable[int]) -> list[int]:
    """Every mode whose bits are all enabled: pool+cython -> ``[0, 1, 2, 3]``."""
    if isinstance(enabled, int):
        mask = _check(enabled)
    else:
        mask = 0
        for m in enabled:
            mask |= _check(m)
    return [m for m in range(ALL_MODES + 1) if m & ~mask == 0]
