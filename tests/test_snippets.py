"""Snippet generation (SPEC §7): the shape, the seed's UI-field-to-snippet-field table, literals that
no value can break out of, keys refused when they are not identifiers, and saved files."""
from __future__ import annotations

import ast
import asyncio
import math
import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from agilab_panel import AGI
from agilab_panel.apps import builtin_apps_path
from agilab_panel.env import AgiEnv
from agilab_panel.settings import AppSettings
from agilab_panel.snippets import (
    SNIPPET_KINDS,
    available_kinds,
    literal,
    render_snippet,
    save_snippets,
    snippet_for,
)

VERBS = {"install": "install", "distrib": "get_distrib", "run": "run", "serve": "serve"}
WORKERS = {"127.0.0.1": 2}

HOSTILE = {
    "single": "it's",
    "double": 'say "hi"',
    "both": "'\"",
    "triple": '""" \'\'\' """',
    "newline": "line1\nline2\r\nline3",
    "backslash": "C:\\temp\\new\\x41\\",
    "breakout": "\"); import os; os.system('x')  #",
    "breakout_single": "'); import os; os.system('x')  #",
    "fstring": "{__import__('os').system('x')}",
    "unicode": "héllo wörld — 日本語 🚀 \u2028\u2029",
    "nul_ish": "\x00\x1b[31m\\x00\\0\t\x7f",
    "surrogate": "\ud800",
    "nested": {"k'ey": ["a\nb", ("t",), None, True, 1.5], "n": {"deep": '"""'}},
    "big": 10**30,
    "neg": -0.0,
}


@pytest.fixture
def settings() -> AppSettings:
    return AppSettings(AgiEnv("minimal_app"))


def _render(kind: str = "run", **overrides: Any) -> str:
    values = dict(app="minimal_app", verbose=1, scheduler=None, workers=WORKERS, mode=0, args={"partitions": 4})
    values.update(overrides)
    return render_snippet(kind, **values)


def _agi_call(source: str, verb: str) -> ast.Call:
    """The awaited ``AGI.<verb>(...)`` call of a snippet."""
    calls = [n.value for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Await)]
    calls = [c for c in calls if ast.unparse(c.func) != "main"]  # a notebook cell also awaits main()
    assert len(calls) == 1 and ast.unparse(calls[0].func) == f"AGI.{verb}"
    return calls[0]


def _kwargs(call: ast.Call) -> dict[str, ast.expr]:
    return {kw.arg: kw.value for kw in call.keywords if kw.arg}


def _request(source: str) -> dict[str, ast.expr]:
    return _kwargs(_kwargs(_agi_call(source, "run"))["request"])


def _env_kwargs(source: str) -> dict[str, Any]:
    call = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call) and ast.unparse(n.func) == "AgiEnv")
    return {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}


def _mode(node: ast.expr) -> int:
    """Evaluate a mode expression with only the AGI constants in scope."""
    return eval(compile(ast.Expression(node), "<mode>", "eval"), {"__builtins__": {}}, {"AGI": AGI})


def _distrib_args(source: str) -> dict[str, Any]:
    call = _agi_call(source, "get_distrib")
    args = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg not in (None, "scheduler", "workers")}
    for kw in call.keywords:
        if kw.arg is None:
            args.update(ast.literal_eval(kw.value))
    return args


