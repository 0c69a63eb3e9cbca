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
