"""Real runs with ``reset_target``: nothing outside the app's own output is ever deleted."""
from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
import pytest

from agilab_panel import AGI, AgiEnv, EventBus, RunRequest
from agilab_panel.events import LogLine
from agilab_panel.paths import OUTPUT_MARKER, PathEscapeError

pytestmark = pytest.mark.integration


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def request(data_out: str, reset_target: bool = False) -> RunRequest:
    return RunRequest(params={"partitions": 2, "size": 100}, workers={"127.0.0.1": 2}, mode=0, verbose=0,
                      data_out=data_out, reset_target=reset_target)


async def run_logged(env: AgiEnv, req: RunRequest) -> tuple[object, list[str]]:
    bus, lines = EventBus(), []
    bus.add_listener(lambda e: lines.append(e.text) if isinstance(e, LogLine) else None)
    return await AGI.run(env, req, events=bus, keep_cluster=False), lines


@pytest.mark.parametrize("data_out", [".", "..", "VICTIM", "LINK"])
async def test_reset_target_never_deletes_outside_the_apps_output(installed, use_home, tmp_path, data_out):
    dirs = installed("minimal_app")
    use_home(dirs)
    share = dirs["AGI_CLUSTER_SHARE"]
    share.mkdir(parents=True, exist_ok=True)
    (share / "keep.txt").write_text("share content\n")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me\n")
    link = f"link-{uuid.uuid4().hex[:8]}"
    (share / link).symlink_to(victim)
    data_out = {"VICTIM": str(victim), "LINK": link}.get(data_out, data_out)
    before = (tree(share), tree(share.parent / "agilab_home"), tree(victim))
    with pytest.raises(PathEscapeError, match="data_out"):
        await AGI.run(AgiEnv("minimal_app", verbose=0), request(data_out, reset_target=True), keep_cluster=False)
    assert (tree(share), tree(share.parent / "agilab_home"), tree(victim)) == before


async def test_reset_target_empties_a_folder_the_app_owns(installed, use_home):
    use_home(installed("minimal_app"))
    env = AgiEnv("minimal_app", verbose=0)
    data_out = f"safety-{uuid.uuid4().hex[:8]}/out"
    first, _ = await run_logged(env, request(data_out))
    out = Path(first.output).parent
    assert sorted(tree(out)) == [OUTPUT_MARKER, "minimal_output.parquet"]
    (out / "stale-from-an-older-run.parquet").write_bytes(b"PAR1")
    (out / "old_parts").mkdir()
    (out / "old_parts" / "p0.parquet").write_bytes(b"PAR1")
    second, lines = await run_logged(env, request(data_out, reset_target=True))
    assert sorted(tree(out)) == [OUTPUT_MARKER, "minimal_output.parquet"]
    assert any("removed 3 item(s)" in line for line in lines), lines
    assert pd.read_parquet(second.output).shape[0] == 2


async def test_reset_target_in_a_folder_with_user_files_removes_only_the_declared_output(installed, use_home):
    dirs = installed("minimal_app")
    use_home(dirs)
    env = AgiEnv("minimal_app", verbose=0)
    folder = dirs["AGI_CLUSTER_SHARE"] / f"safety-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    (folder / "other.parquet").write_bytes(b"PAR1")
    await run_logged(env, request(folder.name))
    assert OUTPUT_MARKER not in tree(folder)
    _, lines = await run_logged(env, request(folder.name, reset_target=True))
    assert any("removed 1 item(s)" in line for line in lines), lines
    assert sorted(tree(folder)) == ["minimal_output.parquet", "notes.txt", "other.parquet"]
    assert (folder / "notes.txt").read_text() == "mine\n" and (folder / "other.parquet").read_bytes() == b"PAR1"
