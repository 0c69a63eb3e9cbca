"""The per-user settings follow the app's own copy (new keys merged in, the user's values kept), and
named argument sets ([args.presets.<name>]) are checked like [args] itself."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agilab_panel.apps import builtin_apps_path
from agilab_panel.env import AgiEnv
from agilab_panel.settings import MERGED_NOTE, AppSettings, SettingsFileError

PRESETS = """
[args.presets.tiny]
partitions = 2
size = 10
data_out = "tiny/out"
"""


@pytest.fixture
def env(tmp_path: Path) -> AgiEnv:
    """A private copy of minimal_app, so a test may edit the app's own app_settings.toml."""
    app = tmp_path / "apps" / "minimal_app"
    shutil.copytree(builtin_apps_path() / "minimal_app", app, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    return AgiEnv(str(app))


def _add_to_seed(env: AgiEnv, old: str, new: str) -> None:
    seed = env.settings_seed_path
    text = seed.read_text()
    assert old in text
    seed.write_text(text.replace(old, new, 1))


def test_new_keys_of_the_app_s_copy_are_merged_keeping_the_user_s_values(env: AgiEnv) -> None:
    AppSettings(env)  # first use: the per-user copy is made
    user = env.settings_path
    user.write_text(user.read_text().replace("partitions = 4", "partitions = 9  # mine"))
    _add_to_seed(env, "size = 20000     # integers per range\n", "size = 20000     # integers per range\n" + PRESETS)
    _add_to_seed(env, "partitions = 4", "partitions = 5")  # a new default does not replace the user's value

    settings = AppSettings(env)
    assert settings.merged == ["args.presets"]
    text = user.read_text()
    assert "partitions = 9  # mine" in text and settings.args.partitions == 9
    assert settings.presets == {"tiny": {"partitions": 2, "size": 10, "data_out": "tiny/out"}}
    before = user.read_bytes()
    again = AppSettings(env)
    assert again.merged == [] and user.read_bytes() == before  # nothing new: nothing written

    user.write_text(user.read_text().replace("size = 20000     # integers per range\n", ""))
    assert AppSettings(env).merged == ["args.size"]
    assert f"size = 20000 # {MERGED_NOTE}" in user.read_text()


def test_a_broken_user_file_is_left_alone(env: AgiEnv) -> None:
    AppSettings(env)
    user = env.settings_path
    user.write_text(user.read_text().replace("[cluster]", "[cluster"))
    before = user.read_bytes()
    _add_to_seed(env, "size = 20000     # integers per range\n", "size = 20000     # integers per range\n" + PRESETS)
    with pytest.raises(SettingsFileError, match="not valid TOML"):
        AppSettings(env)
    assert user.read_bytes() == before


def test_an_argument_set_is_checked_like_args_and_named_by_line(env: AgiEnv) -> None:
    _add_to_seed(env, "size = 20000     # integers per range\n",
                 "size = 20000     # integers per range\n" + PRESETS.replace("size = 10", "size = 0"))
    with pytest.raises(SettingsFileError) as info:
        AppSettings(env)
    line = next(i for i, text in enumerate(env.settings_path.read_text().splitlines(), 1) if text == "size = 0")
    assert info.value.line == line and "[args.presets.tiny]" in str(info.value) and "size" in str(info.value)

    env.settings_path.unlink()
    _add_to_seed(env, "size = 0", "sise = 10")
    with pytest.raises(SettingsFileError, match="no argument 'sise'"):
        AppSettings(env)
    env.settings_path.unlink()
    _add_to_seed(env, "sise = 10", "size = 10")
    settings = AppSettings(env)
    assert settings.preset("tiny") == {"partitions": 2, "size": 10, "data_out": "tiny/out"}
    with pytest.raises(ValueError, match=r"no argument set 'huge' \(\[args.presets\]: tiny\)"):
        settings.preset("huge")
    settings.save_args({"partitions": 3})  # saving [args] keeps the argument sets
    assert AppSettings(env).presets == settings.presets
