"""The page's template counts the models of a session document once, and the document serialises
exactly as Panel's own template builds it, with every section open, before and after a run; serving
turns off Bokeh's diagnostic passes unless told otherwise."""
from __future__ import annotations

import json
import re

import panel as pn
import pytest
from bokeh.document import Document
from bokeh.document.models import DocumentModelManager
from bokeh.settings import settings
from panel.io.state import set_curdoc

from agilab_panel.agi import AGI
from agilab_panel.ui.page import OrchestratePage
from agilab_panel.ui.page_template import PageTemplate
from agilab_panel.ui.serve import _bokeh_serving_settings
from agilab_panel.ui.state import OrchestrateState

_VOLATILE = [  # what differs between two documents of the same page built one after the other
    (re.compile(r"\bp\d{4,}\b"), None),  # model ids: numbered in order of appearance below
    (re.compile(r"\b[0-9a-f]{32}\b|\b[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\b"), "UUID"),  # table style ids
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"), "TIMESTAMP"),  # "generated ..." in snippets
    (re.compile(r"\d{5,}"), "N"),  # object ids and counters in names and tags
]


def _document(page: OrchestratePage) -> str:
    """The page with every section open, rendered by its template into a new document, as JSON."""
    for slot in page.slots.values():
        slot.expand()
    doc = Document()
    with set_curdoc(doc):
        page.template.server_doc(doc)
    text = json.dumps(doc.to_json(deferred=False), sort_keys=True)
    ids: dict[str, str] = {}
    for pattern, replacement in _VOLATILE:
        if replacement is None:
            text = pattern.sub(lambda m: ids.setdefault(m.group(0), f"ID{len(ids)}"), text)
        else:
            text = pattern.sub(replacement, text)
    return text


def _same_as_panels_template(make_page, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    ours = _document(make_page())
    with monkeypatch.context() as patch:
        patch.setattr(PageTemplate, "_init_doc", pn.template.FastListTemplate._init_doc)
        panels = _document(make_page())
    assert "ID100" in ours and "panel.models" in ours  # a real page went through the comparison
    assert ours == panels


def test_a_fresh_page_serialises_as_panels_template_builds_it(monkeypatch: pytest.MonkeyPatch) -> None:
    _same_as_panels_template(lambda: OrchestratePage(OrchestrateState("minimal_app")), monkeypatch)


async def test_a_page_after_a_run_serialises_as_panels_template_builds_it(installed, use_home, monkeypatch) -> None:  # noqa: ANN001
    use_home(installed("minimal_app", modes_enabled=AGI.POOL_MODE))
    state = OrchestrateState("minimal_app")
    state.benchmark_all = True  # a plan, a run result, a benchmark and an output: the tree and the bars drawn
    await state.run()
    assert state.error == "" and state.plan is not None and state.run_result is not None

    def make() -> OrchestratePage:
        fresh = OrchestrateState("minimal_app")
        assert fresh.plan is not None and fresh.run_result is not None  # read back from disk
        return OrchestratePage(fresh)

    page = make()
    assert "bokeh" in _document(page) and page.slots["distribute"].section._tree_box.objects  # the tree is drawn
    _same_as_panels_template(make, monkeypatch)


def test_the_document_counts_its_models_once(monkeypatch: pytest.MonkeyPatch) -> None:
    counts: list[int] = []
    recompute = DocumentModelManager.recompute

    def counted(self: DocumentModelManager) -> None:
        counts.append(len(self._document().roots))
        recompute(self)

    page = OrchestratePage(OrchestrateState("minimal_app"))
    for slot in page.slots.values():
        slot.expand()
    monkeypatch.setattr(DocumentModelManager, "recompute", counted)
    doc = Document()
    with set_curdoc(doc):
        page.template.server_doc(doc)
    assert len(counts) == 1 and counts[0] == len(doc.roots) > 1  # one count, of the complete document
    assert len(list(doc.models)) > 100


@pytest.mark.parametrize("env", [None, "true"])
def test_serving_turns_off_bokehs_diagnostic_passes_unless_told_otherwise(env, monkeypatch) -> None:  # noqa: ANN001
    for name in ("BOKEH_VALIDATE_DOC", "BOKEH_PERFORM_ERROR_DIAGNOSTICS"):
        if env is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, env)
    chosen = (settings.perform_document_validation, settings.perform_error_diagnostics)
    try:
        _bokeh_serving_settings()
        assert [setting() for setting in chosen] == ([False, False] if env is None else [True, True])
    finally:
        for setting in chosen:
            setting.unset_value()
    assert all(setting() for setting in chosen) or env is None
