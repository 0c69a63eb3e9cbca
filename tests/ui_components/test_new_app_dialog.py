"""Beside the app selector: "New app…" writes and selects a new app; a broken app shows check-app's
problems (file:line and what is wrong) instead of a traceback, and the page stays usable."""
from __future__ import annotations

import html
from pathlib import Path

from agilab_panel.scaffold import new_app
from agilab_panel.ui.new_app import DEFAULT_APPS_FOLDER, NewAppDialog
from agilab_panel.ui.page import OrchestratePage
from agilab_panel.ui.state import OrchestrateState

from .conftest import visible_text


def _files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.exists() else []


def test_new_app_is_written_and_selected(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    state = OrchestrateState("minimal_app", apps_path=[str(apps)])
    dialog = NewAppDialog(state)
    assert dialog.folder_select.options == [str(apps), str(DEFAULT_APPS_FOLDER)]  # no free path from the browser
    assert dialog._form_box.objects == [] and "Name" not in visible_text(dialog)  # the form is sent when opened
    dialog.open_button.clicks += 1
    assert dialog.form.visible and "Name" in visible_text(dialog)

    dialog.name_input.value, dialog.folder_select.value = "json", str(apps)
    dialog.create_button.clicks += 1
    assert "standard library" in dialog.message and state.app == "minimal_app" and _files(apps) == []

    dialog.name_input.value, dialog.kind_select.value = "fresh_numeric", "numeric"
    dialog.create_button.clicks += 1
    assert dialog.message == "" and dialog.created == apps / "fresh_numeric"
    assert (apps / "fresh_numeric" / "src" / "fresh_numeric" / "kernel.pyx").is_file()
    assert state.app == "fresh_numeric" and state.env.app == "fresh_numeric" and "fresh_numeric" in state.param.app.objects
    assert state.settings is not None and state.settings.args.points == 200_000  # its args load at once
    assert not dialog.form.visible and "Created" in visible_text(dialog)


def test_a_broken_app_shows_its_problems_and_the_page_stays_on_the_app_shown(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    refused = new_app("bad_toml", "minimal", apps)
    pyproject = refused / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('pool_backend = "process"', 'pool_backend = "fork"'))
    line = next(i for i, text in enumerate(pyproject.read_text().splitlines(), 1) if "fork" in text)
    broken = new_app("bad_args", "minimal", apps)
    args_file = broken / "src" / "bad_args" / "app_args.py"
    good_args = args_file.read_text()
    args_file.write_text(good_args.replace("(param.Parameterized):", "(param.Parameterized)"))

    page = OrchestratePage(app="minimal_app", apps_path=[str(apps)])
    state = page.state
    state.app = "bad_toml"
    assert state.app == "minimal_app" and state.env.app == "minimal_app" and state.broken_app == "bad_toml"
    text = html.unescape(visible_text(page.sidebar))
    assert f"pyproject.toml:{line}" in text and "pool_backend must be 'process' or 'thread'" in text
    assert "could not be opened" in text and "Traceback" not in visible_text(page)

    state.app = "bad_args"  # opens (its pyproject is fine), but its args class does not import
    assert state.broken_app == "" and state.settings is None
    text = html.unescape(visible_text(page.sidebar))
    assert "src/bad_args/app_args.py:4" in text and "syntax error" in text and "Traceback" not in visible_text(page)

    args_file.write_text(good_args)  # the author fixes it ...
    page.app_problems.again_button.clicks += 1  # ... and checks again
    assert state.app == "bad_args" and state.settings is not None and state.settings_error == ""
    assert not page.app_problems._layout.visible and "syntax error" not in visible_text(page.sidebar)


def test_argument_sets_load_into_args_and_merged_keys_are_said(tmp_path: Path) -> None:
    import tomllib

    from agilab_panel.ui.new_app import ArgumentSets

    apps = tmp_path / "apps"
    app = new_app("sets_app", "numeric", apps)
    seed = app / "app_settings.toml"
    seed.write_text(seed.read_text().replace("[cluster]", "[args.presets.tiny]\npoints = 500\ndata_out = \"tiny/out\"\n\n[cluster]"))
    state = OrchestrateState("sets_app", apps_path=[str(apps)])
    assert ArgumentSets(OrchestrateState("minimal_app"))._layout.objects == []  # no sets: nothing sent to the page
    sets = ArgumentSets(state)
    assert sets.select.options == ["tiny"] and sets._layout.visible and sets.select in sets._layout

    sets.load()
    saved = tomllib.loads(state.env.settings_path.read_text())["args"]
    assert saved["points"] == 500 and saved["partitions"] == 8 and state.settings.args.points == 500
    assert "--preset tiny" in sets.message and "data_out tiny/out" in sets.message

    seed.write_text(seed.read_text().replace("[cluster]", "[args.presets.big]\npoints = 900000\n\n[cluster]"))
    later = OrchestrateState("sets_app", apps_path=[str(apps)])  # the app's copy gained a set since
    shown = ArgumentSets(later)
    assert shown.select.options == ["big", "tiny"] and "`args.presets.big`" in visible_text(shown)
    assert later.settings.args.points == 500  # the user's own value stays