# -- shape ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", SNIPPET_KINDS)
def test_every_kind_has_the_documented_shape(settings: AppSettings, kind: str) -> None:
    source = snippet_for(kind, settings)
    lines = source.splitlines()
    assert re.fullmatch(r"# agilab-panel snippet v1 · app minimal_app · generated \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lines[0])
    assert "import asyncio" in lines and "from agilab_panel import AGI, AgiEnv, RunRequest" in lines
    assert "async def main():" in lines
    assert source.rstrip().endswith('sys.exit(f"error: {exc}")')
    assert 'if __name__ == "__main__":' in lines and "        asyncio.run(main())" in lines
    assert _env_kwargs(source) == {"app": "minimal_app", "verbose": 1}
    _agi_call(source, VERBS[kind])
    compile(source, f"AGI_{kind}.py", "exec")


def test_run_passes_a_run_request_and_distrib_the_args_as_keywords(settings: AppSettings) -> None:
    request = _request(snippet_for("run", settings))
    assert list(request) == ["params", "scheduler", "workers", "mode", "rapids_enabled", "verbose"]
    assert ast.literal_eval(request["params"]) == {"partitions": 4, "size": 20000}
    assert _distrib_args(snippet_for("distrib", settings)) == {"partitions": 4, "size": 20000}
    install = _kwargs(_agi_call(snippet_for("install", settings), "install"))
    assert list(install) == ["scheduler", "workers", "modes_enabled"] and ast.unparse(install["modes_enabled"]) == "0"
    serve = _kwargs(_agi_call(snippet_for("serve", settings), "serve"))
    assert ast.literal_eval(serve["action"]) == "start" and {"scheduler", "workers"} <= set(serve)


def test_notebook_form_awaits_main_instead_of_starting_a_loop(settings: AppSettings) -> None:
    source = snippet_for("run", settings, notebook=True)
    assert source.rstrip().endswith("result = await main()")
    assert "asyncio.run" not in source and "__main__" not in source
    compile(source, "<cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_a_script_stops_the_cluster_its_run_started_but_a_notebook_keeps_it_warm(settings: AppSettings) -> None:
    script = _kwargs(_agi_call(snippet_for("run", settings), "run"))
    assert ast.literal_eval(script["keep_cluster"]) is False
    assert "keep_cluster" not in _kwargs(_agi_call(snippet_for("run", settings, notebook=True), "run"))


# -- the seed's table: UI field -> snippet field -------------------------------------------------------
@pytest.mark.parametrize(
    ("toggles", "expected", "expression"),
    [
        ({}, 0, "0"),
        ({"pool": True}, 1, "AGI.POOL_MODE"),
        ({"cython": True}, 2, "AGI.CYTHON_MODE"),
        ({"cluster_enabled": True}, 4, "AGI.DASK_MODE"),
        ({"rapids": True}, 8, "AGI.RAPIDS_MODE"),
        ({"pool": True, "cluster_enabled": True, "rapids": True}, 13, "AGI.POOL_MODE | AGI.DASK_MODE | AGI.RAPIDS_MODE"),
        ({"pool": True, "cython": True, "cluster_enabled": True, "rapids": True}, 15,
         "AGI.POOL_MODE | AGI.CYTHON_MODE | AGI.DASK_MODE | AGI.RAPIDS_MODE"),
    ],
)
def test_toggles_add_their_bit_with_the_public_constants(settings: AppSettings, toggles: dict, expected: int,
                                                         expression: str) -> None:
    settings.cluster.param.update(**toggles)
    mode = _request(snippet_for("run", settings))["mode"]
    modes_enabled = _kwargs(_agi_call(snippet_for("install", settings), "install"))["modes_enabled"]
    for node in (mode, modes_enabled):
        assert ast.unparse(node) == expression and _mode(node) == expected
    assert ast.literal_eval(_request(snippet_for("run", settings))["rapids_enabled"]) is bool(toggles.get("rapids"))


def test_verbosity_goes_to_agienv_and_the_request(settings: AppSettings) -> None:
    settings.cluster.verbose = 3
    for kind in SNIPPET_KINDS:
        assert _env_kwargs(snippet_for(kind, settings))["verbose"] == 3
    assert ast.literal_eval(_request(snippet_for("run", settings))["verbose"]) == 3


def test_scheduler_is_written_while_the_cluster_is_enabled(settings: AppSettings) -> None:
    settings.cluster.scheduler = "10.0.0.5:8786"
    for kind in SNIPPET_KINDS:
        assert ast.literal_eval(_kwargs(_agi_call(snippet_for(kind, settings), VERBS[kind]))["scheduler"] if kind != "run"
                                else _request(snippet_for(kind, settings))["scheduler"]) is None
    settings.cluster.cluster_enabled = True
    for kind in ("install", "distrib", "serve"):
        assert ast.literal_eval(_kwargs(_agi_call(snippet_for(kind, settings), VERBS[kind]))["scheduler"]) == "10.0.0.5:8786"
    assert ast.literal_eval(_request(snippet_for("run", settings))["scheduler"]) == "10.0.0.5:8786"


def test_worker_map_is_copied_for_every_kind(settings: AppSettings) -> None:
    workers = {"192.168.1.21": 1, "192.168.1.22": 2, "[::1]": 1, "node-3.example.org": 4}
    settings.cluster.workers = workers
    for kind in ("install", "distrib", "serve"):
        assert ast.literal_eval(_kwargs(_agi_call(snippet_for(kind, settings), VERBS[kind]))["workers"]) == workers
    assert ast.literal_eval(_request(snippet_for("run", settings))["workers"]) == workers


def test_module_args_come_from_the_args_model(settings: AppSettings) -> None:
    settings.args.partitions, settings.args.size = 7, 123
    assert ast.literal_eval(_request(snippet_for("run", settings))["params"]) == {"partitions": 7, "size": 123}
    assert _distrib_args(snippet_for("distrib", settings)) == {"partitions": 7, "size": 123}


def test_workers_data_path_is_passed_only_when_set(settings: AppSettings) -> None:
    assert "workers_data_path" not in _request(snippet_for("run", settings))
    settings.cluster.workers_data_path = "/data/share's"
    assert ast.literal_eval(_request(snippet_for("run", settings))["workers_data_path"]) == "/data/share's"


def test_benchmark_renders_the_enabled_modes_for_run_only(settings: AppSettings) -> None:
    settings.cluster.pool = True
    source = snippet_for("run", settings, benchmark=True)
    assert ast.unparse(_request(source)["mode"]) == "[0, AGI.POOL_MODE]" and "result.table" in source
    install = _kwargs(_agi_call(snippet_for("install", settings, benchmark=True), "install"))
    assert _mode(install["modes_enabled"]) == AGI.POOL_MODE


def test_no_ssh_identity_in_any_snippet(settings: AppSettings) -> None:
    settings.cluster.param.update(user="alice-operator", ssh_key_path="/keys/id_secret", cluster_enabled=True)
    for kind in SNIPPET_KINDS:
        source = snippet_for(kind, settings)
        assert "alice-operator" not in source and "id_secret" not in source and "password" not in source.lower()


def test_serve_applies_only_with_the_cluster_enabled(settings: AppSettings) -> None:
    assert available_kinds(settings) == ["install", "distrib", "run"]
    settings.cluster.cluster_enabled = True
    assert available_kinds(settings) == ["install", "distrib", "run", "serve"]


# -- injection safety ------------------------------------------------------------------------------
def test_hostile_values_parse_and_round_trip_exactly() -> None:
    source = _render("run", args=HOSTILE)
    ast.parse(source)
    assert ast.literal_eval(_request(source)["params"]) == HOSTILE
    assert _distrib_args(_render("distrib", args=HOSTILE)) == HOSTILE
    assert "\nimport os" not in source and source.count("os.system") == 2  # only inside two string literals


def test_hostile_values_reach_the_engine_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    """Execute the snippet's main() with AGI.run replaced by a recorder: the request holds exactly the input."""
    seen: dict[str, Any] = {}

    async def fake_run(app_env: Any, request: Any = None, **_: Any) -> Any:
        seen["params"], seen["app"] = dict(request.params), app_env.app
        return SimpleNamespace(label="0: python", rows=0, seconds=0.0, output=None)

    monkeypatch.setattr(AGI, "run", staticmethod(fake_run))
    namespace: dict[str, Any] = {"__name__": "snippet"}
    exec(compile(_render("run", args=HOSTILE), "AGI_run_minimal_app.py", "exec"), namespace)  # noqa: S102
    asyncio.run(namespace["main"]())
    assert seen == {"params": HOSTILE, "app": "minimal_app"}


def test_non_finite_floats_are_written_as_expressions_that_evaluate_back() -> None:
    params = _request(_render("run", args={"lo": -math.inf, "hi": math.inf, "nan": math.nan}))["params"]
    value = eval(compile(ast.Expression(params), "<p>", "eval"), {"__builtins__": {"float": float}})
    assert value["lo"] == -math.inf and value["hi"] == math.inf and math.isnan(value["nan"])


@pytest.mark.parametrize("key", ["a b", "1x", "x-y", "x=1, y", "", "x)\nimport os\n(", 3, None])
def test_keys_that_are_not_identifiers_are_refused(key: Any) -> None:
    for kind in SNIPPET_KINDS:
        with pytest.raises(ValueError, match="not a Python identifier"):
            _render(kind, args={key: 1})


def test_keywords_and_nfkc_folded_names_go_through_a_dict_in_distrib() -> None:
    args = {"class": 1, "lambda": "x", "ﬁle": 2, "ok": 3}  # "ﬁle" would be read back as "file" as a keyword
    source = _render("distrib", args=args)
    call = _agi_call(source, "get_distrib")
    assert [kw.arg for kw in call.keywords] == ["scheduler", "workers", "ok", None]
    assert _distrib_args(source) == args
    assert ast.literal_eval(_request(_render("run", args=args))["params"]) == args


def test_distrib_refuses_an_argument_that_would_land_in_its_own_parameters() -> None:
    with pytest.raises(ValueError, match="clashes"):
        _render("distrib", args={"save": False})


def test_a_hostile_app_name_cannot_escape_the_header() -> None:
    app = "evil\nimport os; os.system('x')"
    source = _render("install", app=app)
    assert source.splitlines()[0].startswith("# agilab-panel snippet v1 · app \"evil\\nimport os")
    assert _env_kwargs(source)["app"] == app


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"args": {"when": date(2024, 1, 1)}}, "cannot be written"),
        ({"args": {"obj": object()}}, "cannot be written"),
        ({"workers": {"127.0.0.1": 0}}, ""),
        ({"workers": {"bad host!": 1}}, ""),
        ({"scheduler": "host:notaport"}, ""),
        ({"verbose": 7}, "verbose"),
        ({"mode": 16}, "mode"),
        ({"app": ""}, "app"),
    ],
)
def test_bad_inputs_are_clear_value_errors(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message or None):
        _render("run", **overrides)


