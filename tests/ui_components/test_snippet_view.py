"""SnippetView: the snippet of the settings, or why there is none."""
from __future__ import annotations

from agilab_panel.ui.snippet_view import SnippetView
from agilab_panel.ui.state import OrchestrateState

from .conftest import visible_text


def test_a_refused_snippet_says_why_and_the_note_leaves_with_it(minimal_state: OrchestrateState) -> None:
    refuse = {"now": False}

    def render(settings) -> str:  # noqa: ANN001
        if refuse["now"]:
            raise ValueError("no worker slot")
        return "print('hello')"

    view = SnippetView(minimal_state, "run", render=render)
    assert "print('hello')" in view.code and view._note_box.objects == []  # no note sent while there is none
    refuse["now"] = True
    view.refresh()
    text = visible_text(view)
    assert "No snippet for these settings: no worker slot" in text and not view.code
    refuse["now"] = False
    view.refresh()
    assert "No snippet" not in visible_text(view) and "print('hello')" in view.code
