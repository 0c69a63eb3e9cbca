"""Records the engine reads back (last_run.json, submission ids) name only what the engine itself wrote."""
from __future__ import annotations

import json
import os

import pytest

from agilab_panel import AGI, AgiEnv


@pytest.fixture
def env(agilab_dirs) -> AgiEnv:
    return AgiEnv("minimal_app", verbose=0)


def _record(env: AgiEnv, output: str) -> None:
    env.last_run_path.parent.mkdir(parents=True, exist_ok=True)
    env.last_run_path.write_text(json.dumps({"output": output, "time": 1.0}))


def test_last_output_is_a_file_the_engine_wrote_under_the_share(env, tmp_path) -> None:
    inside = env.share / "minimal_app" / "out" / "result.parquet"
    inside.parent.mkdir(parents=True)
    inside.write_bytes(b"PAR1")
    _record(env, str(inside))
    assert AGI.last_output(env) == inside


@pytest.mark.parametrize("where", ["absolute", "dotdot", "link"])
def test_last_output_ignores_a_record_pointing_outside_the_share(env, tmp_path, where) -> None:
    secret = tmp_path / "elsewhere" / "secret.parquet"
    secret.parent.mkdir()
    secret.write_bytes(b"PAR1")
    env.share.mkdir(parents=True, exist_ok=True)
    if where == "absolute":
        output = str(secret)
    elif where == "dotdot":
        output = str(env.share / ".." / "elsewhere" / "secret.parquet")
    else:
        os.symlink(secret.parent, env.share / "link")
        output = str(env.share / "link" / "secret.parquet")
    _record(env, output)
    assert AGI.last_output(env) is None


@pytest.mark.parametrize("submission", ["../../etc/passwd", "/tmp/x", "a/b", "", ".hidden", "x\n"])
async def test_waiting_for_a_submission_id_that_is_a_path_is_refused_before_any_read(env, submission) -> None:
    with pytest.raises(ValueError, match="is not a submission id"):
        await AGI.wait_submission(env, submission, timeout=1)