def test_unknown_kind_is_refused(settings: AppSettings) -> None:
    with pytest.raises(ValueError, match="unknown snippet kind"):
        snippet_for("deploy", settings)


def test_literal_round_trips_plain_data() -> None:
    for value in (None, True, 0, -3, 2.5, "", "x", b"\x00'\"", [1, [2]], (1,), (), {"a": {1: (2, 3)}}, {1, 2}, set()):
        assert ast.literal_eval(literal(value)) == value
    assert literal(Path("a/b")) == '"a/b"'
    assert literal(np.int64(3)) == "3" and literal(np.float64(0.25)) == "0.25"  # numpy scalars from a form


# -- where apps live, saved files ------------------------------------------------------------------
def test_an_app_outside_the_built_in_folder_is_referenced_by_its_folder(tmp_path: Path) -> None:
    copy = tmp_path / "apps" / "other_app"
    shutil.copytree(builtin_apps_path() / "minimal_app", copy, ignore=shutil.ignore_patterns("__pycache__"))
    env = AgiEnv("other_app", apps_path=tmp_path / "apps")
    source = snippet_for("run", AppSettings(env))
    assert _env_kwargs(source)["app"] == str(copy.resolve())


def test_save_snippets_writes_the_four_files_in_the_log_folder(settings: AppSettings) -> None:
    env = settings.env
    paths = save_snippets(env, settings)
    assert [p.name for p in paths] == ["AGI_install_minimal_app.py", "AGI_get_distrib_minimal_app.py",
                                       "AGI_run_minimal_app.py", "AGI_serve_minimal_app.py"]
    assert all(p.parent == env.log_dir for p in paths)
    for path, kind in zip(paths, SNIPPET_KINDS):
        _agi_call(path.read_text(encoding="utf-8"), VERBS[kind])
    assert sorted(p.name for p in env.log_dir.iterdir()) == sorted(p.name for p in paths)  # no temp files left
    assert save_snippets(env, settings, kinds=("run",)) == [env.log_dir / "AGI_run_minimal_app.py"]


