"""The serving process settles its heap: the modules sessions use are imported and frozen out of the
cyclic collector's reach, and a page built afterwards runs the collector a fraction as often."""
from __future__ import annotations

import gc
import sys
from collections.abc import Iterator

import pytest
from bokeh.document import Document
from panel.io.state import set_curdoc

from agilab_panel.ui.heap import YOUNG_THRESHOLD, settle_heap
from agilab_panel.ui.page import SECTIONS, OrchestratePage
from agilab_panel.ui.state import OrchestrateState


@pytest.fixture
def restored_heap() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def _collections_building_a_page() -> tuple[int, int]:
    """Collections of the youngest generation and full collections while a page with every section open
    is built and rendered into a document."""
    counts = [0, 0]

    def count(phase: str, info: dict) -> None:
        if phase == "start":
            counts[0 if info["generation"] == 0 else 1] += 1

    page = OrchestratePage(OrchestrateState("minimal_app"), lazy=False)
    gc.callbacks.append(count)
    try:
        for slot in page.slots.values():
            slot.expand()
        doc = Document()
        with set_curdoc(doc):
            page.template.server_doc(doc)
    finally:
        gc.callbacks.remove(count)
    return counts[0], counts[1]


def test_a_settled_heap_is_frozen_with_the_page_modules_and_collected_less_often(restored_heap) -> None:  # noqa: ANN001
    _collections_building_a_page()  # first page: imports and caches, as in a server's first session
    young_before, _ = _collections_building_a_page()
    tracked_before = len(gc.get_objects())

    frozen = settle_heap()

    assert frozen > 100_000 and 0.9 * frozen <= gc.get_freeze_count() <= frozen  # frozen objects still die by refcount
    assert len(gc.get_objects()) < tracked_before - frozen // 2  # full collections walk only what came after
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    modules = {f"agilab_panel.ui.{spec.module}" for spec in SECTIONS if not spec.optional}
    assert modules <= set(sys.modules) and "holoviews.plotting.bokeh" in sys.modules  # imported before the freeze
    young_after, _ = _collections_building_a_page()
    assert young_before > 20 and young_after * 4 < young_before
