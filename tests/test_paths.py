"""User-given paths stay inside their root; a reset deletes only what the app wrote."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agilab_panel import AGI, AgiEnv, RunRequest
from agilab_panel.distrib import resolve_inputs
from agilab_panel.paths import OUTPUT_MARKER, PathEscapeError, check_worker_path, claim_output, inside, reset_output
from agilab_panel.settings import ClusterSettings


@pytest.fixture
def share(agilab_dirs: dict[str, Path]) -> Path:
    share = agilab_dirs["AGI_CLUSTER_SHARE"]
    share.mkdir(parents=True)
    return share


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A folder outside every root, with content nobody may delete."""
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "precious.txt").write_text("keep me\n")
    return folder


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- inside ----------------------------------------------------------------------------------------
def test_relative_and_absolute_paths_inside_the_root_are_accepted(share: Path) -> None:
    assert inside(share, "app/data_out", "data_out", root_name="share") == share / "app" / "data_out"
    assert inside(share, share / "app" / "x", "data_out", root_name="share") == share / "app" / "x"
    assert inside(share, "app/../other/./x", "data_out", root_name="share") == share / "other" / "x"


@pytest.mark.parametrize(("value", "message"), [
    (".", "is the share itself"),
    ("", "is the share itself"),
    ("..", "outside the share"),
    ("app/../../elsewhere", "outside the share"),
    ("a\nb", "control character"),
    ("a\x00b", "control character"),
])
def test_escapes_and_the_root_itself_are_refused(share: Path, value: str, message: str) -> None:
    with pytest.raises(PathEscapeError, match=message) as err:
        inside(share, value, "data_out", root_name="share")
    assert "\n" not in str(err.value) and str(err.value).startswith("data_out ")


def test_absolute_paths_and_links_leading_out_are_refused(share: Path, victim: Path) -> None:
    (share / "out_link").symlink_to(victim)
    (share / "app").mkdir()
    (share / "app" / "deep_link").symlink_to(share.parent)
    for value in (victim, "out_link", "out_link/sub", share / "app" / "deep_link" / "victim"):
        with pytest.raises(PathEscapeError, match=f"leads to {victim.parent}"):
            inside(share, value, "data_out", root_name="share")


def test_links_within_the_root_are_followed_and_spelled_from_the_root(share: Path, tmp_path: Path) -> None:
    (share / "real").mkdir()
    (share / "alias").symlink_to(share / "real")
    assert inside(share, "alias/x", "data_in", root_name="share") == share / "real" / "x"
    linked_root = tmp_path / "share_link"  # the share itself may be a link (a mount elsewhere)
    linked_root.symlink_to(share)
    assert inside(linked_root, "real", "data_in", root_name="share") == linked_root / "real"


@pytest.mark.parametrize("value", ["/mnt/share", "data/x", "a/../b", "~/share"])
def test_worker_paths_are_absolute_or_stay_in_the_share(value: str) -> None:
    assert check_worker_path(value) == value


@pytest.mark.parametrize("value", ["..", "../x", "a/../../x", "a\nb"])
def test_worker_paths_leading_out_are_refused_everywhere_they_are_given(value: str) -> None:
    with pytest.raises(PathEscapeError, match="workers_data_path"):
        check_worker_path(value)
    with pytest.raises(ValueError, match="workers_data_path"):
        RunRequest(workers_data_path=value)
    cluster = ClusterSettings()
    with pytest.raises(ValueError, match="workers_data_path"):
        cluster.workers_data_path = value
    assert cluster.workers_data_path == ""


# -- the engine refuses before touching anything -----------------------------------------------------
@pytest.mark.parametrize("field", ["data_in", "data_out"])
@pytest.mark.parametrize("value", [".", "..", "VICTIM", "LINK"])
def test_run_and_distrib_refuse_data_folders_outside_the_share(share: Path, victim: Path, field: str,
                                                               value: str) -> None:
    (share / "keep.txt").write_text("share content\n")
    (share / "link").symlink_to(victim)
    value = {"VICTIM": str(victim), "LINK": "link"}.get(value, value)
    before = (tree(share), tree(victim))
    env = AgiEnv("minimal_app", verbose=0)
    with pytest.raises(PathEscapeError, match=field):
        asyncio.run(AGI.run(env, request=RunRequest(mode=0, reset_target=True, **{field: value})))
    with pytest.raises(PathEscapeError, match=field):
        asyncio.run(AGI.get_distrib(env, **{field: value}))
    assert (tree(share), tree(victim)) == before


def test_data_in_and_data_out_may_not_be_one_folder(share: Path) -> None:
    with pytest.raises(PathEscapeError, match="same folder"):
        resolve_inputs(AgiEnv("minimal_app", verbose=0), data_in="app/io", data_out="app/io/.")


# -- what a reset deletes --------------------------------------------------------------------------
def test_a_folder_the_app_found_empty_is_its_own_and_a_reset_empties_it(share: Path, victim: Path) -> None:
    out = share / "app" / "data_out"
    assert claim_output(out, "app") is True
    assert json.loads((out / OUTPUT_MARKER).read_text()) == {"app": "app"}
    (out / "output.parquet").write_bytes(b"PAR1")
    (out / "parts").mkdir()
    (out / "parts" / "p0.parquet").write_bytes(b"PAR1")
    (out / "to_victim").symlink_to(victim)
    (out / "file_link").symlink_to(victim / "precious.txt")
    assert reset_output(out, "app", "output.parquet") == ["file_link", "output.parquet", "parts", "to_victim"]
    assert sorted(p.name for p in out.iterdir()) == [OUTPUT_MARKER]
    assert tree(victim) == {"precious.txt": b"keep me\n"}  # links were removed, never followed


