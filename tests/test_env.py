"""AgiEnv: app resolution and every path of SPEC §3, with its overrides."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from agilab_panel.apps import AppError, builtin_apps_path
from agilab_panel.env import AgiEnv


@pytest.fixture
def extra_apps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding ``tiny_app``: a copy of minimal_app with its package renamed."""
    root = tmp_path / "extra_apps"
    app = root / "tiny_app"
    shutil.copytree(builtin_apps_path() / "minimal_app", app, ignore=shutil.ignore_patterns("__pycache__", "build", "*.so", "*.c"))
    (app / "src" / "minimal_app").rename(app / "src" / "tiny_app")
    pyproject = app / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("minimal_app", "tiny_app"))
    # Importing the copy's args class adds its src folder to sys.path and tiny_app to sys.modules.
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield root
    for name in [m for m in sys.modules if m == "tiny_app" or m.startswith("tiny_app.")]:
        del sys.modules[name]


def test_resolves_the_builtin_minimal_app(agilab_dirs):
    env = AgiEnv("minimal_app")
    assert env.app == "minimal_app"
    assert env.module == "minimal_app"
    assert env.app_path == (builtin_apps_path() / "minimal_app").resolve()
    assert env.settings_seed_path == env.app_path / "app_settings.toml"
    assert env.settings_seed_path.is_file()
    assert env.spec.args_class().__name__ == "MinimalArgs"


def test_every_path_follows_the_environment(agilab_dirs):
    env = AgiEnv("minimal_app")
    home = agilab_dirs["AGILAB_HOME"]
    assert env.home == home
    assert env.user_app_dir == home / "apps" / "minimal_app"
    assert env.settings_path == home / "apps" / "minimal_app" / "app_settings.toml"
    assert env.benchmark_path == home / "apps" / "minimal_app" / "benchmark.json"
    assert env.plan_path == home / "apps" / "minimal_app" / "distribution_tree.json"
    assert env.wenv_root == home / "wenv" / "minimal_app"
    assert env.share == agilab_dirs["AGI_CLUSTER_SHARE"]
    assert env.export_root == agilab_dirs["AGILAB_EXPORT_ABS"]
    assert env.export_csv == agilab_dirs["AGILAB_EXPORT_ABS"] / "minimal_app" / "export.csv"
    assert env.log_dir == agilab_dirs["AGILAB_LOG_ABS"] / "minimal_app"


def test_defaults_derive_from_home(tmp_path, monkeypatch):
    fake_user_home = tmp_path / "user"
    monkeypatch.setenv("HOME", str(fake_user_home))
    for name in ("AGILAB_HOME", "AGI_CLUSTER_SHARE", "AGILAB_EXPORT_ABS", "AGILAB_LOG_ABS"):
        monkeypatch.delenv(name)
    env = AgiEnv("minimal_app")
    assert env.home == fake_user_home / ".agilab"
    assert env.share == fake_user_home / ".agilab" / "share"
    assert env.export_root == fake_user_home / ".agilab" / "export"
    assert env.log_dir == fake_user_home / "log" / "execute" / "minimal_app"
    assert not fake_user_home.exists(), "building an AgiEnv must not create folders"


def test_env_file_is_read_but_process_env_wins(agilab_dirs, tmp_path, monkeypatch):
    home = agilab_dirs["AGILAB_HOME"]
    home.mkdir(parents=True)
    (home / ".env").write_text(
        f'AGI_CLUSTER_SHARE="{tmp_path / "share_from_file"}"\nAGILAB_EXPORT_ABS={tmp_path / "export_from_file"}\n'
    )
    monkeypatch.delenv("AGILAB_EXPORT_ABS")
    env = AgiEnv("minimal_app")
    assert env.share == agilab_dirs["AGI_CLUSTER_SHARE"]  # set in the process: wins over the file
    assert env.export_root == tmp_path / "export_from_file"  # only in the file: taken from it


