"""Helpers for component tests: build sections over a real OrchestrateState and read what they show."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import panel as pn
import pytest

from agilab_panel.ui.snippet_view import SnippetBlock
from agilab_panel.ui.state import OrchestrateState


def walk(obj: Any) -> Iterator[Any]:
    """Every visible object of a Panel tree (Viewers are expanded; hidden branches are skipped)."""
    if isinstance(obj, pn.viewable.Viewer):
        yield obj
        yield from walk(obj.__panel__())
        return
    if getattr(obj, "visible", True) is False:
        return
    yield obj
    if isinstance(obj, pn.Card) and obj.collapsed:  # only the title shows until it is opened
        return
    if isinstance(obj, pn.layout.base.ListLike) or isinstance(obj, pn.layout.base.NamedListLike):
        for child in obj.objects:
            yield from walk(child)
    if isinstance(obj, pn.Card) and obj.header is not None:
        yield from walk(obj.header)


def visible_text(obj: Any) -> str:
    """The text a user can read in a component: panes, titles, widget labels and values."""
    parts: list[str] = []
    for item in walk(obj):
        if isinstance(item, pn.Card):
            parts.append(item.title or "")
        elif isinstance(item, pn.pane.base.PaneBase) and isinstance(item.object, str):
            parts.append(item.object)
        elif isinstance(item, SnippetBlock):  # drawn in the browser: its code or its note
            parts.extend([item.code, item.problem])
        elif isinstance(item, pn.widgets.Widget):
            parts.append(str(getattr(item, "label", None) or item.name))
            value = getattr(item, "value", None)
            if isinstance(value, str):
                parts.append(value)
    return "\n".join(parts)


@pytest.fixture
def minimal_state() -> OrchestrateState:
    return OrchestrateState("minimal_app")