def test_in_a_folder_with_other_content_only_the_declared_output_goes(share: Path) -> None:
    out = share / "results"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    assert claim_output(out, "app") is False
    (out / "output.parquet").write_bytes(b"PAR1")
    assert reset_output(out, "app", "output.parquet") == ["output.parquet"]
    assert tree(out) == {"notes.txt": b"mine\n"}
    assert reset_output(out, "app", "output.parquet") == []


def test_another_apps_marker_or_a_linked_marker_does_not_make_a_folder_this_apps(share: Path, victim: Path) -> None:
    out = share / "shared_out"
    claim_output(out, "first_app")
    (out / "first.parquet").write_bytes(b"PAR1")
    (out / "second.parquet").write_bytes(b"PAR1")
    assert reset_output(out, "second_app", "second.parquet") == ["second.parquet"]
    assert sorted(tree(out)) == [OUTPUT_MARKER, "first.parquet"]
    linked = share / "linked_out"
    linked.mkdir()
    (victim / "marker").write_text(json.dumps({"app": "app"}))
    (linked / OUTPUT_MARKER).symlink_to(victim / "marker")
    (linked / "notes.txt").write_text("mine\n")
    assert reset_output(linked, "app", "output.parquet") == []
    assert tree(linked)["notes.txt"] == b"mine\n"


def test_a_reset_keeps_inputs_that_live_inside_the_output_folder(share: Path) -> None:
    out = share / "app"
    claim_output(out, "app")
    (out / "data_in").mkdir()
    (out / "data_in" / "input.csv").write_text("a\n1\n")
    (out / "output.parquet").write_bytes(b"PAR1")
    assert reset_output(out, "app", "output.parquet", keep=[out / "data_in"]) == ["output.parquet"]
    assert tree(out / "data_in") == {"input.csv": b"a\n1\n"}


# -- the output writer -----------------------------------------------------------------------------
def _job(data_out: Path, output_name: str):
    from agilab_panel.runtime.job import Job

    return Job(run_id="r", app="app", worker_ref="m:W", src_path="", mode=0, args={}, data_in="",
               data_out=str(data_out), output_name=output_name, slots={}, order=[])


def test_the_output_is_written_in_the_format_its_suffix_names(share: Path) -> None:
    import pandas as pd

    from agilab_panel.runtime.job import write_output

    frame = pd.DataFrame({"a": [1, 2]})
    info = write_output(_job(share / "out", "result.CSV"), frame)
    assert Path(info["output"]).read_text() == "a\n1\n2\n"
    info = write_output(_job(share / "out", "result.pq"), frame)
    assert Path(info["output"]).read_bytes()[:4] == b"PAR1"
    with pytest.raises(ValueError, match="the engine writes only .parquet, .pq, .csv files"):
        write_output(_job(share / "out", "result.json"), frame)
    assert not (share / "out" / "result.json").exists()


def test_the_output_is_never_written_through_a_link_leading_out(share: Path, victim: Path) -> None:
    import pandas as pd

    from agilab_panel.runtime.job import write_output

    (share / "out").mkdir()
    (share / "out" / "result.csv").symlink_to(victim / "precious.txt")
    with pytest.raises(PathEscapeError, match="output 'result.csv' leads to"):
        write_output(_job(share / "out", "result.csv"), pd.DataFrame({"a": [1]}))
    assert tree(victim) == {"precious.txt": b"keep me\n"}


# -- exports and saved scripts stay under their roots ------------------------------------------------
def test_export_csv_is_never_written_through_a_link_leading_out(agilab_dirs: dict[str, Path], victim: Path) -> None:
    from types import SimpleNamespace

    import pandas as pd

    from agilab_panel.export import export_columns

    source = agilab_dirs["AGI_CLUSTER_SHARE"] / "out.parquet"
    source.parent.mkdir(parents=True)
    pd.DataFrame({"a": [1]}).to_parquet(source)
    root = agilab_dirs["AGILAB_EXPORT_ABS"]
    root.mkdir(parents=True)
    (root / "flight_telemetry").symlink_to(victim)
    env = SimpleNamespace(export_root=root, export_csv=root / "flight_telemetry" / "export.csv")
    with pytest.raises(PathEscapeError, match="export file .* leads to"):
        export_columns(env, source, ["a"])
    assert tree(victim) == {"precious.txt": b"keep me\n"}


def test_saved_snippets_and_notebooks_stay_in_the_log_folder(victim: Path) -> None:
    from agilab_panel.notebook import export_notebook
    from agilab_panel.settings import AppSettings
    from agilab_panel.snippets import save_snippets

    env = AgiEnv("minimal_app", verbose=0)
    settings = AppSettings(env)
    env.log_dir.mkdir(parents=True)
    (env.log_dir / "AGI_run_minimal_app.py").symlink_to(victim / "precious.txt")
    (env.log_dir / "minimal_app_orchestrate.ipynb").symlink_to(victim / "notebook.ipynb")
    with pytest.raises(PathEscapeError, match="snippet file .* leads to"):
        save_snippets(env, settings, kinds=("install", "run"))
    assert not (env.log_dir / "AGI_install_minimal_app.py").exists()  # checked before any file is written
    with pytest.raises(PathEscapeError, match="notebook file .* leads to"):
        export_notebook(env, settings)
    for wrong in (victim / "precious.txt", victim):
        with pytest.raises(ValueError, match="must name a .ipynb file"):
            export_notebook(env, settings, wrong)
    assert tree(victim) == {"precious.txt": b"keep me\n"}
