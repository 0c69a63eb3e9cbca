"""The one atomic writer: permissions kept, symlinks followed, nothing left behind by a killed writer."""
from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import pytest

from agilab_panel.fsutil import atomic_path, atomic_write_text


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "settings.toml"
    target.write_text("a = 1\n")
    target.chmod(0o640)
    atomic_write_text(target, "a = 2\n")
    assert (target.read_text(), mode_of(target)) == ("a = 2\n", 0o640)


def test_a_new_file_gets_the_mode_the_umask_gives(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "new.json", "{}")
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "new.json") == 0o640


def test_a_symlinked_file_is_written_through_the_link(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "app_settings.toml"
    real.parent.mkdir()
    real.write_text("old\n")
    real.chmod(0o600)
    link = tmp_path / "home" / "app_settings.toml"
    link.parent.mkdir()
    link.symlink_to(real)
    atomic_write_text(link, "new\n")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert (real.read_text(), mode_of(real)) == ("new\n", 0o600)
    assert temps(link.parent) == [] and temps(real.parent) == []


def test_a_dangling_symlink_gets_its_target_created(tmp_path: Path) -> None:
    link = tmp_path / "plan.json"
    link.symlink_to(tmp_path / "elsewhere" / "plan.json")
    atomic_write_text(link, "{}")
    assert link.is_symlink() and (tmp_path / "elsewhere" / "plan.json").read_text() == "{}"


def test_a_failed_block_removes_its_temp_and_keeps_the_file(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("kept\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("writer failed")
    assert target.read_text() == "kept\n" and temps(tmp_path) == []


def test_the_next_write_removes_the_temp_of_a_killed_writer(tmp_path: Path, stalled_writer) -> None:
    target = tmp_path / "app_settings.toml"
    target.write_text("before\n")
    proc, tmp = stalled_writer(target)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert temps(tmp_path) == [tmp.name]  # what a kill mid-save leaves
    assert target.read_text() == "before\n"
    atomic_write_text(target, "after\n")
    assert temps(tmp_path) == []
    assert target.read_text() == "after\n"


def test_a_live_writer_keeps_its_temp_and_finishes(tmp_path: Path, stalled_writer) -> None:
    target = tmp_path / "distribution_tree.json"
    proc, tmp = stalled_writer(target)
    try:
        atomic_write_text(target, "from the test\n")
        assert temps(tmp_path) == [tmp.name]
    finally:
        proc.communicate("go\n", timeout=60)
    assert proc.returncode == 0
    assert target.read_text() == "from the writer\n" and temps(tmp_path) == []


def test_a_write_without_fsync_keeps_the_mode_and_is_whole_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "heartbeat.json"
    target.write_text("{}")
    target.chmod(0o640)
    atomic_write_text(target, '{"state": "running"}', durable=False)
    assert (target.read_text(), mode_of(target)) == ('{"state": "running"}', 0o640)
    with pytest.raises(RuntimeError), atomic_path(target, durable=False) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("writer failed")
    assert target.read_text() == '{"state": "running"}' and temps(tmp_path) == []


def test_a_write_without_sweep_leaves_a_killed_writers_temp_for_the_folder_sweep(tmp_path: Path,
                                                                                   stalled_writer) -> None:
    from agilab_panel.fsutil import remove_stale_temps

    target, other = tmp_path / "t-1.json", tmp_path / "t-2.json"
    proc, dead = stalled_writer(target)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    live, alive = stalled_writer(other)
    try:
        atomic_write_text(target, "{}", durable=False, sweep=False)  # no listing of the folder
        assert temps(tmp_path) == sorted([dead.name, alive.name]) and target.read_text() == "{}"
        (tmp_path / ".t-3.json.agtmp-elsewhere-1.ab.tmp").write_text("")  # another host's writer: not ours to judge
        assert remove_stale_temps(tmp_path) == 1
        assert temps(tmp_path) == sorted([alive.name, ".t-3.json.agtmp-elsewhere-1.ab.tmp"])
    finally:
        live.communicate("go\n", timeout=60)
    assert other.read_text() == "from the writer\n"