def test_user_folders_expand(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("AGI_CLUSTER_SHARE", "~/cluster_share")
    assert AgiEnv("minimal_app").share == tmp_path / "user" / "cluster_share"


def test_unknown_app_lists_known_apps():
    with pytest.raises(AppError, match=r"unknown app 'no_such_app' \(known apps: .*minimal_app"):
        AgiEnv("no_such_app")


def test_extra_apps_path(extra_apps):
    env = AgiEnv("tiny_app", apps_path=extra_apps)
    assert env.app == "tiny_app"
    assert env.module == "tiny_app"
    assert env.app_path == (extra_apps / "tiny_app").resolve()
    assert env.settings_seed_path == (extra_apps / "tiny_app" / "app_settings.toml").resolve()
    args_class = env.spec.args_class()
    assert Path(sys.modules[args_class.__module__].__file__).is_relative_to(extra_apps.resolve())
    # The built-in apps stay visible next to the extra ones.
    assert AgiEnv("minimal_app", apps_path=[extra_apps]).app == "minimal_app"


def test_extra_apps_path_from_environment(extra_apps, monkeypatch):
    monkeypatch.setenv("AGILAB_APPS_PATH", str(extra_apps))
    assert AgiEnv("tiny_app").app == "tiny_app"


def test_extra_app_is_unknown_without_its_folder(extra_apps):
    with pytest.raises(AppError, match="tiny_app") as err:
        AgiEnv("tiny_app")
    assert "known apps" in str(err.value)
    with pytest.raises(AppError, match="known apps: .*tiny_app"):
        AgiEnv("nope", apps_path=extra_apps)


def test_app_given_as_a_folder(extra_apps):
    assert AgiEnv(str(extra_apps / "tiny_app")).app == "tiny_app"


@pytest.mark.parametrize("verbose", [-1, 4, True, "2"])
def test_verbose_is_validated(verbose):
    with pytest.raises(ValueError, match="verbose"):
        AgiEnv("minimal_app", verbose=verbose)


def test_worker_environment_per_host(agilab_dirs):
    env = AgiEnv("minimal_app")
    assert env.wenv_path("127.0.0.1") == env.wenv_root / "localhost"
    assert env.wenv_path("::1") == env.wenv_root / "localhost"
    assert env.wenv_path("192.0.2.7") == env.wenv_root / "192.0.2.7"
    assert env.wenv_path("[2001:db8::1]") == env.wenv_root / "2001_db8__1"


def test_relative_data_paths_live_in_the_share(agilab_dirs, tmp_path):
    env = AgiEnv("minimal_app")
    share = agilab_dirs["AGI_CLUSTER_SHARE"]
    assert env.resolve_data_path("data/in", "x") == share / "data" / "in"
    assert env.resolve_data_path(None, "minimal/out") == share / "minimal" / "out"
    assert env.resolve_data_path("", "minimal/out") == share / "minimal" / "out"
    assert env.resolve_data_path(share / "abs", "x") == share / "abs"
    with pytest.raises(ValueError, match="outside the cluster share"):
        env.resolve_data_path(tmp_path / "abs", "x")


@pytest.mark.parametrize(("line", "message"), [
    ('output = "tiny_output.json"', r"output 'tiny_output.json': the engine writes only .parquet, .pq, .csv files"),
    ('output = "tiny_output"', "the engine writes only"),
    ('output = "../escaped.parquet"', "output must be a file name inside data_out"),
    ('output = "/tmp/out.csv"', "output must be a file name inside data_out"),
    ('module = "../../elsewhere"', "module must be a Python identifier"),
    ('cython = ["../../outside.pyx"]', "cython entry '../../outside.pyx' must be a .pyx file inside the app folder"),
    ('cython = "src/tiny_app/minimal_kernel.pyx"', "cython must be a list"),
])
def test_an_app_whose_names_the_engine_cannot_honour_is_refused_at_load(extra_apps, line, message):
    pyproject = extra_apps / "tiny_app" / "pyproject.toml"
    key = line.split(" = ")[0]
    text = "\n".join(ln for ln in pyproject.read_text().splitlines() if not ln.startswith(f"{key} = "))
    pyproject.write_text(text.replace("[tool.agilab]\n", f"[tool.agilab]\n{line}\n"))
    with pytest.raises(AppError, match=message) as err:
        AgiEnv("tiny_app", apps_path=extra_apps)
    assert str(pyproject.resolve()) in str(err.value)


@pytest.mark.parametrize("output", ["tiny_output.CSV", "tiny_output.pq", "tiny_output.csv"])
def test_an_output_the_engine_writes_is_accepted(extra_apps, output):
    pyproject = extra_apps / "tiny_app" / "pyproject.toml"
    text = "\n".join(ln for ln in pyproject.read_text().splitlines() if not ln.startswith("output = "))
    pyproject.write_text(text.replace("[tool.agilab]\n", f'[tool.agilab]\noutput = "{output}"\n'))
    assert AgiEnv("tiny_app", apps_path=extra_apps).spec.output == output


@pytest.mark.parametrize(("old", "new", "message"), [
    ("dependencies = [", 'dependencies = "pandas"\nold_dependencies = [', r"\[project\] dependencies must be a list"),
    ("[project]", 'project = "x"\n[old_project]', r"\[project\] dependencies must be a list"),
    (None, 'tool = 3  # no [tool.agilab] table here\n', r"has no \[tool.agilab\] table"),
])
def test_a_pyproject_of_the_wrong_shape_is_an_app_error(extra_apps, old, new, message):
    pyproject = extra_apps / "tiny_app" / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(old, new, 1) if old else new)
    with pytest.raises(AppError, match=message):
        AgiEnv("tiny_app", apps_path=extra_apps)
