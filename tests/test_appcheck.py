"""check-app: every problem of an app, each with its file and line, found without running the app."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agilab_panel.appcheck import TOOL_KEYS, check_app, check_name
from agilab_panel.apps import builtin_apps_path
from agilab_panel.scaffold import new_app


def _lines(text: str, needle: str) -> int:
    """1-based line of the first line holding ``needle``."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _edit(path: Path, old: str, new: str) -> str:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    return path.read_text()


@pytest.mark.parametrize("app", ["minimal_app", "mandelbrot", "flight_telemetry"])
def test_builtin_apps_fulfil_the_contract(app: str) -> None:
    assert check_app(builtin_apps_path() / app) == []


def test_the_answer_does_not_depend_on_what_the_caller_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dashboard that loaded another copy of an app's package, or runs in a folder holding one, still
    gets the app's own answer: the import check runs in a fresh interpreter without the caller's folder."""
    import shutil

    copy = tmp_path / "copy" / "src" / "minimal_app"
    shutil.copytree(builtin_apps_path() / "minimal_app" / "src" / "minimal_app", copy)
    monkeypatch.syspath_prepend(str(copy.parent))
    mine = {k: v for k, v in sys.modules.items() if k.split(".")[0] == "minimal_app"}
    for name in mine:
        del sys.modules[name]
    try:
        __import__("minimal_app")
        monkeypatch.chdir(copy.parent)  # a folder named like the app's package in the current folder
        assert check_app(builtin_apps_path() / "minimal_app") == []
    finally:
        for name in [k for k in sys.modules if k.split(".")[0] == "minimal_app"]:
            del sys.modules[name]
        sys.modules.update(mine)


def test_every_problem_is_reported_with_its_file_and_line(tmp_path: Path) -> None:
    app = new_app("broken_app", "minimal", tmp_path)
    src = app / "src" / "broken_app"
    pyproject = _edit(app / "pyproject.toml", 'pool_backend = "process"', 'pool-backend = "process"\nrapids = "yes"')
    pyproject = _edit(app / "pyproject.toml", 'output = "broken_app_primes.parquet"', 'output = "out.xlsx"')
    pyproject = _edit(app / "pyproject.toml", 'cython = ["src/broken_app/kernel.pyx"]',
                      'cython = ["src/broken_app/kernel.pyx", "src/broken_app/missing.pyx", "other/kernel.pyx"]')
    pyproject = _edit(app / "pyproject.toml", '[build-system]\nrequires = ["setuptools>=69"]\nbuild-backend = "setuptools.build_meta"\n', "")
    worker = _edit(src / "worker.py", "def work_pool(self, payload: dict)", "def work_pool(self)")
    worker = _edit(src / "worker.py", 'self.compiled("kernel")', 'self.compiled("kernal")')
    args = _edit(src / "app_args.py", "class BrokenAppArgs(param.Parameterized):", "class BrokenAppArgs:")
    manager = _edit(src / "manager.py", "def partitions(self)", "def partition(self)")
    settings = _edit(app / "app_settings.toml", "size = 25000", "size = 0\nsizes = 3")

    problems = check_app(app)
    found = {(Path(p.file).name, p.line, p.message) for p in problems}

    def has(file: str, line: int | None, *words: str) -> None:
        assert any(f == file and ln == line and all(w in m for w in words) for f, ln, m in found), (file, line, words, found)

    has("pyproject.toml", None, "[build-system]")
    has("pyproject.toml", _lines(pyproject, "pool-backend"), "unknown key 'pool-backend'")
    has("pyproject.toml", _lines(pyproject, "rapids ="), "rapids", "true or false")
    has("pyproject.toml", _lines(pyproject, "output ="), "out.xlsx", ".parquet")
    has("pyproject.toml", _lines(pyproject, "cython ="), "missing.pyx", "no such file")
    has("pyproject.toml", _lines(pyproject, "cython ="), "other/kernel.pyx", "no such file")
    has("pyproject.toml", _lines(pyproject, "cython ="), "same module kernel")
    has("worker.py", _lines(worker, "kernal"), "compiled('kernal')", "declared: kernel, missing, kernel")
    has("worker.py", _lines(worker, "def work_pool"), "work_pool must accept (self, payload)")
    has("app_args.py", _lines(args, "class BrokenAppArgs"), "must subclass param.Parameterized")
    has("manager.py", _lines(manager, "class BrokenAppManager"), "must define partitions(self)")
    assert len(problems) == len(found) == 11, [str(p) for p in problems]
    assert all(str(p).startswith(f"{p.file}:{p.line}: " if p.line else f"{p.file}: ") for p in problems)

    # With the args class fixed, the shipped [args] are checked against it, line by line.
    _edit(src / "app_args.py", "class BrokenAppArgs:", "class BrokenAppArgs(param.Parameterized):")
    messages = {(p.line, p.message) for p in check_app(app) if p.file.endswith("app_settings.toml")}
    assert {line for line, _ in messages} == {_lines(settings, "size = 0"), _lines(settings, "sizes = 3")}
    assert any("'sizes'" in m for _, m in messages) and any("size" in m and "at least 1" in m for _, m in messages)

    # An argument set is checked the same way.
    settings = _edit(app / "app_settings.toml", "size = 0\nsizes = 3", "size = 10\n\n[args.presets.tiny]\npartitions = -1")
    messages = {(p.line, p.message) for p in check_app(app) if p.file.endswith("app_settings.toml")}
    assert [line for line, _ in messages] == [_lines(settings, "partitions = -1")]
    assert "[args.presets.tiny]" in next(iter(messages))[1]


def test_a_syntax_error_is_named_once_with_its_line(tmp_path: Path) -> None:
    app = new_app("typo_app", "numeric", tmp_path)
    worker = _edit(app / "src" / "typo_app" / "worker.py", "def work_init(self) -> None:", "def work_init(self) -> None")
    problems = check_app(app)
    assert [(Path(p.file).name, p.line) for p in problems] == [("worker.py", _lines(worker, "def work_init"))]
    assert "syntax error" in problems[0].message


def test_packages_and_names_that_would_clash(tmp_path: Path) -> None:
    first = new_app("shared_pkg", "minimal", tmp_path / "a")
    second = tmp_path / "b" / "second_app"
    second.parent.mkdir()
    first.rename(second)  # a second folder whose package is still shared_pkg ...
    new_app("shared_pkg", "minimal", tmp_path / "a")  # ... beside the original
    problems = check_app(second, [tmp_path / "a", tmp_path / "b"], imports=False)
    assert any("same package 'shared_pkg'" in p.message for p in problems), [str(p) for p in problems]

    shadow = new_app("shadow_app", "minimal", tmp_path / "c")
    for file in [shadow / "pyproject.toml", *(shadow / "src" / "shadow_app").glob("*.py")]:
        file.write_text(file.read_text().replace("shadow_app", "json"))
    (shadow / "src" / "shadow_app").rename(shadow / "src" / "json")
    assert any("would shadow a module of Python's standard library" in p.message for p in check_app(shadow))

    assert "taken by" in check_name("mandelbrot")
    assert "standard library" in check_name("os")
    assert check_name("fresh_name_here") is None


def test_checking_a_broken_app_leaves_the_caller_untouched(tmp_path: Path) -> None:
    app = new_app("isolated_app", "minimal", tmp_path)
    (app / "src" / "isolated_app" / "app_args.py").write_text("raise RuntimeError('boom at import')\n")
    problems = check_app(app)
    assert any("boom at import" in p.message and p.line == 1 for p in problems), [str(p) for p in problems]
    assert "isolated_app" not in sys.modules and str(app / "src") not in sys.path  # imported elsewhere


def test_command_line_prints_every_problem_and_exits_non_zero(tmp_path: Path) -> None:
    app = new_app("cli_app", "minimal", tmp_path)
    _edit(app / "pyproject.toml", 'pool_backend = "process"', 'pool_backend = "fork"')
    _edit(app / "src" / "cli_app" / "worker.py", "def work_pool(self, payload: dict)", "def work_pool(self)")
    run = [sys.executable, "-m", "agilab_panel.cli", "check-app", "--app", str(app)]
    proc = subprocess.run(run, capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert proc.returncode == 1 and len(proc.stdout.splitlines()) == 2, proc.stdout + proc.stderr
    assert "pyproject.toml:" in proc.stdout and "'fork'" in proc.stdout and "worker.py:" in proc.stdout
    data = json.loads(subprocess.run([*run, "--json"], capture_output=True, text=True, timeout=300).stdout)
    assert len(data["problems"]) == 2 and all(p["line"] for p in data["problems"])
    good = subprocess.run([sys.executable, "-m", "agilab_panel.cli", "check-app", "--app", "minimal_app"],
                          capture_output=True, text=True, timeout=300)
    assert good.returncode == 0 and "fulfils the contract" in good.stdout


def test_the_documented_keys_are_the_checked_keys() -> None:
    docs = (Path(__file__).resolve().parent.parent / "docs" / "APPS.md").read_text(encoding="utf-8")
    table = docs.split("## `[tool.agilab]`")[1].split("\n\n")[1]
    documented = [row.split("`")[1] for row in table.splitlines()[2:]]
    assert documented == list(TOOL_KEYS)


def test_commands_find_the_apps_of_agilab_apps_path_like_the_page(tmp_path: Path) -> None:
    new_app("env_app", "minimal", tmp_path / "apps")
    env = {**os.environ, "AGILAB_APPS_PATH": str(tmp_path / "apps")}
    cli = [sys.executable, "-m", "agilab_panel.cli"]
    checked = subprocess.run([*cli, "check-app", "--app", "env_app"], capture_output=True, text=True, env=env,
                             timeout=300)
    assert checked.returncode == 0 and "fulfils the contract" in checked.stdout, checked.stdout + checked.stderr
    listed = subprocess.run([*cli, "apps", "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert "env_app" in json.loads(listed.stdout)
    elsewhere = subprocess.run([*cli, "apps", "--json", "--apps-path", str(tmp_path / "none")],
                               capture_output=True, text=True, env=env, timeout=300)
    assert "env_app" not in json.loads(elsewhere.stdout)  # --apps-path, when given, replaces the variable
