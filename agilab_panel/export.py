"""Output dataframes: read the latest output (LOAD DATA) and write the columns the Pipeline and Analysis
pages use to ``${AGILAB_EXPORT_ABS}/<module>/export.csv`` (Prepare Data).

Engine side: no Panel here. Outputs are parquet or CSV files, or a folder of them (one file per
partition); every reader below accepts all three.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .fsutil import atomic_path
from .paths import inside

__all__ = ["ExportError", "output_files", "output_frame", "output_columns", "export_columns"]

_PARQUET = (".parquet", ".pq")
_CSV = (".csv",)


class ExportError(ValueError):
    """An output that cannot be read, or an export request that cannot be honoured."""


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in _PARQUET:
        return "parquet"
    if suffix in _CSV:
        return "csv"
    raise ExportError(f"{path.name}: not a parquet or CSV file (expected one of {', '.join(_PARQUET + _CSV)})")


def output_files(path: str | os.PathLike) -> tuple[str, list[Path]]:
    """The data files behind ``path`` (a file, or a folder of parquet or CSV files) and their format."""
    path = Path(path)
    if not path.exists():
        raise ExportError(f"output {path} does not exist (run the app first)")
    if path.is_file():
        return _kind(path), [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in _PARQUET + _CSV)
    if not files:
        raise ExportError(f"output folder {path} holds no parquet or CSV file")
    kinds = {_kind(p) for p in files}
    if len(kinds) > 1:
        raise ExportError(f"output folder {path} mixes parquet and CSV files")
    return kinds.pop(), files


def output_frame(path: str | os.PathLike, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Read an output dataframe (parquet or CSV file, or a folder of them), optionally only ``columns``."""
    kind, files = output_files(path)
    cols = list(columns) if columns is not None else None
    frames: list[pd.DataFrame] = []
    for file in files:
        try:
            if kind == "parquet":
                frames.append(pd.read_parquet(file, columns=cols))
            else:
                frames.append(pd.read_csv(file, usecols=cols))
        except (OSError, ValueError) as exc:
            raise ExportError(f"cannot read {file}: {exc}") from exc
    frame = frames[0] if len(frames) == 1 else pd.concat(frames)
    if any(name is not None for name in frame.index.names):  # a named index is data: make it a column
        frame = frame.reset_index()
    frame = frame.reset_index(drop=True)
    return frame[cols] if cols is not None else frame


def output_columns(path: str | os.PathLike) -> list[str]:
    """Column names of an output, read from the parquet schema or the CSV header (no data loaded)."""
    kind, files = output_files(path)
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            schema = pq.read_schema(files[0])
            meta = schema.pandas_metadata or {}
            # unnamed indexes are stored as "__index_level_N__": bookkeeping, not data
            hidden = {c for c in meta.get("index_columns", []) if isinstance(c, str) and c.startswith("__index_level_")}
            names = [name for name in schema.names if name not in hidden]
            named_index = [c for c in meta.get("index_columns", []) if isinstance(c, str) and c in names]
            return named_index + [c for c in names if c not in named_index]
        return list(pd.read_csv(files[0], nrows=0).columns)
    except (OSError, ValueError) as exc:
        raise ExportError(f"cannot read the columns of {files[0]}: {exc}") from exc


def export_columns(env: Any, source: str | os.PathLike, columns: Sequence[str]) -> Path:
    """Write ``columns`` of the output ``source`` to ``env.export_csv``, whole or not at all.

    Unknown or missing columns are refused with an error naming them and the columns available; the
    previous export.csv (if any) is left untouched unless the new one was written completely.
    """
    wanted = list(dict.fromkeys(str(c) for c in columns))
    if not wanted:
        raise ExportError("choose at least one column to export")
    available = output_columns(source)
    unknown = [c for c in wanted if c not in available]
    if unknown:
        raise ExportError(
            f"unknown column{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"(the output has: {', '.join(available) or 'no columns'})"
        )
    target = inside(env.export_root, env.export_csv, "export file", root_name="export root")
    frame = output_frame(source, wanted)
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False)
    return target