def test_save_snippets_writes_nothing_when_one_snippet_cannot_be_rendered(settings: AppSettings,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AppSettings, "args_dict", property(lambda self: {"bad key": 1}))
    with pytest.raises(ValueError, match="not a Python identifier"):
        save_snippets(settings.env, settings)
    assert not settings.env.log_dir.exists() or not any(settings.env.log_dir.iterdir())


def test_engine_side_modules_do_not_import_panel() -> None:
    code = "import sys, agilab_panel.snippets, agilab_panel.notebook; sys.exit('panel' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_each_service_action_has_its_snippet(settings: AppSettings) -> None:
    from agilab_panel.snippets import SERVICE_ACTIONS, service_snippet

    for action in ("start", "status", "health", "stop"):
        call = _kwargs(_agi_call(service_snippet(action, settings), "serve"))
        assert ast.literal_eval(call["action"]) == action
        assert ({"scheduler", "workers"} <= set(call)) == (action == "start")  # the others find the running service
    submit = service_snippet("submit", settings)
    assert {k: ast.literal_eval(v) for k, v in _kwargs(_agi_call(submit, "submit")).items()} == {"partitions": 4,
                                                                                                  "size": 20000}
    assert "submit" in SERVICE_ACTIONS and "await AGI.serve(" not in submit
    with pytest.raises(ValueError, match="service action must be one of"):
        service_snippet("restart", settings)
    with pytest.raises(ValueError, match="clashes with a parameter of AGI.submit"):
        render_snippet("serve", app="minimal_app", verbose=0, scheduler=None, workers=WORKERS, mode=None,
                       args={"events": 1}, service_action="submit")
