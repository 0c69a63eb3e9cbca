"""SnippetView: the snippet of the settings, or why there is none, as one browser component."""
from __future__ import annotations

from bokeh.document import Document

from agilab_panel.ui.snippet_view import SnippetBlock, SnippetView, highlighted
from agilab_panel.ui.state import OrchestrateState

from .conftest import visible_text


def test_a_refused_snippet_says_why_and_the_note_leaves_with_it(minimal_state: OrchestrateState) -> None:
    refuse = {"now": False}

    def render(settings) -> str:  # noqa: ANN001
        if refuse["now"]:
            raise ValueError("no worker slot")
        return "print('hello')"

    view = SnippetView(minimal_state, "run", render=render)
    assert "print('hello')" in view.code and view.block.problem == ""
    refuse["now"] = True
    view.refresh()
    text = visible_text(view)
    assert "No snippet for these settings: no worker slot" in text and not view.code
    assert view.block.code == "" and view.block.html == "" and view.block.alert == "warning"
    refuse["now"] = False
    view.refresh()
    assert "No snippet" not in visible_text(view) and "print('hello')" in view.code


def test_the_browser_gets_the_code_highlighted_and_escaped_with_its_file_name(minimal_state: OrchestrateState) -> None:
    view = SnippetView(minimal_state, "run", render=lambda _settings: 'x = "</div><script>alert(1)</script>"')
    block = view.block
    assert block.code == view.code and block.filename == view.filename
    assert 'class="codehilite"' in block.html and "<script>" not in block.html and "&lt;script&gt;" in block.html
    assert highlighted("") == ""


def test_the_snippet_is_one_model_on_the_page(minimal_state: OrchestrateState) -> None:
    """Code, Copy, Download and the note are drawn by one component: no widget per button, no hidden box."""
    view = SnippetView(minimal_state, "run")
    root = view.__panel__().get_root(Document())
    models = {type(m).__name__ for m in root.references()}
    assert isinstance(view.__panel__(), SnippetBlock)
    assert not models & {"Button", "FileDownload", "TextAreaInput", "Column", "Row", "HTML"}
