"""Reading output dataframes and writing export.csv (LOAD DATA / Prepare Data)."""
from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from agilab_panel.export import ExportError, export_columns, output_columns, output_frame


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame({"aircraft": ["A1", "A2", "A3"], "alt_mean": [1.5, 2.5, 3.5], "n": [10, 20, 30]})


@pytest.fixture
def env(agilab_dirs: dict[str, Path]) -> SimpleNamespace:
    export_dir = agilab_dirs["AGILAB_EXPORT_ABS"] / "flight_telemetry"
    return SimpleNamespace(export_root=agilab_dirs["AGILAB_EXPORT_ABS"], export_dir=export_dir,
                           export_csv=export_dir / "export.csv")


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_output_frame_reads_parquet_and_csv(tmp_path: Path, frame: pd.DataFrame, suffix: str) -> None:
    path = tmp_path / f"out{suffix}"
    frame.to_parquet(path, index=False) if suffix == ".parquet" else frame.to_csv(path, index=False)
    pd.testing.assert_frame_equal(output_frame(path), frame)
    assert output_columns(path) == ["aircraft", "alt_mean", "n"]
    pd.testing.assert_frame_equal(output_frame(path, ["n", "aircraft"]), frame[["n", "aircraft"]])


def test_output_frame_reads_a_folder_of_partitions(tmp_path: Path, frame: pd.DataFrame) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    frame.iloc[:2].to_parquet(folder / "part-0.parquet", index=False)
    frame.iloc[2:].to_parquet(folder / "part-1.parquet", index=False)
    (folder / "_SUCCESS").write_text("")
    pd.testing.assert_frame_equal(output_frame(folder), frame)


def test_parquet_index_is_not_a_column(tmp_path: Path, frame: pd.DataFrame) -> None:
    path = tmp_path / "indexed.parquet"
    frame.set_index("aircraft").to_parquet(path)
    assert "aircraft" in output_columns(path)  # a named index is data the user can export
    frame.to_parquet(path)  # default RangeIndex: stored as metadata only
    assert output_columns(path) == ["aircraft", "alt_mean", "n"]


def test_output_errors_are_readable(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="does not exist"):
        output_frame(tmp_path / "missing.parquet")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ExportError, match="not a parquet or CSV file"):
        output_frame(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match="holds no parquet or CSV file"):
        output_frame(tmp_path / "empty")


def test_export_columns_writes_only_the_chosen_columns(tmp_path: Path, frame: pd.DataFrame, env: SimpleNamespace) -> None:
    source = tmp_path / "out.parquet"
    frame.to_parquet(source, index=False)
    written = export_columns(env, source, ["n", "aircraft", "n"])
    assert written == env.export_csv
    assert written.read_text().splitlines()[0] == "n,aircraft"
    pd.testing.assert_frame_equal(pd.read_csv(written), frame[["n", "aircraft"]])
    assert [p.name for p in written.parent.iterdir()] == ["export.csv"]  # no temp file left behind


def test_export_refuses_unknown_columns_and_keeps_the_previous_file(tmp_path: Path, frame: pd.DataFrame,
                                                                    env: SimpleNamespace) -> None:
    source = tmp_path / "out.csv"
    frame.to_csv(source, index=False)
    export_columns(env, source, ["aircraft"])
    before = env.export_csv.read_bytes()
    with pytest.raises(ExportError, match=r"unknown columns 'speed', 'lat' \(the output has: aircraft, alt_mean, n\)"):
        export_columns(env, source, ["aircraft", "speed", "lat"])
    with pytest.raises(ExportError, match="at least one column"):
        export_columns(env, source, [])
    assert env.export_csv.read_bytes() == before


def test_export_is_atomic_when_writing_fails(tmp_path: Path, frame: pd.DataFrame, env: SimpleNamespace,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "out.parquet"
    frame.to_parquet(source, index=False)
    export_columns(env, source, ["aircraft", "n"])
    before = env.export_csv.read_bytes()

    def broken(self: pd.DataFrame, target: object, **kw: object) -> None:
        Path(target).write_text("aircraft,n\nA1,")  # type: ignore[arg-type]
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    with pytest.raises(OSError, match="disk full"):
        export_columns(env, source, ["aircraft"])
    assert env.export_csv.read_bytes() == before
    assert sorted(os.listdir(env.export_dir)) == ["export.csv"]
